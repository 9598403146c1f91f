"""inril_ros.task_io: the messages the sim bridge publishes for a task rebuild the env's own observation;
malformed messages and unbridged tasks are refused with the reason."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from geometry_msgs.msg import PoseArray

from inril_core.config import load_config
from inril_core.safety import ACTION_NAMES, load_limits
from inril_ros import interfaces
from inril_ros.convert import MessageError, pose_array, twist_stamped
from inril_ros.task_io import BRIDGED_TASKS, task_io


def _observation_through_messages(io, env) -> np.ndarray:
    parts = {}
    for topic, msg in io.messages(io.env_state(env.unwrapped), 1.5).items():
        stamp, parts[topic] = io.read(topic, msg)
        assert stamp == 1_500_000_000
    return io.observation(parts)


@pytest.mark.parametrize("task", ["lift", "furniture/one_leg", "furniture/round_table", "furniture/lamp"])
def test_messages_of_the_env_state_rebuild_the_env_observation(task) -> None:
    io = task_io(task)
    env = gym.make(load_config([f"task={task}"]).env.id, disable_env_checker=True)
    try:
        obs, _ = env.reset(seed=4)
        assert set(io.env_state(env.unwrapped)) == set(io.observation_topics)
        np.testing.assert_array_equal(_observation_through_messages(io, env), obs)
        rng = np.random.default_rng(0)
        for _ in range(3):  # moving: the twist of FurnitureBench's robot_state is not zero any more
            action = io.hold_action.copy()
            action[:3] = rng.uniform(-0.02, 0.02, 3) * (20 if task == "lift" else 1)
            obs, *_ = env.step(action)
        np.testing.assert_array_equal(_observation_through_messages(io, env), obs)
        assert io.obs_dim == obs.shape[0]
    finally:
        env.close()


@pytest.mark.parametrize(("task", "parts", "obs_dim"), [("furniture/one_leg", 5, 49), ("furniture/round_table", 3, 35),
                                                         ("furniture/lamp", 3, 35)])
def test_furniture_tasks_speak_furniture_benchs_frames_and_action(task, parts, obs_dim) -> None:
    io = task_io(task)
    assert io.action_names == ACTION_NAMES["quaternion"] and len(io.action_names) == 8
    np.testing.assert_array_equal(io.hold_action, [0, 0, 0, 0, 0, 0, 1, 0])  # identity rotation, gripper kept
    assert (io.eef_frame, io.objects_frame, io.n_objects, io.obs_dim) == ("panda_link0", "april_tag", parts, obs_dim)
    assert interfaces.EEF_TWIST in io.observation_topics
    assert load_limits(task).action_names == io.action_names  # the executor's filter agrees


@pytest.mark.parametrize("task", BRIDGED_TASKS)
def test_every_bridged_task_has_safety_limits_for_its_action(task) -> None:
    assert load_limits(task).action_names == task_io(task).action_names


def test_a_part_poses_message_short_of_the_parts_is_refused() -> None:
    io = task_io("furniture/one_leg")
    msg = pose_array([([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])] * 4, 0.0, io.objects_frame)
    with pytest.raises(MessageError, match="4 poses, task furniture/one_leg has 5 objects"):
        io.read(interfaces.OBJECT_POSES, msg)


def test_a_round_table_part_poses_message_with_one_leg_s_five_parts_is_refused() -> None:
    io = task_io("furniture/round_table")
    msg = pose_array([([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])] * 5, 0.0, io.objects_frame)
    with pytest.raises(MessageError, match="5 poses, task furniture/round_table has 3 objects"):
        io.read(interfaces.OBJECT_POSES, msg)


def test_a_nan_twist_is_refused_naming_the_component() -> None:
    io = task_io("furniture/one_leg")
    with pytest.raises(MessageError, match=r"NaN/Inf at \[4\]"):
        io.read(interfaces.EEF_TWIST, twist_stamped([0.0, 0.0, 0.0], [0.0, np.nan, 0.0], 0.0, io.eef_frame))


def test_a_task_without_a_bridge_names_the_bridged_ones() -> None:
    with pytest.raises(ValueError, match="furniture/one_leg@isaac.*lift, can, square, furniture/one_leg"):
        task_io("furniture/one_leg@isaac")
    with pytest.raises(MessageError, match="not an observation topic"):
        task_io("lift").read(interfaces.EEF_TWIST, PoseArray())
