"""FurnitureBench's contracts (sim/furniture/contracts.py) against furniture_bench's own definitions, and the
FurnitureSim adapter: its clear error where IsaacGym is missing, a real reset and step where it is present."""
import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from inril_core.config import ConfigError, load_config
from inril_sim.furniture.contracts import (ACTION_DIM, FurnitureContractError, assembled_pairs, flatten_observation,
                                           furniture_spec, to_furniture_action)
from inril_sim.furniture.isaac import selects_isaac

HAS_ISAACGYM = importlib.util.find_spec("isaacgym") is not None


@pytest.fixture(scope="module")
def one_leg():
    return furniture_spec("one_leg")


def test_one_leg_dims_are_furniture_benchs(one_leg):
    from furniture_bench.envs.policy_envs.furniture_dummy import FurnitureDummy

    dummy = FurnitureDummy(furniture="one_leg")  # furniture_bench's space-only env
    assert one_leg.robot_state_dim == dummy.observation_space["robot_state"].shape[0] == 14
    assert ACTION_DIM == dummy.action_space.shape[-1] == 8
    assert len(one_leg.part_names) == 5 and one_leg.obs_dim == 14 + 5 * 7
    assert one_leg.should_be_assembled == ((0, 4),)


def test_the_task_config_matches_the_contract(one_leg):
    for task, env_id in (("furniture/one_leg", "inril_sim:inril/Furniture-one_leg-v0"),
                         ("furniture/one_leg@isaac", "inril_sim:inril/FurnitureSim-one_leg-v0")):
        cfg = load_config([f"task={task}"])
        assert (cfg.env.obs_dim, cfg.env.act_dim) == (one_leg.obs_dim, ACTION_DIM)
        assert cfg.env.id == env_id and cfg.env.max_episode_steps == 700
    with pytest.raises(ConfigError, match="furniture/one_leg"):  # sub-folder tasks are listed among the choices
        load_config(["task=furniture/one_legg"])


def _observation(one_leg):
    robot = {"ee_pos": [1, 2, 3], "ee_quat": [4, 5, 6, 7], "ee_pos_vel": [8, 9, 10], "ee_ori_vel": [11, 12, 13],
             "gripper_width": np.float32(14)}  # FurnitureSim gives the gripper width as a scalar
    return {"robot_state": robot, "parts_poses": 100 + np.arange(35, dtype=np.float32)}


def test_observations_flatten_in_furniture_benchs_order(one_leg):
    from furniture_bench.robot.robot_state import filter_and_concat_robot_state

    obs = _observation(one_leg)
    flat = flatten_observation(one_leg, obs)
    assert flat.dtype == np.float32 and flat.shape == (49,)
    np.testing.assert_array_equal(flat[:14], filter_and_concat_robot_state(dict(obs["robot_state"])))
    layout = one_leg.layout()
    assert flat[layout["gripper_width"]].tolist() == [14]
    np.testing.assert_array_equal(flat[layout[f"pose/{one_leg.part_names[4]}"]], 100 + np.arange(28, 35))
    concatenated = {"robot_state": flat[:14], "parts_poses": obs["parts_poses"]}  # concat_robot_state=True form
    np.testing.assert_array_equal(flatten_observation(one_leg, concatenated), flat)


@pytest.mark.parametrize("change, message", [
    (lambda o: o.pop("parts_poses"), "lacks parts_poses"),
    (lambda o: o["robot_state"].pop("ee_quat"), "robot_state lacks ee_quat"),
    (lambda o: o.__setitem__("parts_poses", np.zeros(28)), "parts_poses has 28 numbers, FurnitureBench defines 35"),
    (lambda o: o["robot_state"].__setitem__("ee_pos", [0, np.nan, 0]), r"robot_state holds non-finite values at \[1\]"),
])
def test_malformed_observations_are_named(one_leg, change, message):
    obs = _observation(one_leg)
    change(obs)
    with pytest.raises(FurnitureContractError, match=message):
        flatten_observation(one_leg, obs)


def test_actions_are_clipped_and_their_quaternion_normalised():
    out = to_furniture_action(np.array([0.5, -2.0, 0.0, 0.0, 0.0, 0.3, 0.4, 1.0]))
    np.testing.assert_allclose(out, [0.5, -1.0, 0.0, 0.0, 0.0, 0.6, 0.8, 1.0])
    with pytest.raises(FurnitureContractError, match=r"shape \(7,\), expected \(8,\)"):
        to_furniture_action(np.zeros(7))
    with pytest.raises(FurnitureContractError, match="non-finite"):
        to_furniture_action(np.array([0, 0, 0, 0, 0, 0, 1, np.inf]))
    with pytest.raises(FurnitureContractError, match=r"no direction; 'no rotation' is \(0, 0, 0, 1\)"):
        to_furniture_action(np.array([0.1, 0, 0, 0, 0, 0, 0, 1]))


