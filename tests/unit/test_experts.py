"""The scripted experts read only the observation through a layout, are seeded, and feed the demo store."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import inril_sim
from inril_core.episodes.store import EpisodeStore
from inril_sim.demos import make_demos
from inril_sim.experts import make_expert


def _observations(task: str, seed: int, n: int) -> list[np.ndarray]:
    env = gym.make(inril_sim.fast_env_id(task))
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(n - 1):
        out.append(env.step(rng.uniform(-1, 1, 7).astype(np.float32))[0])
    env.close()
    return out


def test_unknown_task_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        make_expert("stack", noise=0.0, seed=0)


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_action_is_seven_float32_values_in_the_unit_box(task: str) -> None:
    expert = make_expert(task, noise=0.5, seed=0)
    for obs in _observations(task, seed=0, n=20):
        action = expert.act(obs)
        assert action.shape == (7,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)


def test_same_seed_gives_the_same_noisy_actions() -> None:
    observations = _observations("can", seed=1, n=30)
    first, second = make_expert("can", 0.3, seed=5), make_expert("can", 0.3, seed=5)
    other = make_expert("can", 0.3, seed=6)
    a = np.stack([first.act(o) for o in observations])
    b = np.stack([second.act(o) for o in observations])
    c = np.stack([other.act(o) for o in observations])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_expert_reads_fields_through_the_layout_only() -> None:
    """Same fields at other offsets (as another backend might lay them out) give the same actions."""
    observations = _observations("square", seed=2, n=15)
    default = make_expert("square", 0.0, seed=0)
    moved = make_expert(
        "square", 0.0, seed=0,
        layout={"robot0_gripper_qpos": slice(0, 2), "robot0_eef_quat": slice(2, 6),
                "robot0_eef_pos": slice(6, 9), "object": slice(12, 26)},
    )
    for obs in observations:
        shuffled = np.zeros(26, dtype=np.float32)
        shuffled[0:2], shuffled[2:6], shuffled[6:9], shuffled[12:26] = obs[21:23], obs[17:21], obs[14:17], obs[0:14]
        np.testing.assert_array_equal(default.act(obs), moved.act(shuffled))


def test_noisy_expert_still_solves_lift_within_the_horizon() -> None:
    env = gym.make("inril/Lift-v0")
    expert = make_expert("lift", noise=0.3, seed=0)
    successes = 0
    for episode in range(3):
        obs, _ = env.reset(seed=100 + episode)
        expert.reset()
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done = terminated or truncated
        successes += info["success"]
    env.close()
    assert successes >= 2


def test_make_demos_stores_only_successful_episodes_with_metadata(tmp_path) -> None:
    store = EpisodeStore(tmp_path / "demos")
    calls = []
    report = make_demos("lift", 3, store, seed=1, noise_levels=(0.0, 0.3), progress=lambda s, a: calls.append((s, a)))
    assert report["n_stored"] == len(store) == 3 and report["n_attempted"] >= 3
    assert set(report) == {"n_stored", "n_attempted", "success_rate", "seconds", "mean_length"}
    assert calls[-1] == (3, report["n_attempted"])
    for episode in store:
        meta = episode.metadata
        assert meta["task"] == "lift" and meta["source"] == "scripted" and meta["success"] is True
        assert meta["policy_version"] is None and meta["noise"] in (0.0, 0.3) and meta["seed"] >= 1_000_000
        assert episode.rewards[-1] == 1.0 and episode.observations.shape == (len(episode), 19)


def test_make_demos_gives_up_after_max_attempts(tmp_path) -> None:
    store = EpisodeStore(tmp_path / "demos")
    report = make_demos("square", 5, store, noise_levels=(1.0,), max_attempts=1)
    assert report["n_attempted"] == 1 and report["n_stored"] == len(store) <= 1
