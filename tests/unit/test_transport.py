"""The fast two-arm Transport honours robomimic's contract, robosuite's reset ranges and success test, and its
scripted expert solves it (real MuJoCo, a few episodes)."""
from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import inril_sim
from inril_core.config import load_config
from inril_core.episodes.store import EpisodeStore
from inril_sim.demos import make_demos
from inril_sim.experts import make_expert
from inril_sim.layout import TRANSPORT_OBJECT_LAYOUT, obs_layout
from inril_sim.rotations import quat_to_mat, xyzw_to_wxyz, yaw_of
from inril_sim.transport import (
    BIN_FLOOR,
    HANDOVER_REACH,
    HEAD_HALF,
    HOME_POS,
    PLACEMENT_TOL,
    START_BIN_XY,
    TARGET_BIN_XY,
    TRASH_BIN_XY,
    TRASH_HALF,
    TransportEnv,
)

ROBOMIMIC_OBJECT_KEYS = [
    "payload_pos", "payload_quat", "trash_pos", "trash_quat", "lid_handle_pos", "lid_handle_quat",
    "target_bin_pos", "trash_bin_pos", "gripper0_to_payload", "gripper0_to_lid_handle", "gripper1_to_payload",
    "gripper1_to_trash", "payload_in_target_bin", "trash_in_trash_bin",
]


@pytest.fixture(scope="module")
def env() -> gym.Env:
    made = gym.make(inril_sim.fast_env_id("transport"))
    yield made
    made.close()


def _field(obs: np.ndarray, key: str) -> np.ndarray:
    return obs[TRANSPORT_OBJECT_LAYOUT[key]].astype(np.float64)


def test_transport_is_registered_with_dppo_horizon_and_config_dims(env: gym.Env) -> None:
    cfg = load_config(["task=transport"])
    assert inril_sim.fast_env_id("transport") == "inril/Transport-v0" == cfg.env.id.split(":", 1)[1]
    assert env.spec.max_episode_steps == cfg.env.max_episode_steps == 800
    assert env.observation_space.shape == (cfg.env.obs_dim,) == (59,)
    assert env.action_space.shape == (cfg.env.act_dim,) == (14,)
    assert load_config(["task=transport@robosuite"]).env.id == "inril_sim:inril/Transport-robosuite-v0"


def test_observation_is_robomimics_transport_low_dim_layout(env: gym.Env) -> None:
    obs, info = env.reset(seed=0)
    layout = env.unwrapped.obs_layout
    assert info == {"success": False} and obs.dtype == np.float32 and obs.shape == (59,)
    assert layout == obs_layout("transport")
    assert list(layout) == ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos",
                            "robot1_eef_pos", "robot1_eef_quat", "robot1_gripper_qpos"]
    assert layout["object"] == slice(0, 41)
    assert list(TRANSPORT_OBJECT_LAYOUT) == ROBOMIMIC_OBJECT_KEYS
    assert max(s.stop for s in TRANSPORT_OBJECT_LAYOUT.values()) == 41


def test_object_block_has_robosuites_meaning(env: gym.Env) -> None:
    obs, _ = env.reset(seed=3)
    layout, sim = env.unwrapped.obs_layout, env.unwrapped
    eef0, eef1 = obs[layout["robot0_eef_pos"]], obs[layout["robot1_eef_pos"]]
    payload, trash, lid = (_field(obs, k) for k in ("payload_pos", "trash_pos", "lid_handle_pos"))
    np.testing.assert_allclose(_field(obs, "gripper0_to_payload"), payload - eef0, atol=1e-6)
    np.testing.assert_allclose(_field(obs, "gripper0_to_lid_handle"), lid - eef0, atol=1e-6)
    np.testing.assert_allclose(_field(obs, "gripper1_to_payload"), payload - eef1, atol=1e-6)
    np.testing.assert_allclose(_field(obs, "gripper1_to_trash"), trash - eef1, atol=1e-6)
    for key in ("payload_quat", "trash_quat", "lid_handle_quat"):  # xyzw with w >= 0, as robosuite's mat2quat
        quat = _field(obs, key)
        assert np.isclose(np.linalg.norm(quat), 1.0, atol=1e-5) and quat[3] >= 0
    np.testing.assert_allclose(lid, sim.object_pose("lid")[0] + [0, 0, 0.005], atol=1e-6)  # handle above the lid
    for key in ("target_bin_pos", "trash_bin_pos"):  # the base geom's centre, 5 mm below the bins' floor
        assert np.isclose(_field(obs, key)[2], BIN_FLOOR - 0.005, atol=1e-6)
    assert _field(obs, "payload_in_target_bin")[0] == 0.0 and _field(obs, "trash_in_trash_bin")[0] == 0.0


