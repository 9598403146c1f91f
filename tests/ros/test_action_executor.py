"""action_executor in-process: the due chunk point per observation, e-stop silence, NaN and stale chunks held."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, Header, String
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces as ifc
from inril_ros.action_executor import ActionExecutor
from inril_ros.convert import actions_to_trajectory, json_msg, pose_stamped, time_to_s, trajectory_to_actions
from ros_helpers import spin_until

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

DT = 0.05
T0 = 10.0
EEF = [0.0, 0.0, 1.0]  # inside lift's workspace box
TIMEOUT = 20.0


class Bench:
    """The executor plus a driver node standing in for the sim (poses), the policy server and the safety monitor."""

    def __init__(self, context, run_dir, eef_qos=ifc.LATEST, **params) -> None:
        values = {"task": "lift", "control_rate_hz": 1.0 / DT, "run_dir": str(run_dir), **params}
        self.executor_node = ActionExecutor(context=context,
                                            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.run_dir = run_dir
        self.driver = rclpy.create_node("driver", context=context)
        self.eef_pub = self.driver.create_publisher(PoseStamped, ifc.EEF_POSE, eef_qos)
        self.chunk_pub = self.driver.create_publisher(JointTrajectory, ifc.ACTION_CHUNK, ifc.LATEST)
        self.estop_pub = self.driver.create_publisher(Bool, ifc.ESTOP, ifc.LATCHED)
        self.episode_pub = self.driver.create_publisher(String, ifc.EPISODE, ifc.EPISODE_RECORDS)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.driver.create_subscription(JointTrajectory, ifc.COMMAND, self._on_command, ifc.LATEST)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.executor_node)
        self.executor.add_node(self.driver)
        pubs = (self.eef_pub, self.chunk_pub, self.estop_pub, self.episode_pub)
        assert self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs)
                               and self.driver.count_publishers(ifc.COMMAND) > 0), "executor did not connect"

    def _on_command(self, msg: JointTrajectory) -> None:
        actions, _ = trajectory_to_actions(msg, AXIS_ANGLE)
        assert actions.shape == (1, 7)
        self.commands.append((time_to_s(msg.header.stamp), actions[0]))

    def spin_until(self, predicate, timeout: float = TIMEOUT) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def observe(self, t: float) -> None:
        self.eef_pub.publish(pose_stamped(EEF, [1.0, 0.0, 0.0, 0.0], t, "world"))

    def chunk(self, actions: np.ndarray, stamp: float) -> None:
        self.chunk_pub.publish(actions_to_trajectory(actions, stamp, DT, AXIS_ANGLE))

    def episode(self, episode: int, state: str, start: float, end: float | None = None) -> None:
        """An episode manager's record (its fields the executor reads)."""
        self.episode_pub.publish(json_msg({"episode": episode, "state": state, "start_stamp": start,
                                           "end_stamp": end}))

    def destroy(self) -> None:
        self.executor.shutdown()
        self.executor_node.destroy_node()
        self.driver.destroy_node()


@pytest.fixture
def make_bench(ros_context, tmp_path):
    benches = []

    def make(**params) -> Bench:
        benches.append(Bench(ros_context, tmp_path / "run", **params))
        return benches[-1]

    try:
        yield make
    finally:
        for bench in benches:
            bench.destroy()


def chunk_actions(n: int = 4) -> np.ndarray:
    """Small distinct actions, well inside every safety limit, so a command names its point."""
    actions = np.zeros((n, 7))
    actions[:, 0] = 0.1 * (np.arange(n) + 1)
    actions[:, 6] = 1.0
    return actions


