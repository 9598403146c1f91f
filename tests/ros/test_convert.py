"""Message conversions: actions survive a trajectory round trip, malformed messages are refused by name."""
from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros.convert import (
    MessageError,
    actions_to_trajectory,
    json_payload,
    s_to_time,
    time_to_s,
    trajectory_to_actions,
)

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components


def test_chunk_round_trips_through_joint_trajectory() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 7))
    msg = actions_to_trajectory(actions, stamp_s=12.5, dt=0.05, names=AXIS_ANGLE)
    back, offsets = trajectory_to_actions(msg, AXIS_ANGLE)
    np.testing.assert_allclose(back, actions)
    np.testing.assert_allclose(offsets, [0.0, 0.05, 0.1, 0.15])
    assert time_to_s(msg.header.stamp) == 12.5


def test_reordered_joint_names_are_put_back_in_action_order() -> None:
    actions = np.arange(7, dtype=float)[None]
    msg = actions_to_trajectory(actions, 0.0, 0.05, AXIS_ANGLE)
    msg.joint_names = list(reversed(msg.joint_names))
    msg.points[0].positions = list(reversed(msg.points[0].positions))
    np.testing.assert_array_equal(trajectory_to_actions(msg, AXIS_ANGLE)[0], actions)


def test_trajectory_with_unknown_names_is_refused() -> None:
    msg = JointTrajectory(joint_names=["a", "b"])
    with pytest.raises(MessageError, match="not the task.s action names"):
        trajectory_to_actions(msg, AXIS_ANGLE)


def test_time_conversion_keeps_nanoseconds() -> None:
    assert time_to_s(s_to_time(1.000000001)) == pytest.approx(1.000000001, abs=1e-12)


def test_non_json_string_is_refused() -> None:
    with pytest.raises(MessageError, match="JSON object"):
        json_payload(String(data="not json"))
