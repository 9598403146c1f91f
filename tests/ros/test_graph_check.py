"""`inril sim --check` end to end: the real seven-node graph, as plain processes, runs one short episode and stops
with nothing left running; bad command lines are refused before anything starts.

The demos and the pre-trained policy are made small in the test's own folder (config overrides), so the test
needs nothing from runs/ and leaves nothing there.
"""
from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from inril_core.cli import app
from inril_ros.graph import load_graph

INRIL = Path(sys.executable).parent / "inril"
CHECK_TIMEOUT_S = 300  # pre-training two epochs, then the graph (about 15 s on an idle 2-core machine)


def _run_check(tmp_path: Path, ros_env: dict, args: list[str]) -> tuple[Path, str]:
    """`inril sim --check ARGS` in its own run dir; asserts it passed and left no process running."""
    run_dir = tmp_path / "run"
    # no ROS_DOMAIN_ID: `inril sim` claims a domain of its own, as for a user, so the graph never meets nodes that
    # in-process tests of this pytest process left in its domain (a stale /inril/learner answering the lifecycle
    # services of the real one stalled the check when test_learner_node ran first)
    env = {key: value for key, value in ros_env.items() if key != "ROS_DOMAIN_ID"}
    proc = subprocess.Popen([str(INRIL), "sim", "--check", *args, "--run-dir", str(run_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()  # every process the supervisor started, to prove none outlives it
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                seen |= {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert "check passed in" in output
    assert len(seen) >= 7
    left = [pid for pid in seen if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left running after the check: {left}"
    return run_dir, output


def _episodes(run_dir: Path) -> list[dict]:
    with (run_dir / "episodes.csv").open() as f:
        return list(csv.DictReader(f))


def test_sim_check_runs_one_episode_through_the_whole_graph(tmp_path: Path, ros_env: dict) -> None:
    small = [f"demos.path={tmp_path / 'demos'}", "demos.n=4", f"pretrain.run_dir={tmp_path / 'pretrain'}",
             "pretrain.max_epochs=2", "pretrain.eval_episodes=1", "train.eval_n_envs=1"]
    run_dir, _ = _run_check(tmp_path, ros_env, small)
    episodes = _episodes(run_dir)
    assert len(episodes) == 1 and episodes[0]["outcome"] in ("success", "timeout")
    assert 0 < int(episodes[0]["length"]) <= 30  # the check's short time limit reached the sim
    assert {p.stem for p in (run_dir / "logs").glob("*.log")} == {n.name for n in load_graph().nodes_for("sim")}
    assert "## Episodes" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize(("task", "obs_dim", "mode"), [("furniture/one_leg", 49, "lockstep"),
                                                       ("furniture/one_leg", 49, "realtime"),
                                                       ("furniture/lamp", 35, "lockstep")])
def test_sim_check_runs_furniture_through_the_whole_graph(tmp_path: Path, ros_env: dict, task: str, obs_dim: int,
                                                          mode: str) -> None:
    """FurnitureBench (the MuJoCo port) through the same graph: one_leg's 49-D observation from five part poses and
    the end-effector twist (the lamp's 35-D from three), 8-D delta-pose commands through the quaternion safety
    filter; the stored episode holds the observations the policy acted on. The demos are random (the graph, not the
    policy, is under test) so the test need not run the scripted expert."""
    from inril_core.episodes.store import Episode, EpisodeStore

    rng = np.random.default_rng(0)
    store = EpisodeStore(tmp_path / "demos")
    for _ in range(2):
        actions = np.concatenate([rng.uniform(-0.01, 0.01, (24, 3)), np.tile([0, 0, 0, 1.0], (24, 1)),
                                  rng.choice([-1.0, 1.0], (24, 1))], axis=1)
        store.append(Episode(rng.normal(size=(24, obs_dim)), actions, np.zeros(24),
                             {"task": task, "source": "scripted", "success": True}))
    small = [f"task={task}", f"demos.path={tmp_path / 'demos'}", f"pretrain.run_dir={tmp_path / 'pre'}",
             "pretrain.max_epochs=1", "pretrain.eval_episodes=1", "train.eval_n_envs=1", "env.max_episode_steps=30",
             "policy.denoiser.channels=[8,16]", "policy.n_steps=4", "rl.ft_denoising_steps=2"]
    # real time under test load: a stall of the whole machine (seen once: ~1.8 s) outlasts the monitor's 2 s chunk
    # deadline and e-stops the episode; the deadline's own trip is tested in test_safety_monitor, not here
    loose = ["safety_monitor.chunk_deadline_s=10"] if mode == "realtime" else []
    run_dir, _ = _run_check(tmp_path, ros_env, [*small, *loose, "--mode", mode])
    episodes = _episodes(run_dir)
    assert len(episodes) == 1 and 0 < int(episodes[0]["length"]) <= 30
    stored = EpisodeStore(run_dir / "episodes")
    assert len(stored) == 1
    episode = stored[0]
    assert episode.observations.shape[1] == obs_dim and episode.actions.shape[1] == 8
    np.testing.assert_allclose(np.linalg.norm(episode.actions[:, 3:7], axis=1), 1.0, atol=1e-6)  # filtered: unit


def test_sim_refuses_an_unknown_mode_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "--mode", "fast", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "--mode fast: choose one of lockstep, realtime" in result.output
    assert not (tmp_path / "run").exists()