def test_reset_draws_robosuites_placements(env: gym.Env) -> None:
    head_up, yaws = [], []
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        start_xy = env.unwrapped.bin_pos("start_bin")[:2]
        for key, centre in (("target_bin_pos", TARGET_BIN_XY), ("trash_bin_pos", TRASH_BIN_XY)):
            assert np.all(np.abs(_field(obs, key)[:2] - centre) <= PLACEMENT_TOL)
        assert np.all(np.abs(start_xy - START_BIN_XY) <= PLACEMENT_TOL)
        np.testing.assert_allclose(_field(obs, "lid_handle_pos")[:2], start_xy, atol=1e-6)
        np.testing.assert_allclose(_field(obs, "payload_pos")[:2], start_xy, atol=1e-6)
        np.testing.assert_allclose(_field(obs, "trash_pos")[:2], _field(obs, "target_bin_pos")[:2], atol=1e-6)
        assert abs(yaw_of(xyzw_to_wxyz(_field(obs, "trash_quat")))) <= 0.3 * np.pi + 1e-6
        axes = quat_to_mat(xyzw_to_wxyz(_field(obs, "payload_quat")))
        handle, body_y = axes[:, 2], axes[:, 1]
        assert abs(handle[2]) < 1e-6 and abs(abs(body_y[2]) - 1) < 1e-6  # lying flat
        heading = np.arctan2(handle[1], handle[0])  # head toward +y with body y up, toward -y with body y down
        assert abs(abs(heading) - np.pi / 2) <= np.pi / 6 + 1e-6 and np.sign(heading) == np.sign(body_y[2])
        head_up.append(body_y[2] > 0)
        yaws.append(abs(heading))
        for arm in range(2):
            assert np.linalg.norm(obs[obs_layout("transport")[f"robot{arm}_eef_pos"]] - HOME_POS[arm]) < 0.08
    assert 5 < sum(head_up) < 25 and np.ptp(yaws) > np.pi / 6  # both flips, and the heading spread


def test_same_seed_repeats_the_episode(env: gym.Env) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 14)).astype(np.float32)

    def rollout(seed: int) -> np.ndarray:
        first, _ = env.reset(seed=seed)
        return np.stack([first] + [env.step(a)[0] for a in actions])

    assert np.array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7)[0], rollout(8)[0])


def test_each_half_of_the_action_drives_its_own_arm(env: gym.Env) -> None:
    obs, _ = env.reset(seed=1)
    layout = env.unwrapped.obs_layout
    start = [obs[layout[f"robot{arm}_eef_pos"]].copy() for arm in range(2)]
    action = np.zeros(14, dtype=np.float32)
    action[0] = 1.0  # robot0 +x; robot1 holds still
    for _ in range(8):
        obs = env.step(action)[0]
    moved = [obs[layout[f"robot{arm}_eef_pos"]] - start[arm] for arm in range(2)]
    assert 0.075 < moved[0][0] < 0.095  # robosuite's 8.6 cm for 8 steps of a = +1
    assert np.linalg.norm(moved[1]) < 0.005


def test_a_seven_number_action_is_refused_with_the_expected_shape(env: gym.Env) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(14,\).*7 numbers per arm"):
        env.step(np.zeros(7, dtype=np.float32))


