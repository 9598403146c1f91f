"""Rollout workers on Ray are indistinguishable from the local vector env (Rosetta-style parity on real Lift).

A real local Ray session (2 CPUs, loopback only) is shared by the module and always shut down. 5 envs over 2 workers
(slices of 3 and 2): the same seeds and actions through `vector="ray"` and `vector="sync"` must give identical
observations, rewards, dones, step outcomes and infos, over episodes that end together (time-outs) and apart
(one env reset alone mid-episode), each ending with a same-step autoreset. Then the scaling benchmark, briefly.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from inril_core import ray_envs
from inril_core.envs import make_env, make_vector_env, step_outcome
from inril_core.rollout_bench import measure_rollout_scaling

ENV_ID, MAX_STEPS, ACT_STEPS, N_ENVS, WORKERS = "inril_sim:inril/Lift-v0", 10, 4, 5, 2
SEEDS = [11, 22, 33, 44, 55]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ray_module():
    with ray_envs.ray_session(None, num_cpus=2) as ray:
        yield ray


def rollout(vector: str) -> list[tuple]:
    """Every output of: reset, 3 steps (all time out in the third), 1 step, reset env 1 alone (it then times out a
    step after the others), 4 steps."""
    envs = make_vector_env(ENV_ID, N_ENVS, MAX_STEPS, ACT_STEPS, vector, workers=WORKERS)
    rng = np.random.default_rng(0)
    try:
        out = [envs.reset(seed=SEEDS)]
        for t in range(8):
            if t == 4:
                out.append(envs.reset(seed=SEEDS, options={"reset_mask": np.arange(N_ENVS) == 1}))
            out.append(envs.step(rng.uniform(-1, 1, envs.action_space.shape).astype(np.float32)))
    finally:
        envs.close()
    return out


@pytest.fixture(scope="module")
def both(ray_module):
    return rollout("ray"), rollout("sync")


def assert_same(a, b, where: str) -> None:
    """Equal values, dtypes, shapes and key order, through nested info dicts and object arrays (final_obs)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert b.dtype == object and a.shape == b.shape, where
        for i, (x, y) in enumerate(zip(a, b)):
            assert (x is None) == (y is None), f"{where}[{i}]"
            if x is not None:
                assert_same(x, y, f"{where}[{i}]")
    else:
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)


def test_rollout_covers_autoresets_together_and_apart(both):
    _, local = both
    steps = [o for o in local if len(o) == 5]
    ended = [o[2] | o[3] for o in steps]
    assert any(e.all() for e in ended), "no step where every env ended together"
    assert any(e.any() and not e.all() for e in ended), "no step where only some envs ended"


def test_observations_rewards_and_dones_match_the_local_vector_env(both):
    for t, (remote, local) in enumerate(zip(*both)):
        for k in range(len(local) - 1):  # everything but the info
            assert_same(remote[k], local[k], f"output {t}[{k}]")


def test_infos_match_the_local_vector_env_key_for_key(both):
    for t, (remote, local) in enumerate(zip(*both)):
        assert_same(remote[-1], local[-1], f"info {t}")


def test_step_outcomes_match(both):
    for remote, local in zip(*both):
        if len(local) == 5:
            ended = local[2] | local[3]
            assert_same(np.stack(step_outcome(remote[4], ended)), np.stack(step_outcome(local[4], ended)), "outcome")


def test_final_obs_are_writable_like_the_local_ones(both):
    remote = [o[4] for o in both[0] if len(o) == 5 and "final_obs" in o[4]]
    assert remote and all(x.flags.writeable for info in remote for x in info["final_obs"] if x is not None)


def test_reset_seed_i_reaches_env_i(ray_module):
    envs = make_vector_env(ENV_ID, N_ENVS, MAX_STEPS, ACT_STEPS, "ray", workers=WORKERS)
    try:
        obs, _ = envs.reset(seed=SEEDS[::-1])
    finally:
        envs.close()
    alone = [make_env(ENV_ID, MAX_STEPS, ACT_STEPS).reset(seed=s)[0] for s in SEEDS[::-1]]
    np.testing.assert_array_equal(obs, np.stack(alone))


def test_close_ends_every_worker_actor(ray_module):
    envs = make_vector_env(ENV_ID, N_ENVS, MAX_STEPS, ACT_STEPS, "ray", workers=WORKERS)
    workers = list(envs.workers)
    assert len(named_rollout_actors(ray_module)) == WORKERS
    envs.close()
    deadline = time.monotonic() + 10
    while named_rollout_actors(ray_module) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert named_rollout_actors(ray_module) == []
    with pytest.raises(ray_module.exceptions.RayActorError):
        ray_module.get(workers[0].spaces.remote(), timeout=10)


def named_rollout_actors(ray) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("inril-rollout")]


def test_more_workers_than_envs_is_refused_before_ray_starts():
    with pytest.raises(ValueError, match="env.workers"):
        make_vector_env(ENV_ID, 2, MAX_STEPS, ACT_STEPS, "ray", workers=3)


def test_scaling_benchmark_writes_a_row_per_worker_count(ray_module, tmp_path):
    seen: list[float] = []
    summary = measure_rollout_scaling(ENV_ID, n_envs=N_ENVS, workers=(1, 2), seconds=0.5, max_episode_steps=MAX_STEPS,
                                      act_steps=ACT_STEPS, out_dir=tmp_path, progress=lambda _, f: seen.append(f))
    assert [(r["vector"], r["workers"]) for r in summary["rows"]] == [("sync", 0), ("ray", 1), ("ray", 2)]
    assert all(r["env_steps_per_s"] > 0 for r in summary["rows"]) and seen[-1] == pytest.approx(1.0)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "| ray, 2 workers |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "scaling.png").stat().st_size > 0
