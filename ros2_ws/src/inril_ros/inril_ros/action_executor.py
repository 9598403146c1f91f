"""action_executor: the due point of the newest action chunk, through the safety filter, to the arm (docs/graph.md).

For an observation time ``t`` it sends point ``k = round((t - stamp) * control_rate_hz)`` of the newest chunk.
In lock-step the trigger is each new end-effector pose stamp, and a ``t`` no chunk covers yet waits for the chunk
(the sim does not step until then); in real time a steady wall timer triggers, ``t`` is the newest pose stamp, and
no covering chunk or a stale observation means the hold action (zero motion, gripper unchanged). Every command
passes ``inril_core.safety.filter_action`` with the task's limits and action convention (config/safety.yaml); a
latched ``/inril/estop`` true silences the executor entirely.

A chunk drives only the episode whose observation it answers. The executor follows ``/inril/episode``: a chunk
stamped before the current episode's ``start_stamp`` covers nothing, and an observation after the newest record's
``end_stamp`` belongs to an episode whose record has not come yet, so it waits (lock-step) or holds (real time).
Without this, a lock-step reset's observation (stamped one step after the previous episode's last) was commanded
with the previous episode's last chunk: up to ``h - 1`` steps of the new episode ran on the old episode's end
(for one_leg: the gripper closed at the start). The episode manager publishes an episode's end before it calls the
reset, so the end is known before the reset's observation comes.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from inril_core.safety import filter_action, hold_action, load_limits
from inril_ros import interfaces as ifc
from inril_ros.convert import MessageError, actions_to_trajectory, pose_to_arrays, trajectory_to_actions, stamp_ns
from inril_ros.episode_record import STAMP_MATCH_NS, EpisodeRecord, read_episode_record
from inril_ros.task_io import task_io
from inril_ros.runtime import (
    CsvLog,
    ThrottledLog,
    declare_heartbeat_hz,
    declare_robot_state_qos,
    describe,
    run_node,
    start_heartbeat,
    steady_clock,
)

MODES = ("lockstep", "realtime")



class ActionExecutor(Node):
    """Plain node: chunk in, one safe command per observation time out; see the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("action_executor", namespace=ifc.NAMESPACE, **node_kwargs)
        get = self._declare_parameters()
        self._mode = get("mode")
        if self._mode not in MODES:
            raise ValueError(f"parameter mode={self._mode!r}: use one of {MODES}")
        self._rate = get("control_rate_hz")
        self._dt = 1.0 / self._rate
        self._stale_ns = int(get("stale_after_s") * 1e9)
        self._limits = load_limits(get("task"), get("safety_file") or None)
        self._names = task_io(get("task")).action_names
        if self._limits.action_names != self._names:
            raise ValueError(f"the safety limits of task {get('task')} are for {self._limits.rotation} actions "
                             f"({', '.join(self._limits.action_names)}), the task's actions are "
                             f"{', '.join(self._names)}: set workspace.{get('task')}.rotation in the safety file")
        self._log = CsvLog(get("run_dir"), "executor", ["t", "k", "held", "filtered", "jitter_s", "wall_time"])
        # in lift the workspace floor clips most descents to the cube (as the env clips its own goal): one line per
        # 5 s; every command's filtered flag is in executor.csv
        self._log_filtered = ThrottledLog(self.get_logger().warning)

        self._chunk: tuple[int, np.ndarray] | None = None   # newest chunk: (stamp ns, actions (n, A))
        self._eef: tuple[int, np.ndarray] | None = None     # newest end-effector pose: (stamp ns, position)
        self._waiting: int | None = None                    # lock-step: observation time not commanded yet
        self._episode: EpisodeRecord | None = None          # newest /inril/episode record
        self._estop = False
        self.commands_sent = 0
        self.holds_sent = 0
        self._last_tick: float | None = None

        self._command_pub = self.create_publisher(JointTrajectory, ifc.COMMAND, ifc.LATEST)
        self._heartbeat = start_heartbeat(self, get("heartbeat_hz"))
        self.create_subscription(JointTrajectory, ifc.ACTION_CHUNK, self._on_chunk, ifc.LATEST)
        self.create_subscription(PoseStamped, ifc.EEF_POSE, self._on_eef, declare_robot_state_qos(self))
        self.create_subscription(Bool, ifc.ESTOP, self._on_estop, ifc.LATCHED)
        self.create_subscription(String, ifc.EPISODE, self._on_episode, ifc.EPISODE_RECORDS)
        if self._mode == "realtime":
            # steady clock: with use_sim_time the node clock stands still while the sim waits
            self.create_timer(self._dt, self._on_tick, clock=steady_clock())
        self.get_logger().info(f"{self._mode} at {self._rate} Hz, task {get('task')} safety limits")

    def _declare_parameters(self) -> Callable[[str], Any]:
        self.declare_parameter("mode", "lockstep", describe(
            "lockstep: one command per new observation stamp, waiting for its chunk | realtime: steady timer"))
        self.declare_parameter("control_rate_hz", 20.0, describe(
            "env steps per second (chunk point spacing)", float_range=(0.1, 1000.0)))
        self.declare_parameter("stale_after_s", 0.1, describe(
            "realtime: hold when the newest observation (so the point chosen for it) is older than this",
            float_range=(0.001, 10.0)))
        self.declare_parameter("task", "lift", describe("task whose workspace box config/safety.yaml gives"))
        self.declare_parameter("safety_file", "", describe("safety limits YAML; empty = config/safety.yaml"))
        self.declare_parameter("run_dir", "", describe("folder for executor.csv; empty = no file"))
        declare_heartbeat_hz(self)
        return lambda name: self.get_parameter(name).value

    # ------------------------------------------------------------------------------------------- inputs

    def _on_chunk(self, msg: JointTrajectory) -> None:
        try:
            actions, _ = trajectory_to_actions(msg, self._names)
        except MessageError as error:
            self.get_logger().error(f"{ifc.ACTION_CHUNK}: {error}; chunk dropped")
            return
        self._chunk = (stamp_ns(msg.header.stamp), actions)
        if self._mode == "lockstep":
            self._command_waiting()

    def _on_eef(self, msg: PoseStamped) -> None:
        stamp = stamp_ns(msg.header.stamp)
        if self._eef is not None and stamp <= self._eef[0]:
            return  # a repeated or late pose: that time was handled
        self._eef = (stamp, pose_to_arrays(msg.pose)[0])
        if self._mode == "lockstep":
            self._waiting = stamp
            self._command_waiting()

    def _on_episode(self, msg: String) -> None:
        record = read_episode_record(msg, self.get_logger())
        if record is None:
            return
        if record.state == "done" or (self._episode is not None and record.episode < self._episode.episode):
            return  # "done" has no stamps (nothing starts after it); or a late record of an earlier episode
        self._episode = record
        if self._mode == "lockstep":
            self._command_waiting()

    def _on_estop(self, msg: Bool) -> None:
        if msg.data != self._estop:
            self.get_logger().warning("e-stop: no commands" if msg.data else "e-stop cleared: commands resume")
        self._estop = bool(msg.data)
        if not self._estop and self._mode == "lockstep":
            self._command_waiting()

    # ------------------------------------------------------------------------------------------- commanding

    def _point(self, t: int) -> tuple[int, np.ndarray | None]:
        """(k, action) of the newest chunk for observation time ``t`` (ns); action None when it is not covered."""
        if self._chunk is None:
            return -1, None
        stamp, actions = self._chunk
        k = int(round((t - stamp) * 1e-9 * self._rate))
        covered = 0 <= k < len(actions) and self._same_episode(stamp, t)
        return (k, actions[k]) if covered else (k, None)

    def _same_episode(self, chunk_stamp: int, t: int) -> bool:
        """Whether the chunk answered an observation of the episode that observation time ``t`` belongs to (the
        module docstring: a chunk never drives the next episode). No records (a bench without an episode manager):
        one episode."""
        record = self._episode
        if record is None:
            return True
        if record.end_ns is not None and t > record.end_ns + STAMP_MATCH_NS:
            return False  # after the newest episode's end: the next episode's record has not come yet
        return record.start_ns is None or chunk_stamp + STAMP_MATCH_NS >= record.start_ns

    def _command_waiting(self) -> None:
        """Lock-step: command the waiting observation time once a chunk covers it; until then send nothing."""
        if self._estop or self._waiting is None:
            return
        k, action = self._point(self._waiting)
        if action is None:
            return
        self._send(self._waiting, k, action, held=False, jitter=None)
        self._waiting = None

    def _on_tick(self) -> None:
        """Real time: the point due for the newest observation, or hold when none covers it or it is stale."""
        now = time.monotonic()
        jitter = None if self._last_tick is None else now - self._last_tick - self._dt
        self._last_tick = now
        if self._estop or self._eef is None:
            return
        t = self._eef[0]
        stale = self.get_clock().now().nanoseconds - t > self._stale_ns
        k, action = self._point(t)
        if stale or action is None:
            self._send(t, k, hold_action(self._limits.rotation), held=True, jitter=jitter)
        else:
            self._send(t, k, action, held=False, jitter=jitter)

    def _send(self, t: int, k: int, action: np.ndarray, held: bool, jitter: float | None) -> None:
        safe, report = filter_action(action, self._eef[1], self._limits)
        if report.rejected:
            held = True
            self.get_logger().error(f"command for {t * 1e-9:.3f} s (chunk point {k}) held: {report.reason}")
        elif report.changed:
            self._log_filtered(f"command for {t * 1e-9:.3f} s filtered: {'; '.join(report.changes)}")
        self._command_pub.publish(actions_to_trajectory(safe[None], t * 1e-9, self._dt, self._names))
        self.commands_sent += 1
        self.holds_sent += int(held)
        self._log.write({"t": t * 1e-9, "k": k, "held": int(held), "filtered": int(report.changed),
                         "jitter_s": "" if jitter is None else jitter, "wall_time": time.time()})

    def destroy_node(self) -> None:
        self._log.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: ActionExecutor(), args)


if __name__ == "__main__":
    raise SystemExit(main())
