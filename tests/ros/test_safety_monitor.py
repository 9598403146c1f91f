"""safety_monitor: watchdogs latch /inril/estop, only a guarded reset clears it, the state is visible to late joiners.

The monitor runs in this process next to a probe node that plays the rest of the graph (heartbeats, chunks, the
episode record) and listens to /inril/estop and /diagnostics.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces
from inril_ros.convert import actions_to_trajectory
from inril_ros.safety_monitor import SafetyMonitor
from ros_helpers import spin_until

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

TIMEOUT_S = 1.0


class Probe:
    """The rest of the graph, as far as the monitor can tell: heartbeats, chunks, episodes, and an e-stop listener."""

    def __init__(self, context, executor: SingleThreadedExecutor, **params) -> None:
        overrides = [Parameter("required_nodes", Parameter.Type.STRING_ARRAY, ["fake_node"]),
                     Parameter("heartbeat_timeout_s", Parameter.Type.DOUBLE, TIMEOUT_S),
                     Parameter("startup_grace_s", Parameter.Type.DOUBLE, 10.0)]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.monitor = SafetyMonitor(context=context, parameter_overrides=overrides)
        self.node = Node("probe", context=context)
        self.executor = executor
        executor.add_node(self.monitor)
        executor.add_node(self.node)
        self.estop: list[bool] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(Bool, interfaces.ESTOP, lambda m: self.estop.append(m.data), interfaces.LATCHED)
        self.node.create_subscription(DiagnosticArray, interfaces.DIAGNOSTICS, self.diagnostics.append, 10)
        self._heartbeat_pub = self.node.create_publisher(Header, interfaces.HEARTBEAT, interfaces.LATEST)
        self.chunk_pub = self.node.create_publisher(JointTrajectory, interfaces.ACTION_CHUNK, interfaces.LATEST)
        self.episode_pub = self.node.create_publisher(String, interfaces.EPISODE, interfaces.EPISODE_RECORDS)
        self.reset_client = self.node.create_client(Trigger, interfaces.ESTOP_RESET)
        self.trigger_client = self.node.create_client(Trigger, interfaces.ESTOP_TRIGGER)
        self._beat_timer = None
        self.last_beat_s = 0.0

    def beat(self, on: bool) -> None:
        """Start or stop this probe's heartbeats as ``fake_node`` (10 Hz)."""
        if on and self._beat_timer is None:
            self._beat_timer = self.node.create_timer(0.1, self._beat)
        elif not on and self._beat_timer is not None:
            self.node.destroy_timer(self._beat_timer)
            self._beat_timer = None

    def _beat(self) -> None:
        self._heartbeat_pub.publish(Header(frame_id="fake_node"))
        self.last_beat_s = time.monotonic()

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def wait_estop(self, value: bool, timeout_s: float = 10.0) -> bool:
        return spin_until(self.executor, lambda: bool(self.estop) and self.estop[-1] is value, timeout_s)

    def call(self, client, timeout_s: float = 10.0) -> Trigger.Response:
        assert client.wait_for_service(timeout_sec=timeout_s), f"service {client.srv_name} not available"
        future = client.call_async(Trigger.Request())
        assert spin_until(self.executor, future.done, timeout_s), f"no answer from {client.srv_name}"
        return future.result()

    def publish_episode(self, state: str, episode: int = 1) -> None:
        self.episode_pub.publish(String(data=json.dumps({"episode": episode, "state": state})))


@pytest.fixture
def graph(ros_context, tmp_path):
    executor = SingleThreadedExecutor(context=ros_context)
    probes: list[Probe] = []

    def make(**params) -> Probe:
        probe = Probe(ros_context, executor, run_dir=str(tmp_path), **params)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.monitor.destroy_node()
        probe.node.destroy_node()
    executor.shutdown()


