"""episode_manager over a real sim_bridge: time-outs end episodes and start the next, e-stop ends and blocks, and
the first reset waits until the nodes that answer observations have subscribed."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_helpers import spin_until
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces
from inril_ros.convert import actions_to_trajectory, json_msg, json_payload, time_to_s
from inril_ros.episode_manager import EpisodeManager
from inril_ros.sim_bridge import SimBridge
from inril_sim.scene import CONTROL_DT

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

TIMEOUT_S = 20.0
MAX_STEPS = 10
UP = np.array([[0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]])


@dataclass
class Graph:
    """sim_bridge + episode_manager + a test policy that answers every observation with 'move up'."""

    node: Node
    executor: SingleThreadedExecutor
    manager: EpisodeManager
    act_limit: int | None = None  # the policy stops answering after this many commands (None = never)
    records: list[dict] = field(default_factory=list)
    commands: int = 0

    def __post_init__(self) -> None:
        self.node.create_subscription(String, interfaces.EPISODE, lambda m: self.records.append(json_payload(m)),
                                      interfaces.EPISODE_RECORDS)
        self.command_pub = self.node.create_publisher(JointTrajectory, interfaces.COMMAND, interfaces.LATEST)
        self.node.create_subscription(PoseStamped, interfaces.EEF_POSE, self._act, interfaces.LATEST)
        self.estop_pub = self.node.create_publisher(Bool, interfaces.ESTOP, interfaces.LATCHED)
        self.version_pub = self.node.create_publisher(String, interfaces.POLICY_VERSION, interfaces.LATCHED)

    def _act(self, obs: PoseStamped) -> None:
        if self.act_limit is not None and self.commands >= self.act_limit:
            return
        self.commands += 1
        self.command_pub.publish(actions_to_trajectory(UP, time_to_s(obs.header.stamp), CONTROL_DT, AXIS_ANGLE))

    def wait_for(self, state: str, count: int = 1) -> list[dict]:
        """The records of ``state`` once ``count`` of them have arrived."""
        def matching() -> list[dict]:
            return [r for r in self.records if r["state"] == state]
        assert spin_until(self.executor, lambda: len(matching()) >= count, TIMEOUT_S), \
            f"fewer than {count} '{state}' records: {self.records}"
        return matching()


@contextmanager
def _graph(ros_context, policy_version: int | None = None, act_limit: int | None = None,
           **manager_params) -> Iterator[Graph]:
    """The graph; with ``policy_version``, it is announced and received before the sim (and so episode 0) starts.
    The manager waits for the test policy (node ``test_policy``) unless ``wait_for_subscribers`` says otherwise."""
    manager_params = {"wait_for_subscribers": ["test_policy"], **manager_params}
    manager = EpisodeManager(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in manager_params.items()])
    node = Node("test_policy", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(manager)
    executor.add_node(node)
    graph = Graph(node, executor, manager, act_limit)
    bridge = None
    try:
        if policy_version is not None:
            graph.version_pub.publish(json_msg({"version": policy_version, "sha256": "ab"}))
            assert spin_until(executor, lambda: manager.policy_version == policy_version, TIMEOUT_S)
        bridge = SimBridge(context=ros_context, parameter_overrides=[
            Parameter("max_episode_steps", value=MAX_STEPS), Parameter("seed", value=3)])
        executor.add_node(bridge)
        yield graph
    finally:
        executor.shutdown()
        for n in (node, manager, bridge):
            if n is not None:
                n.destroy_node()


def test_timeout_ends_the_episode_and_starts_the_next(ros_context, tmp_path: Path) -> None:
    with _graph(ros_context, policy_version=7, run_dir=str(tmp_path)) as graph:
        first = graph.wait_for("running")[0]
        assert (first["episode"], first["seed"], first["outcome"], first["length"]) == (0, 300_000, None, 0)
        assert first["policy_version"] == 7
        ended = graph.wait_for("ended")[0]
        assert (ended["episode"], ended["outcome"], ended["length"], ended["return"]) == (0, "timeout", MAX_STEPS, 0.0)
        assert ended["end_stamp"] - ended["start_stamp"] == pytest.approx(MAX_STEPS * CONTROL_DT)
        second = graph.wait_for("running", 2)[1]
        assert (second["episode"], second["seed"]) == (1, 300_001)
        assert graph.records.index(ended) < graph.records.index(second)
        with (tmp_path / "episodes.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["episode"], r["outcome"], r["length"], r["policy_version"]) for r in rows] == \
            [("0", "timeout", str(MAX_STEPS), "7")]


def test_estop_ends_the_running_episode_and_blocks_new_ones(ros_context) -> None:
    with _graph(ros_context, act_limit=3) as graph:
        running = graph.wait_for("running")[0]
        assert spin_until(graph.executor, lambda: graph.commands == 3, TIMEOUT_S)
        spin_until(graph.executor, lambda: False, 0.5)  # the policy has stopped: let the last step_info land
        graph.estop_pub.publish(Bool(data=True))
        ended = graph.wait_for("ended")[0]
        assert (ended["episode"], ended["outcome"], ended["length"]) == (running["episode"], "estop", 3)
        spin_until(graph.executor, lambda: False, 1.0)
        assert [r["state"] for r in graph.records] == ["running", "ended"]  # no new episode under e-stop
        graph.estop_pub.publish(Bool(data=False))
        assert graph.wait_for("running", 2)[1]["episode"] == running["episode"] + 1


def test_max_episodes_ends_with_a_done_record(ros_context) -> None:
    with _graph(ros_context, max_episodes=1) as graph:
        done = graph.wait_for("done")[0]
        spin_until(graph.executor, lambda: False, 0.5)
        assert [r["state"] for r in graph.records] == ["running", "ended", "done"]
        assert (done["episodes"], graph.manager.episodes_ended) == (1, 1)


def test_first_reset_waits_until_a_late_policy_subscribes_and_its_first_observation_reaches_it(ros_context) -> None:
    with _graph(ros_context, wait_for_subscribers=["late_policy"]) as graph:
        # test_policy is up and subscribed, but the manager waits for late_policy: no reset, so no observation
        assert not spin_until(graph.executor, lambda: graph.records or graph.commands, 1.5), \
            f"started before late_policy subscribed: {graph.records}"
        late = Node("late_policy", context=ros_context)
        seen: list[float] = []
        late.create_subscription(PoseStamped, interfaces.EEF_POSE, lambda m: seen.append(time_to_s(m.header.stamp)),
                                 interfaces.LATEST)
        graph.executor.add_node(late)
        try:
            running = graph.wait_for("running")[0]
            assert spin_until(graph.executor, lambda: any(abs(t - running["start_stamp"]) < 1e-6 for t in seen),
                              TIMEOUT_S), \
                f"the reset's observation ({running['start_stamp']}) never reached late_policy: {seen}"
        finally:
            graph.executor.remove_node(late)
            late.destroy_node()
