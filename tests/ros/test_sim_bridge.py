"""sim_bridge: lock-step stepping on stamped commands, observations that rebuild the env's own vector, cameras."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_helpers import call_trigger, spin_until
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces
from inril_ros.convert import actions_to_trajectory, json_payload, pose_to_arrays, time_to_s
from inril_ros.sim_bridge import SimBridge
from inril_sim.layout import flat_observation
from inril_sim.rotations import xyzw_to_wxyz
from inril_sim.scene import CONTROL_DT

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

TIMEOUT_S = 20.0
UP = np.array([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])


@dataclass
class Probe:
    """A test node standing in for the rest of the graph: records what the bridge publishes, sends commands."""

    node: Node
    executor: SingleThreadedExecutor
    bridge: SimBridge
    eef: list[PoseStamped] = field(default_factory=list)
    objects: list[PoseArray] = field(default_factory=list)
    gripper: list[JointState] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    infos: list[CameraInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        state = interfaces.LATEST
        self.node.create_subscription(PoseStamped, interfaces.EEF_POSE, self.eef.append, state)
        self.node.create_subscription(PoseArray, interfaces.OBJECT_POSES, self.objects.append, state)
        self.node.create_subscription(JointState, interfaces.GRIPPER_STATE, self.gripper.append, state)
        self.node.create_subscription(String, interfaces.STEP_INFO, lambda m: self.steps.append(json_payload(m)),
                                      interfaces.STREAM)
        for name in self.bridge.cameras:
            self.node.create_subscription(Image, interfaces.camera_image(name), self.images.append,
                                          interfaces.SENSOR)
            self.node.create_subscription(CameraInfo, interfaces.camera_info(name), self.infos.append,
                                          interfaces.SENSOR)
        self.command_pub = self.node.create_publisher(JointTrajectory, interfaces.COMMAND, interfaces.LATEST)
        self.reset_client = self.node.create_client(Trigger, interfaces.SIM_RESET)

    def reset(self) -> dict:
        reply = json.loads(call_trigger(self.executor, self.reset_client, TIMEOUT_S).message)
        stamp = reply["stamp"]
        # an observation at the reset's stamp or after it: in real time the timer may already have stepped past it
        # and the latest-only (depth 1) reader kept the newer one (under load a whole 300-step episode ran before
        # this check looked, and "the newest is the reset's" never held); in lock-step nothing newer can exist
        assert spin_until(self.executor,
                          lambda: any(time_to_s(m.header.stamp) >= stamp - 1e-9 for m in self.eef),
                          TIMEOUT_S), "no observation after reset"
        # The command publisher must be matched before a command is sent, or DDS drops it.
        assert spin_until(self.executor, lambda: self.command_pub.get_subscription_count() > 0, TIMEOUT_S)
        return reply

    def command(self, actions: np.ndarray, stamp_s: float) -> None:
        self.command_pub.publish(actions_to_trajectory(actions, stamp_s, CONTROL_DT, AXIS_ANGLE))

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def observation_from_messages(self) -> np.ndarray:
        """The policy's vector rebuilt from the newest messages, as the policy server does."""
        eef_pos, eef_xyzw = pose_to_arrays(self.eef[-1].pose)
        obj_pos, obj_xyzw = pose_to_arrays(self.objects[-1].poses[0])
        fingers = np.array(self.gripper[-1].position)
        return flat_observation(self.bridge.task, obj_pos, xyzw_to_wxyz(obj_xyzw), eef_pos, xyzw_to_wxyz(eef_xyzw),
                                fingers)