def _latched_after_silence(probe: Probe) -> float:
    """Beat until the monitor saw it, go silent, return the seconds until /inril/estop turned true."""
    probe.beat(True)
    assert probe.wait_estop(False), "the monitor never published its initial e-stop = false"
    probe.spin_for(1.0)
    assert probe.estop[-1] is False, f"e-stop latched while the node was beating: {probe.monitor.cause}"
    probe.beat(False)
    silent_since = probe.last_beat_s
    assert probe.wait_estop(True, timeout_s=TIMEOUT_S + 10.0), "e-stop never latched after the heartbeats stopped"
    return time.monotonic() - silent_since


def test_silent_required_node_latches_estop_within_its_timeout(graph) -> None:
    probe = graph()
    elapsed = _latched_after_silence(probe)
    assert elapsed <= TIMEOUT_S + 1.0, f"e-stop latched {elapsed:.2f} s after the last heartbeat"


def test_reset_is_refused_while_silent_and_clears_once_the_node_beats_again(graph, tmp_path) -> None:
    probe = graph()
    _latched_after_silence(probe)

    refused = probe.call(probe.reset_client)
    assert not refused.success and "fake_node" in refused.message, refused.message
    probe.spin_for(0.3)
    assert probe.estop[-1] is True

    probe.beat(True)
    probe.spin_for(0.5)
    accepted = probe.call(probe.reset_client)
    assert accepted.success, accepted.message
    assert probe.wait_estop(False)
    events = [row["event"] for row in csv.DictReader((tmp_path / "safety.csv").open())]
    assert events == ["latch", "reset refused", "reset"]


def test_manual_trigger_latches_and_a_late_subscriber_receives_true(graph) -> None:
    probe = graph(heartbeat_timeout_s=0.0)
    assert probe.wait_estop(False)
    assert probe.call(probe.trigger_client).success
    assert probe.wait_estop(True)

    late: list[bool] = []
    probe.node.create_subscription(Bool, interfaces.ESTOP, lambda m: late.append(m.data), interfaces.LATCHED)
    assert spin_until(probe.executor, lambda: bool(late), 10.0), "a late subscriber got no e-stop state"
    assert late == [True]


def test_diagnostics_report_the_estop_cause_and_the_silent_node(graph) -> None:
    probe = graph()
    _latched_after_silence(probe)
    probe.diagnostics.clear()
    assert spin_until(probe.executor, lambda: bool(probe.diagnostics), 5.0), "no /diagnostics within 5 s"
    statuses = {s.name: s for s in probe.diagnostics[-1].status}
    estop = statuses["safety_monitor: estop"]
    assert estop.level == DiagnosticStatus.ERROR and "fake_node" in estop.message, estop.message
    heartbeat = statuses["safety_monitor: heartbeat fake_node"]
    assert heartbeat.level == DiagnosticStatus.ERROR and "silent" in heartbeat.message


def test_required_node_never_heard_latches_after_the_startup_grace(graph) -> None:
    probe = graph(startup_grace_s=1.0)
    assert probe.wait_estop(True, timeout_s=10.0)
    assert "no heartbeat since start" in probe.monitor.cause


def test_chunk_deadline_is_armed_only_while_an_episode_runs(graph) -> None:
    probe = graph(heartbeat_timeout_s=0.0, chunk_deadline_s=TIMEOUT_S)
    assert probe.wait_estop(False)
    probe.chunk_pub.publish(actions_to_trajectory([[0.0] * 7], 0.0, 0.05, AXIS_ANGLE))
    probe.spin_for(2.0 * TIMEOUT_S)
    assert probe.estop[-1] is False, f"chunk silence outside an episode latched: {probe.monitor.cause}"

    probe.publish_episode("running")
    assert probe.wait_estop(True, timeout_s=TIMEOUT_S + 10.0)
    assert "action_chunk" in probe.monitor.cause


def test_params_file_configures_the_node(ros_context) -> None:
    params = Path(__file__).resolve().parents[2] / "config" / "nodes" / "safety_monitor.yaml"
    monitor = SafetyMonitor(context=ros_context, cli_args=["--ros-args", "--params-file", str(params)])
    try:
        assert monitor.get_parameter("required_nodes").value == [
            "sim_bridge", "policy_server", "action_executor", "episode_manager", "learner"]
        assert monitor.get_parameter("startup_grace_s").value == 30.0
    finally:
        monitor.destroy_node()