def test_lockstep_sends_the_due_point_for_each_observation(make_bench) -> None:
    bench = make_bench(mode="lockstep")
    actions = chunk_actions()
    bench.observe(T0)
    bench.spin_for(0.3)
    assert bench.commands == []  # no chunk covers T0 yet: lock-step waits
    bench.chunk(actions, T0)
    assert bench.spin_until(lambda: len(bench.commands) == 1)
    for k in (1, 2, 3):
        bench.observe(T0 + k * DT)
        assert bench.spin_until(lambda: len(bench.commands) == k + 1)
    assert [t for t, _ in bench.commands] == pytest.approx([T0 + k * DT for k in range(4)])
    np.testing.assert_array_equal(np.stack([a for _, a in bench.commands]), actions)  # safe: bit-exact
    with (bench.run_dir / "executor.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["k"]) for r in rows] == [0, 1, 2, 3] and all(r["held"] == "0" for r in rows)


def test_robot_profile_reads_a_best_effort_pose_driver(make_bench) -> None:
    """franka_ros2 publishes current_pose best effort: with the robot profile's robot_state_qos the executor
    matches it and commands from it."""
    bench = make_bench(mode="lockstep", eef_qos=ifc.LATEST_BEST_EFFORT, robot_state_qos="best_effort")
    bench.chunk(chunk_actions(), T0)
    bench.observe(T0)
    assert bench.spin_until(lambda: len(bench.commands) == 1)


def test_reliable_reader_does_not_match_a_best_effort_driver(ros_context, tmp_path) -> None:
    """Why the robot profile needs best_effort: the sim's reliable reader never hears a best-effort pose."""
    node = ActionExecutor(context=ros_context, parameter_overrides=[
        Parameter("task", value="lift"), Parameter("run_dir", value=str(tmp_path)),
        Parameter("robot_state_qos", value="reliable")])
    driver = rclpy.create_node("franka_stand_in", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        executor.add_node(node)
        executor.add_node(driver)
        best_effort = driver.create_publisher(PoseStamped, ifc.EEF_POSE, ifc.LATEST_BEST_EFFORT)
        reliable = driver.create_publisher(PoseStamped, "/inril/robot/eef_pose_reliable_probe", ifc.LATEST)
        node.create_subscription(PoseStamped, "/inril/robot/eef_pose_reliable_probe", lambda _: None, ifc.LATEST)
        # discovery has happened once the probe pair matched; the best-effort pair stays unmatched
        assert spin_until(executor, lambda: reliable.get_subscription_count() > 0, TIMEOUT)
        spin_until(executor, lambda: False, 0.5)
        assert best_effort.get_subscription_count() == 0
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy_node()


def test_unknown_robot_state_qos_is_refused_naming_the_choices(ros_context, tmp_path) -> None:
    with pytest.raises(ValueError, match="best_effort"):
        ActionExecutor(context=ros_context, parameter_overrides=[
            Parameter("task", value="lift"), Parameter("run_dir", value=str(tmp_path)),
            Parameter("robot_state_qos", value="fast")])


def test_estop_stops_commands_within_one_period(make_bench) -> None:
    bench = make_bench(mode="lockstep")
    bench.chunk(chunk_actions(8), T0)
    bench.spin_for(0.2)
    bench.observe(T0)
    assert bench.spin_until(lambda: len(bench.commands) == 1)
    bench.estop_pub.publish(Bool(data=True))
    bench.spin_for(0.3)
    for k in (1, 2, 3):  # observations keep coming, covered by the chunk
        bench.observe(T0 + k * DT)
        bench.spin_for(2 * DT)
    assert len(bench.commands) == 1
    bench.estop_pub.publish(Bool(data=False))  # the waiting observation is commanded once cleared
    assert bench.spin_until(lambda: len(bench.commands) == 2)
    assert bench.commands[-1][0] == pytest.approx(T0 + 3 * DT)


def test_nan_chunk_point_is_held_not_sent_raw(make_bench) -> None:
    bench = make_bench(mode="lockstep")
    actions = chunk_actions()
    actions[1, 2] = np.nan
    bench.chunk(actions, T0)
    bench.spin_for(0.2)
    for k in range(3):
        bench.observe(T0 + k * DT)
        assert bench.spin_until(lambda: len(bench.commands) == k + 1)
    sent = np.stack([a for _, a in bench.commands])
    assert np.isfinite(sent).all()
    np.testing.assert_array_equal(sent[1], np.zeros(7))  # hold: no motion, gripper unchanged
    np.testing.assert_array_equal(sent[[0, 2]], actions[[0, 2]])
    assert bench.executor_node.holds_sent == 1


def test_lockstep_never_commands_a_new_episode_with_the_last_chunk_of_the_previous(make_bench) -> None:
    """A lock-step reset's observation is stamped one step after the previous episode's last, so by stamp alone the
    previous episode's last chunk still covers it: the executor must wait for the new episode's own chunk."""
    bench = make_bench(mode="lockstep")
    old, new = chunk_actions(), -chunk_actions()
    bench.episode(0, "running", T0)
    bench.chunk(old, T0)
    bench.observe(T0)
    assert bench.spin_until(lambda: len(bench.commands) == 1)
    bench.episode(0, "ended", T0, T0 + DT)  # the episode ended at its next observation
    bench.spin_for(0.2)
    reset = T0 + 2 * DT                     # point 2 of the old chunk by stamp
    bench.observe(reset)
    bench.spin_for(0.3)
    assert len(bench.commands) == 1         # the next episode's record has not come: wait
    bench.episode(1, "running", reset)
    bench.spin_for(0.3)
    assert len(bench.commands) == 1         # its record came, but the chunk is the old episode's: wait
    bench.chunk(new, reset)
    assert bench.spin_until(lambda: len(bench.commands) == 2)
    assert bench.commands[1][0] == pytest.approx(reset)
    np.testing.assert_array_equal(bench.commands[1][1], new[0])


def test_realtime_holds_rather_than_drive_a_new_episode_with_the_previous_chunk(make_bench) -> None:
    bench = make_bench(mode="realtime", stale_after_s=5.0)
    now = bench.driver.get_clock().now().nanoseconds * 1e-9
    bench.episode(0, "running", now - 10 * DT)
    bench.chunk(chunk_actions(8), now - DT)  # covers `now` by stamp (point 1)
    bench.episode(0, "ended", now - 10 * DT, now - DT)
    bench.episode(1, "running", now)
    bench.spin_for(0.2)
    bench.observe(now)
    assert bench.spin_until(lambda: len(bench.commands) >= 3)
    assert all(np.array_equal(a, np.zeros(7)) for _, a in bench.commands)


def test_realtime_without_a_chunk_holds_then_follows_a_covering_chunk(make_bench) -> None:
    bench = make_bench(mode="realtime", stale_after_s=5.0)
    now = bench.driver.get_clock().now().nanoseconds * 1e-9
    bench.observe(now)
    assert bench.spin_until(lambda: len(bench.commands) >= 3)
    assert all(np.array_equal(a, np.zeros(7)) for _, a in bench.commands)
    assert bench.executor_node.holds_sent >= 3
    actions = chunk_actions()
    bench.chunk(actions, now)
    assert bench.spin_until(lambda: any(np.array_equal(a, actions[0]) for _, a in bench.commands))
    with (bench.run_dir / "executor.csv").open() as f:
        jitter = [r["jitter_s"] for r in csv.DictReader(f)][1:]
    assert jitter and all(abs(float(j)) < 1.0 for j in jitter)


def test_realtime_stale_observation_is_held(make_bench) -> None:
    bench = make_bench(mode="realtime", stale_after_s=0.1)
    old = bench.driver.get_clock().now().nanoseconds * 1e-9 - 1.0
    bench.chunk(chunk_actions(), old)
    bench.observe(old)
    assert bench.spin_until(lambda: len(bench.commands) >= 2)
    assert all(np.array_equal(a, np.zeros(7)) for _, a in bench.commands)


def test_bad_mode_is_refused_naming_the_choices(ros_context) -> None:
    with pytest.raises(ValueError, match="mode='fast'.*lockstep"):
        ActionExecutor(context=ros_context, parameter_overrides=[Parameter("mode", value="fast")])


def test_params_file_configures_the_executor(ros_context) -> None:
    from inril_core.config import config_dir

    params_file = config_dir() / "nodes" / "action_executor.yaml"
    node = ActionExecutor(context=ros_context, cli_args=["--ros-args", "--params-file", str(params_file)])
    try:
        assert node.get_fully_qualified_name() == "/inril/action_executor"
        assert (node.get_parameter("mode").value, node.get_parameter("stale_after_s").value) == ("lockstep", 0.1)
    finally:
        node.destroy_node()


def test_heartbeat_names_the_executor(make_bench) -> None:
    bench = make_bench(mode="lockstep", heartbeat_hz=20.0)
    beats: list[str] = []
    bench.driver.create_subscription(Header, ifc.HEARTBEAT, lambda m: beats.append(m.frame_id), ifc.LATEST)
    assert bench.spin_until(lambda: "action_executor" in beats)