def _parts_with_leg_at(rel_pos, rel_rpy) -> np.ndarray:
    """Five part poses (xyzw quaternions) with leg 4 at ``rel`` in the top's frame; the top turned and moved."""
    from furniture_bench.utils import transform
    from furniture_bench.utils.pose import get_mat

    top = get_mat([0.1, 0.2, 0.03], [0.1, -0.3, 0.7])
    leg = top @ get_mat(rel_pos, rel_rpy)
    poses = np.zeros((5, 7), dtype=np.float32)
    poses[:, 6] = 1.0
    for i, mat in ((0, top), (4, leg)):
        poses[i, :3], poses[i, 3:] = mat[:3, 3], transform.mat2quat(mat[:3, :3])
    return poses.reshape(-1)


HOLE = [0.05625, 0.046875, -0.05625]  # one of the four assembled leg positions of square_table (its top's frame)


@pytest.mark.parametrize("offset, rpy, reward_check, strict_check", [
    ([0, 0, 0], [0, 0, 0], True, True),                       # seated
    ([0.004, 0.004, -0.004], [0, 0, 0], True, True),          # within 5 mm on every axis
    ([0, 0.008, 0], [0, 0, 0], False, False),                 # 8 mm short along the insertion axis (y, 5 mm)
    ([0.008, 0, 0], [0, 0, 0], True, False),                  # 8 mm sideways: the reward check's 10 mm, not 5 mm
    ([0, 0, 0], [0, np.deg2rad(15), 0], True, False),         # 15 deg of twist: cos 0.966 is >= 0.94, < 0.98
    ([0, 0, 0], [0, np.pi / 2, 0], False, False),             # a quarter turn is not the identity FurnitureBench asks
    ([0.02, 0.01, 0.015], [0, 0, 0], False, False),          # 27 mm away: rejected before furniture_bench's check
])
def test_success_is_furniture_benchs_assembled_check(one_leg, offset, rpy, reward_check, strict_check):
    poses = _parts_with_leg_at(np.add(HOLE, offset), rpy)
    assert (assembled_pairs(one_leg, poses) == [(0, 4)]) is reward_check
    assert (assembled_pairs(one_leg, poses, strict=True) == [(0, 4)]) is strict_check


def test_isaac_tasks_are_recognised_on_the_command_line():
    assert selects_isaac(["train", "task=furniture/one_leg@isaac", "seed=1"])
    assert not selects_isaac(["train", "task=furniture/one_leg", "note=@isaac"])


@pytest.mark.skipif(HAS_ISAACGYM, reason="IsaacGym is installed: the adapter runs instead (next test)")
def test_furniture_sim_without_isaacgym_says_how_to_install_it():
    with pytest.raises(ImportError, match=r"isaac-gym.*pip install -e isaacgym/python.*task=furniture/<name>"):
        gym.make("inril_sim:inril/FurnitureSim-one_leg-v0")


@pytest.mark.skipif(not HAS_ISAACGYM, reason="needs NVIDIA IsaacGym and a GPU (FurnitureSim)")
def test_furniture_sim_resets_and_steps_through_the_contract(one_leg):
    env = gym.make("inril_sim:inril/FurnitureSim-one_leg-v0")
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (one_leg.obs_dim,) and np.all(np.isfinite(obs)) and info["success"] is False
        still = np.array([0, 0, 0, 0, 0, 0, 1, -1], dtype=np.float32)  # no motion, gripper open
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(still)
        assert obs.shape == (one_leg.obs_dim,) and reward == 0.0 and not terminated and not truncated
        # an arm told to hold still barely moves (FurnitureSim's OSC; 1 cm of slack)
        layout = one_leg.layout()
        assert np.linalg.norm(obs[layout["ee_pos"]] - env.reset(seed=0)[0][layout["ee_pos"]]) < 0.01
    finally:
        env.close()


@pytest.mark.parametrize("furniture", ["one_leg", "lamp", "round_table"])
def test_each_furniture_policy_aligns_every_quaternion_of_the_contract(furniture):
    """Every furniture task config names the contract's quaternions (ee_quat, then each part's) and the action's
    delta quaternion, so a policy's normalisers align each of them (one_leg's base needed both)."""
    contract = furniture_spec(furniture)
    layout = contract.layout()
    starts = [layout["ee_quat"].start] + [layout[f"pose/{p}"].start + 3 for p in contract.part_names]
    for task in (f"furniture/{furniture}", f"furniture/{furniture}@isaac"):
        cfg = load_config([f"task={task}"])
        assert list(cfg.policy.obs_quaternions) == starts
        assert list(cfg.policy.act_quaternions) == [3]