@contextmanager
def _probe(ros_context, **params) -> Iterator[Probe]:
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    bridge = SimBridge(context=ros_context, parameter_overrides=overrides)
    node = Node("probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(node)
    try:
        yield Probe(node, executor, bridge)
    finally:
        executor.shutdown()
        node.destroy_node()
        bridge.destroy_node()


@pytest.fixture
def probe(ros_context) -> Iterator[Probe]:
    with _probe(ros_context, task="lift") as p:
        yield p


def test_bridge_publishes_nothing_before_the_first_reset(probe: Probe) -> None:
    assert spin_until(probe.executor, probe.reset_client.service_is_ready, TIMEOUT_S)
    probe.spin_for(0.5)
    assert probe.eef == [] and probe.steps == []


def test_command_stamped_with_the_observation_time_advances_exactly_one_step(probe: Probe) -> None:
    reply = probe.reset()
    before = probe.eef[-1]
    probe.command(UP, reply["stamp"])
    assert spin_until(probe.executor, lambda: probe.steps, TIMEOUT_S), "no step_info after a matching command"
    probe.spin_for(0.3)  # a second step would show up here
    assert len(probe.steps) == 1
    assert probe.steps[0]["step"] == 1 and probe.steps[0]["episode"] == reply["episode"] == 0
    after = probe.eef[-1]
    assert time_to_s(after.header.stamp) == pytest.approx(time_to_s(before.header.stamp) + CONTROL_DT, abs=1e-9)
    assert after.pose.position.z > before.pose.position.z  # it moved up, as commanded
    assert probe.steps[0]["stamp"] == pytest.approx(time_to_s(after.header.stamp), abs=1e-9)


def test_command_with_a_wrong_stamp_or_nan_does_not_step(probe: Probe) -> None:
    reply = probe.reset()
    # One at a time: the command topic keeps only the newest message (LATEST QoS).
    probe.command(UP, reply["stamp"] + CONTROL_DT)
    assert spin_until(probe.executor, lambda: probe.bridge.commands_ignored == 1, TIMEOUT_S)
    nan = UP.copy()
    nan[0, 0] = np.nan
    probe.command(nan, reply["stamp"])
    assert spin_until(probe.executor, lambda: probe.bridge.commands_refused == 1, TIMEOUT_S)
    probe.spin_for(0.3)
    assert probe.steps == [] and probe.bridge.steps == 0
    assert (probe.bridge.commands_ignored, probe.bridge.commands_refused) == (1, 1)
    probe.command(UP, reply["stamp"])  # the bridge is still alive: a good command steps
    assert spin_until(probe.executor, lambda: probe.steps, TIMEOUT_S)


def test_messages_rebuild_the_env_observation(probe: Probe) -> None:
    reply = probe.reset()
    np.testing.assert_allclose(probe.observation_from_messages(), probe.bridge.observation, atol=1e-6)
    probe.command(UP, reply["stamp"])
    assert spin_until(probe.executor, lambda: probe.steps and len(probe.gripper) == 2 and len(probe.objects) == 2,
                      TIMEOUT_S)
    stamps = [time_to_s(m.header.stamp) for m in (probe.eef[-1], probe.objects[-1], probe.gripper[-1])]
    assert stamps == pytest.approx([probe.steps[-1]["stamp"]] * 3, abs=1e-9)  # one stamp for a step's messages
    np.testing.assert_allclose(probe.observation_from_messages(), probe.bridge.observation, atol=1e-6)


def test_unanswered_observation_is_published_once_more_with_its_stamp(probe: Probe) -> None:
    reply = probe.reset()  # the probe's bridge republishes after 1 s (the default)
    assert spin_until(probe.executor, lambda: probe.bridge.republished == 1, TIMEOUT_S)
    probe.spin_for(2.5)  # once only: a graph that is really stuck falls silent
    stamps = [time_to_s(m.header.stamp) for m in probe.eef]
    assert stamps == pytest.approx([reply["stamp"]] * 2) and probe.bridge.republished == 1
    probe.command(UP, reply["stamp"])  # the answer steps the sim as usual
    assert spin_until(probe.executor, lambda: len(probe.steps) == 1, TIMEOUT_S)


def test_reset_advances_the_clock_and_the_seed(probe: Probe) -> None:
    first = probe.reset()
    second = probe.reset()
    assert (first["episode"], second["episode"]) == (0, 1)
    assert (first["seed"], second["seed"]) == (0, 1)
    assert second["stamp"] == pytest.approx(first["stamp"] + CONTROL_DT)  # never two observations at one stamp


def test_realtime_mode_steps_on_its_timer_and_holds_without_commands(ros_context) -> None:
    with _probe(ros_context, task="lift", mode="realtime", control_rate_hz=50.0) as probe:
        probe.reset()
        assert spin_until(probe.executor, lambda: len(probe.steps) >= 3, TIMEOUT_S)
        assert probe.bridge.holds >= 3
        assert [s["step"] for s in probe.steps[:3]] == [1, 2, 3]


def test_camera_publishes_rgb8_image_of_the_configured_size(ros_context) -> None:
    with _probe(ros_context, task="lift", cameras=["agentview"], camera_width=64, camera_height=48) as probe:
        reply = probe.reset()
        assert spin_until(probe.executor, lambda: probe.images and probe.infos, TIMEOUT_S)
        image, info = probe.images[-1], probe.infos[-1]
        assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 64, 48, 64 * 3)
        pixels = np.frombuffer(image.data, np.uint8).reshape(48, 64, 3)
        assert pixels.std() > 0  # a rendered scene, not a blank buffer
        assert time_to_s(image.header.stamp) == pytest.approx(reply["stamp"], abs=1e-9)
        assert (info.width, info.height) == (64, 48) and info.k[0] > 0


def test_unknown_task_is_refused_at_startup(ros_context) -> None:
    with pytest.raises(ValueError, match="task='lifft'.*lift, can, square"):
        SimBridge(context=ros_context, parameter_overrides=[Parameter("task", value="lifft")])
