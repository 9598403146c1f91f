"""robosuite 1.5.2's TwoArmTransport behind the inril contract, and the scripted expert on both backends.

Slow: robosuite runs Transport at ~40-65 env steps/s here (two Pandas, Python OSC per arm), so an expert episode
takes 6-15 s. The expert counts are small; the full table comes from ``python -m inril_sim.parity transport``.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import inril_sim
from inril_sim.layout import TRANSPORT_OBJECT_LAYOUT
from inril_sim.parity import BACKEND_IDS, expert_parity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env() -> gym.Env:
    inril_sim.register_envs()
    made = gym.make(BACKEND_IDS["transport"]["robosuite"])
    yield made
    made.close()


def test_contract_matches_the_fast_env(env: gym.Env) -> None:
    fast = gym.make(BACKEND_IDS["transport"]["fast"])
    try:
        assert env.unwrapped.obs_layout == fast.unwrapped.obs_layout
        assert env.observation_space.shape == fast.observation_space.shape == (59,)
        assert env.action_space.shape == fast.action_space.shape == (14,)
        assert env.spec.max_episode_steps == fast.spec.max_episode_steps == 800
    finally:
        fast.close()


def test_object_vector_is_robosuites_observables_in_robomimics_order(env: gym.Env) -> None:
    obs, info = env.reset(seed=0)
    assert info == {"success": False} and obs.dtype == np.float32
    own = env.unwrapped.robosuite_env._get_observations(force_update=True)
    for key, part in TRANSPORT_OBJECT_LAYOUT.items():
        np.testing.assert_allclose(obs[part], np.atleast_1d(np.asarray(own[key], dtype=float)), atol=1e-5,
                                   err_msg=key)
    for key in ("robot0_eef_pos", "robot1_eef_quat", "robot1_gripper_qpos"):
        np.testing.assert_allclose(obs[env.unwrapped.obs_layout[key]], own[key], atol=1e-6, err_msg=key)


def test_same_seed_repeats_the_episode(env: gym.Env) -> None:
    action = np.tile(np.array([0.5, -0.3, -0.2, 0.1, 0.0, 0.2, 1.0], dtype=np.float32), 2)

    def rollout(seed: int) -> np.ndarray:
        first, _ = env.reset(seed=seed)
        return np.stack([first] + [env.step(action)[0] for _ in range(3)])

    assert np.array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7)[0], rollout(8)[0])


def test_delta_actions_are_world_frame_for_both_opposed_arms(env: gym.Env) -> None:
    """robomimic's datasets (robosuite <= 1.4) and the fast env read deltas in the world frame; robosuite 1.5's
    default is each base's frame, which for the opposed Pandas would turn +x into -+y."""
    obs, _ = env.reset(seed=1)
    layout = env.unwrapped.obs_layout
    start = [obs[layout[f"robot{arm}_eef_pos"]].copy() for arm in range(2)]
    action = np.zeros(14, dtype=np.float32)
    action[0] = action[7] = 1.0
    for _ in range(8):
        obs = env.step(action)[0]
    for arm in range(2):
        moved = obs[layout[f"robot{arm}_eef_pos"]] - start[arm]
        assert moved[0] > 0.06 and abs(moved[1]) < 0.02, (arm, moved)


def test_success_gives_reward_one_and_terminates(env: gym.Env) -> None:
    env.reset(seed=2)
    suite = env.unwrapped.robosuite_env
    target, trash_bin = suite.transport.target_bin_pos, suite.transport.trash_bin_pos
    for obj, pos in ((suite.transport.payload, target + [0.0, 0.0, 0.03]),
                     (suite.transport.trash, trash_bin + [0.0, 0.0, 0.03])):
        qpos = suite.sim.data.get_joint_qpos(obj.joints[0]).copy()
        qpos[:3] = pos
        suite.sim.data.set_joint_qpos(obj.joints[0], qpos)
    suite.sim.forward()
    done, steps = False, 0
    while not done and steps < 20:  # let both fall the few millimetres onto the bases
        _, reward, done, truncated, info = env.step(np.zeros(14, dtype=np.float32))
        steps += 1
    assert (reward, done, truncated, info["success"]) == (1.0, True, False, True)


def test_noiseless_expert_succeeds_on_both_backends() -> None:
    result = expert_parity("transport", n_episodes=3, noise=0.0, seed=0)
    assert result["fast"]["success_rate"] == 1.0, result
    assert result["robosuite"]["success_rate"] >= 2 / 3, result
