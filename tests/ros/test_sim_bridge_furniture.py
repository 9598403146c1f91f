"""sim_bridge on FurnitureBench's one_leg (the MuJoCo port): it publishes what FurnitureBench's real robot gives a
policy (arm joints, end-effector pose and twist in the robot-base frame, the five part poses in the AprilTag frame,
the three cameras), steps on FurnitureBench's 8-D delta-pose command, and holds with the identity rotation."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces
from inril_ros.convert import actions_to_trajectory, json_payload, time_to_s
from inril_ros.sim_bridge import SimBridge
from inril_ros.task_io import task_io
from ros_helpers import call_trigger, spin_until

TASK = "furniture/one_leg"
TIMEOUT_S = 30.0
DOWN = np.array([[0.0, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0, -1.0]])  # 1 cm down, no rotation, gripper open


class Probe:
    """Records every observation topic of one_leg and the step outcomes; sends commands and resets."""

    def __init__(self, context, **params) -> None:
        self.bridge = SimBridge(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {"task": TASK, **params}.items()])
        self.node = Node("probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.bridge)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}
        topics = {interfaces.EEF_POSE: PoseStamped, interfaces.EEF_TWIST: TwistStamped,
                  interfaces.GRIPPER_STATE: JointState, interfaces.OBJECT_POSES: PoseArray,
                  interfaces.JOINT_STATES: JointState}
        for topic, kind in topics.items():
            self.node.create_subscription(kind, topic, self.received.setdefault(topic, []).append, interfaces.LATEST)
        for camera in self.bridge.cameras:
            self.node.create_subscription(Image, interfaces.camera_image(camera),
                                          self.received.setdefault(camera, []).append, interfaces.SENSOR)
        self.steps: list[dict] = []
        self.node.create_subscription(String, interfaces.STEP_INFO, lambda m: self.steps.append(json_payload(m)),
                                      interfaces.STREAM)
        self.command_pub = self.node.create_publisher(JointTrajectory, interfaces.COMMAND, interfaces.LATEST)
        self.reset_client = self.node.create_client(Trigger, interfaces.SIM_RESET)

    def reset(self) -> dict:
        reply = json.loads(call_trigger(self.executor, self.reset_client, TIMEOUT_S).message)
        assert spin_until(self.executor, lambda: self.received[interfaces.EEF_POSE], TIMEOUT_S)
        assert spin_until(self.executor, lambda: self.command_pub.get_subscription_count() > 0, TIMEOUT_S)
        return reply

    def newest(self, topic: str):
        return self.received[topic][-1]

    def observation_from_messages(self) -> np.ndarray:
        """The observation the policy server builds from the newest messages."""
        io = task_io(TASK)
        parts = {}
        for topic in io.observation_topics:
            stamp, parts[topic] = io.read(topic, self.newest(topic))
            assert stamp == self.newest(interfaces.EEF_POSE).header.stamp.sec * 10 ** 9 + \
                self.newest(interfaces.EEF_POSE).header.stamp.nanosec  # one stamp for the whole observation
        return io.observation(parts)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.bridge.destroy_node()


@contextmanager
def _probe(ros_context, **params) -> Iterator[Probe]:
    probe = Probe(ros_context, **params)
    try:
        yield probe
    finally:
        probe.close()


def test_one_leg_bridge_publishes_what_furniture_bench_gives_a_policy_and_steps_on_its_action(ros_context) -> None:
    with _probe(ros_context) as probe:
        reply = probe.reset()
        assert spin_until(probe.executor, lambda: all(probe.received[t] for t in task_io(TASK).observation_topics),
                          TIMEOUT_S)
        parts, eef = probe.newest(interfaces.OBJECT_POSES), probe.newest(interfaces.EEF_POSE)
        assert len(parts.poses) == 5 and parts.header.frame_id == "april_tag"
        assert eef.header.frame_id == probe.newest(interfaces.EEF_TWIST).header.frame_id == "panda_link0"
        assert len(probe.newest(interfaces.JOINT_STATES).name) == 9  # seven arm joints and two fingers
        np.testing.assert_array_equal(probe.observation_from_messages(), probe.bridge.observation)

        probe.command_pub.publish(actions_to_trajectory(DOWN, reply["stamp"], 0.05, ACTION_NAMES["quaternion"]))
        assert spin_until(probe.executor, lambda: probe.steps, TIMEOUT_S), "no step on an 8-D command"
        assert spin_until(probe.executor, lambda: time_to_s(probe.newest(interfaces.EEF_TWIST).header.stamp)
                          == pytest.approx(probe.steps[0]["stamp"], abs=1e-9), TIMEOUT_S)
        assert probe.newest(interfaces.EEF_POSE).pose.position.z < eef.pose.position.z  # it went down
        assert probe.newest(interfaces.EEF_TWIST).twist.linear.z < 0
        np.testing.assert_array_equal(probe.observation_from_messages(), probe.bridge.observation)


def test_a_seven_d_command_is_refused_on_one_leg(ros_context) -> None:
    with _probe(ros_context) as probe:
        reply = probe.reset()
        seven = np.zeros((1, 7))
        probe.command_pub.publish(actions_to_trajectory(seven, reply["stamp"], 0.05, ACTION_NAMES["axis_angle"]))
        assert spin_until(probe.executor, lambda: probe.bridge.commands_refused == 1, TIMEOUT_S)
        assert probe.bridge.steps == 0


def test_realtime_holds_keep_the_arm_still_with_the_identity_rotation(ros_context) -> None:
    with _probe(ros_context, mode="realtime", control_rate_hz=50.0) as probe:
        probe.reset()
        start = probe.newest(interfaces.EEF_POSE).pose.position
        assert spin_until(probe.executor, lambda: len(probe.steps) >= 5, TIMEOUT_S)
        assert probe.bridge.holds >= 5 and probe.bridge.commands_refused == 0
        now = probe.newest(interfaces.EEF_POSE).pose.position
        assert np.linalg.norm([now.x - start.x, now.y - start.y, now.z - start.z]) < 0.002


def test_the_three_furniture_bench_cameras_are_published(ros_context) -> None:
    with _probe(ros_context, cameras=["wrist", "front", "rear"], camera_width=64, camera_height=64) as probe:
        reply = probe.reset()
        assert spin_until(probe.executor, lambda: all(probe.received[c] for c in ("wrist", "front", "rear")),
                          TIMEOUT_S)
        for camera in ("wrist", "front", "rear"):
            image = probe.newest(camera)
            assert (image.encoding, image.width, image.height) == ("rgb8", 64, 64)
            assert time_to_s(image.header.stamp) == pytest.approx(reply["stamp"], abs=1e-9)
            assert np.frombuffer(image.data, np.uint8).std() > 0  # a rendered scene, not a blank buffer