CAMERA = interfaces.camera_image("wrist")


def _image(encoding: str = "rgb8", width: int = 4, height: int = 3, truncate: int = 0) -> Image:
    bpp = 3 if encoding.startswith(("rgb", "bgr")) else 1
    data = bytes(width * height * bpp - truncate)
    return Image(encoding=encoding, width=width, height=height, step=width * bpp, data=data)


def _feed_camera(probe: Probe, image: Image, seconds: float) -> None:
    """Publish ``image`` at 20 Hz for ``seconds`` while spinning."""
    pub = probe.node.create_publisher(Image, CAMERA, interfaces.SENSOR)
    timer = probe.node.create_timer(0.05, lambda: pub.publish(image))
    try:
        probe.spin_for(seconds)
    finally:
        probe.node.destroy_timer(timer)
        probe.node.destroy_publisher(pub)


@pytest.mark.parametrize("bad, problem", [
    (_image(encoding="bgr8"), "encoding 'bgr8'"),
    (_image(width=8), "size 8x3"),
    (_image(truncate=5), "data bytes"),
])
def test_camera_sending_only_bad_frames_trips_the_estop_with_the_problem_named(graph, bad, problem) -> None:
    probe = graph(heartbeat_timeout_s=0.0, chunk_deadline_s=0.0, state_timeout_s=0.0, camera_timeout_s=TIMEOUT_S,
                  camera_topics=[CAMERA], camera_width=4, camera_height=3)
    assert probe.wait_estop(False)
    probe.publish_episode("running")
    _feed_camera(probe, _image(), 0.5)  # a good frame arms the watchdog
    assert probe.estop[-1] is False, probe.monitor.cause
    _feed_camera(probe, bad, TIMEOUT_S + 2.0)
    assert probe.estop[-1] is True, "a camera sending only refused frames did not trip the e-stop"
    assert "wrist" in probe.monitor.cause
    probe.diagnostics.clear()
    assert spin_until(probe.executor, lambda: bool(probe.diagnostics), 5.0), "no /diagnostics within 5 s"
    status = {s.name: s for s in probe.diagnostics[-1].status}[f"safety_monitor: stream {CAMERA}"]
    assert problem in status.message, status.message


def test_good_camera_frames_keep_the_estop_clear(graph) -> None:
    probe = graph(heartbeat_timeout_s=0.0, chunk_deadline_s=0.0, state_timeout_s=0.0, camera_timeout_s=TIMEOUT_S,
                  camera_topics=[CAMERA], camera_width=4, camera_height=3)
    assert probe.wait_estop(False)
    probe.publish_episode("running")
    _feed_camera(probe, _image(), TIMEOUT_S + 2.0)
    assert probe.estop[-1] is False, probe.monitor.cause


def test_nan_joint_states_do_not_count_as_alive(graph) -> None:
    probe = graph(heartbeat_timeout_s=0.0, chunk_deadline_s=0.0, state_timeout_s=0.0,
                  joint_state_timeout_s=TIMEOUT_S)
    assert probe.wait_estop(False)
    probe.publish_episode("running")
    pub = probe.node.create_publisher(JointState, interfaces.JOINT_STATES, interfaces.LATEST)
    good = JointState(name=["finger"], position=[0.01])
    bad = JointState(name=["finger"], position=[float("nan")])
    current = [good]
    probe.node.create_timer(0.05, lambda: pub.publish(current[0]))
    probe.spin_for(0.5)
    assert probe.estop[-1] is False, probe.monitor.cause
    current[0] = bad
    assert probe.wait_estop(True, timeout_s=TIMEOUT_S + 5.0), "NaN joint states kept the watchdog fed"
    assert interfaces.JOINT_STATES in probe.monitor.cause