def test_neither_gripper_reaches_past_the_handover_zone(env: gym.Env) -> None:
    env.reset(seed=2)
    toward_other = np.zeros(14, dtype=np.float32)
    toward_other[1], toward_other[8] = 1.0, -1.0  # robot0 +y, robot1 -y
    for _ in range(60):
        env.step(toward_other)
    sim = env.unwrapped
    assert sim.hand_pos(0)[1] < HANDOVER_REACH + 0.01 and sim.hand_pos(1)[1] > -HANDOVER_REACH - 0.01


def _place(sim: TransportEnv, name: str, pos: np.ndarray) -> None:
    sim._set_pose(name, list(pos), sim.object_pose(name)[1].copy())


def test_success_needs_hammer_on_target_base_and_trash_on_trash_base() -> None:
    """robosuite's test: contact of the hammer with the target bin's base and of the trash with the trash bin's."""
    sim = TransportEnv()
    sim.reset(seed=0)
    target, trash_bin = sim.bin_pos("target_bin")[:2], sim.bin_pos("trash_bin")[:2]
    sink = 0.001  # a millimetre into the base, as a resting object sits

    def check(payload: np.ndarray, trash: np.ndarray) -> bool:
        _place(sim, "payload", payload)
        _place(sim, "trash", trash)
        mujoco.mj_forward(sim.model, sim.data)
        return sim._is_success()

    in_target = np.array([target[0], target[1] + 0.01, BIN_FLOOR + HEAD_HALF - sink])
    in_trash = np.array([trash_bin[0], trash_bin[1], BIN_FLOOR + TRASH_HALF - sink])
    assert check(in_target, in_trash)
    assert sim.in_bins() == (True, True)
    assert not check(in_target + [0, 0, 0.05], in_trash)  # held above the target bin's base
    assert not check(in_target, in_trash + [0, 0, 0.05])
    assert not check(in_target, np.array([target[0], target[1] - 0.08, BIN_FLOOR + TRASH_HALF - sink]))
    assert not check(np.array([trash_bin[0], trash_bin[1] + 0.06, BIN_FLOOR + HEAD_HALF - sink]), in_trash)


def test_success_gives_reward_one_and_terminates() -> None:
    env = gym.make("inril/Transport-v0")
    env.reset(seed=0)
    sim = env.unwrapped
    target, trash_bin = sim.bin_pos("target_bin")[:2], sim.bin_pos("trash_bin")[:2]
    _place(sim, "payload", np.array([target[0], target[1] + 0.01, BIN_FLOOR + HEAD_HALF]))
    _place(sim, "trash", np.array([trash_bin[0], trash_bin[1], BIN_FLOOR + TRASH_HALF]))
    obs, reward, terminated, truncated, info = env.step(np.zeros(14, dtype=np.float32))
    env.close()
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert _field(obs, "payload_in_target_bin")[0] == 1.0 and _field(obs, "trash_in_trash_bin")[0] == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_noiseless_expert_completes_transport(env: gym.Env, seed: int) -> None:
    expert = make_expert("transport", noise=0.0, seed=0)
    obs, _ = env.reset(seed=seed)
    rewards, done = [], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        rewards.append(reward)
        done = terminated or truncated
    assert terminated and info["success"] and sum(rewards) == 1.0
    assert expert.phases[0] == "done:"  # robot0 handed the hammer over rather than placing it itself


def test_expert_action_is_fourteen_float32_values_in_the_unit_box(env: gym.Env) -> None:
    expert = make_expert("transport", noise=0.5, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        action = expert.act(obs)
        assert action.shape == (14,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
        obs = env.step(action)[0]


def test_make_demos_stores_transport_episodes(tmp_path) -> None:
    store = EpisodeStore(tmp_path / "demos")
    report = make_demos("transport", 1, store, seed=0, noise_levels=(0.0,))
    assert report["n_stored"] == len(store) == 1
    episode = store[0]
    assert episode.metadata["task"] == "transport" and episode.metadata["success"] is True
    assert episode.observations.shape == (len(episode), 59) and episode.actions.shape == (len(episode), 14)
    assert episode.rewards[-1] == 1.0
