"""`inril bench latency-tolerance`: the real-time graph's chunk schedule, replayed offline with a decision delay."""
import json

import numpy as np
import pytest
import torch

import toy_run
from inril_core.latency_tolerance import DelayedChunkPolicy, measure_latency_tolerance
from inril_core.training import pretrain
from test_cli import assert_one_line_error, invoke

torch.set_num_threads(1)
HOLD = np.array([-1.0])
HORIZON = 6  # the toy policy predicts 6 points and runs h = 4


def numbered_chunks(points: int):
    """decide(): the chunk for an observation holding step t is [100 t, 100 t + 1, ...]: each action names the
    step whose observation decided it and its point."""
    return lambda obs: np.stack([[[100 * o[0] + k] for k in range(points)] for o in obs])


def run(policy: DelayedChunkPolicy, steps: int) -> list[float]:
    return [float(policy(np.array([[policy.steps[0]]]))[0, 0, 0]) for _ in range(steps)]


@pytest.mark.parametrize(("delay", "points", "expected"), [
    (0, 4, [0, 1, 2, 3, 400, 401, 402, 403, 800, 801]),  # the ordinary chunk-wise execution
    (2, 6, [-1, -1, 2, 3, 4, 5, 402, 403, 404, 405]),  # later points cover the wait for the next chunk
    (3, 4, [-1, -1, -1, 3, -1, -1, -1, 403, -1, -1]),  # h points only: holds until each chunk comes
])
def test_each_step_runs_the_newest_chunk_that_has_arrived_or_holds(delay, points, expected):
    policy = DelayedChunkPolicy(numbered_chunks(points), 1, delay, 4, HOLD)
    assert run(policy, len(expected)) == expected
    assert policy.holds == expected.count(-1) and policy.actions == len(expected)


def test_an_episode_end_drops_the_previous_episodes_chunks():
    """As the graph's executor: a new episode holds until its own first chunk comes, never runs the old one."""
    policy = DelayedChunkPolicy(numbered_chunks(6), 2, 2, 4, HOLD)
    for _ in range(3):
        policy(np.array([[policy.steps[0]], [policy.steps[1]]]))
    policy.episodes_ended(np.array([True, False]))
    actions = policy(np.array([[0], [3]]))[:, 0, 0]
    assert actions.tolist() == [-1.0, 3.0]
    assert policy.steps.tolist() == [1, 4]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("latency")
    toy_run.write_toy_demos(root / "demos")
    pretrain(toy_run.toy_config(root, f"policy.horizon={HORIZON}"))
    return root


def test_the_measurement_writes_a_row_per_ddim_count_and_delay(root, tmp_path):
    cfg = toy_run.toy_config(root, f"policy.horizon={HORIZON}")
    summary = measure_latency_tolerance(cfg, [0, 3], [6, 2], HORIZON, 2, 20.0, tmp_path, "test",
                                        hold=np.zeros(2))
    rows = summary["rows"]
    assert [(r["ddim_steps"], r["delay_steps"]) for r in rows] == [(6, 0), (6, 3), (2, 0), (2, 3)]
    assert rows[0]["hold_fraction"] == 0.0 and rows[1]["hold_fraction"] > 0.0  # 3 steps before the first chunk
    assert rows[1]["delay_ms"] == pytest.approx(150.0)
    assert set(summary["decision_ms"]) == {"6", "2"} and all(ms > 0 for ms in summary["decision_ms"].values())
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == json.loads(json.dumps(rows))
    assert "| 2 | 3 | 150 |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "latency.png").stat().st_size > 0


@pytest.mark.parametrize(("args", "phrase"), [
    (["--delays", "-1"], "--delays"),
    (["--ddim-steps", "7"], "--ddim-steps 7"),
    (["--publish-steps", "7"], "--publish-steps 7"),
    ([], "the hold action of task lift"),  # the toy env under lift's name: lift's 7-D hold cannot drive it
])
def test_the_command_refuses_what_it_cannot_measure_in_one_line(root, tmp_path, args, phrase):
    overrides = [*toy_run.toy_overrides(root), f"policy.horizon={HORIZON}"]
    assert_one_line_error(invoke("bench", "latency-tolerance", *overrides, "--out", str(tmp_path), *args), phrase)
