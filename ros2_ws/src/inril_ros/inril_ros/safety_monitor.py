"""The software e-stop: watchdogs on heartbeats and data flow latch ``/inril/estop`` until an operator resets it.

Why wall-clock: every age and timer here runs on the steady clock, never the node clock. In sim the node clock is
sim time, and in lock-step the sim stops whenever nobody commands; a watchdog on sim time would stop exactly when
it is needed. For the same reason every node's heartbeat (``runtime.start_heartbeat``) ticks on the steady clock.

Two kinds of watchdog:

- **heartbeats** of the nodes in ``required_nodes`` (``std_msgs/Header`` on ``/inril/heartbeat``, frame_id = node
  name). A node not heard within ``startup_grace_s`` of this node's start, or silent for ``heartbeat_timeout_s``
  after that, is a violation. A dead node is a fault whatever the robot does, so these always count.
- **data flow**: the robot state topic (``state_topic``, PoseStamped), ``/joint_states``, cameras and the action
  chunk. In lock-step sim these flow only while an episode runs (and stop while the e-stop holds the arm), so each
  is armed once its first message arrived and only while ``/inril/episode`` says ``running``; its age counts from
  the newest of: its last message, the episode start, the last accepted reset. A reset therefore re-arms them: a
  stream still dead after a reset trips the e-stop again within its timeout.

The e-stop clears only through ``/inril/safety_monitor/reset`` (std_srvs/Trigger), and only when no watchdog is
violated at that moment; a refused reset answers ``success=False`` with the reasons. ``/inril/safety_monitor/trigger``
latches it by hand (an operator's software button). Default timeouts (2 s) are generous on purpose: a loaded 2-core machine
running the whole graph misses 100 ms deadlines routinely, and a false e-stop ends an episode.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from inril_ros import interfaces
from inril_ros.convert import MessageError, image_problem, joint_state_problem, json_payload
from inril_ros.runtime import CsvLog, declare_heartbeat_hz, describe, run_node, start_heartbeat, steady_clock

NODE_NAME = "safety_monitor"
GRAPH_NODES = ["sim_bridge", "policy_server", "action_executor", "episode_manager", "learner"]
CSV_FIELDS = ("wall_time", "event", "cause")

# Watched streams are subscribed best effort: it matches reliable and best-effort publishers alike, and only the
# arrival of the newest message matters. Depth 20 holds a few periods of every node's heartbeat.
WATCH_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
                       history=HistoryPolicy.KEEP_LAST)


@dataclass
class _Watch:
    """One watched item: a node's heartbeat or a data stream."""

    name: str              # diagnostics name, e.g. "heartbeat policy_server"
    timeout_s: float
    data_flow: bool        # gated by a running episode and armed by its first message (module docstring)
    last_s: float | None = None  # steady time of the newest message
    rejected: int = 0            # messages refused by the stream's check (they do not count as alive)
    last_problem: str = ""       # why the newest refused one was refused

    def age(self, now_s: float, since_s: float) -> float | None:
        """Seconds the item has been silent, counted from no earlier than ``since_s``; None while unarmed."""
        if self.last_s is None:
            return None if self.data_flow else now_s - since_s
        return now_s - max(self.last_s, since_s)


SECONDS = (0.0, 3600.0)  # range of every time parameter (wall s)


class SafetyMonitor(Node):
    """Latched ``/inril/estop`` from heartbeat and data-flow watchdogs, with a guarded reset and ``/diagnostics``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("namespace", interfaces.NAMESPACE)
        super().__init__(NODE_NAME, **kwargs)
        declare = self.declare_parameter
        heartbeat_hz = declare_heartbeat_hz(self)
        required = declare("required_nodes", GRAPH_NODES, describe(
            "node names (heartbeat frame_id) that must be alive")).value
        heartbeat_timeout = declare("heartbeat_timeout_s", 2.0, describe(
            "a required node silent this long (wall s) trips the e-stop; 0 disables", float_range=SECONDS)).value
        self._grace_s = declare("startup_grace_s", 30.0, describe(
            "wall s after start before a required node never heard trips the e-stop", float_range=SECONDS)).value
        state_topic = declare("state_topic", interfaces.EEF_POSE, describe(
            "robot state topic (geometry_msgs/PoseStamped) whose silence trips the e-stop")).value
        state_timeout = declare("state_timeout_s", 2.0, describe(
            "state_topic silent this long (wall s) during an episode trips the e-stop; 0 disables",
            float_range=SECONDS)).value
        joint_timeout = declare("joint_state_timeout_s", 0.0, describe(
            "/joint_states silent this long (wall s) during an episode trips the e-stop; 0 disables",
            float_range=SECONDS)).value
        declare("camera_topics", Parameter.Type.STRING_ARRAY, describe(
            "sensor_msgs/Image topics to watch, e.g. /camera/wrist/color/image_raw"))
        cameras = self.get_parameter_or(
            "camera_topics", Parameter("camera_topics", Parameter.Type.STRING_ARRAY, [])).value
        camera_timeout = declare("camera_timeout_s", 2.0, describe(
            "a camera silent this long (wall s) during an episode trips the e-stop; 0 disables",
            float_range=SECONDS)).value
        camera_encoding = declare("camera_encoding", "rgb8", describe(
            "encoding every watched camera must publish; other frames are refused and do not count as alive")).value
        camera_width = declare("camera_width", 0, describe(
            "width (px) every watched camera must publish; 0 = any", int_range=(0, 100_000))).value
        camera_height = declare("camera_height", 0, describe(
            "height (px) every watched camera must publish; 0 = any", int_range=(0, 100_000))).value
        chunk_deadline = declare("chunk_deadline_s", 2.0, describe(
            "no action chunk for this long (wall s) during an episode trips the e-stop; 0 disables",
            float_range=SECONDS)).value
        check_hz = declare("check_rate_hz", 10.0, describe(
            "watchdog evaluation rate (Hz)", float_range=(0.0, 1000.0))).value
        diagnostics_hz = declare("diagnostics_hz", 1.0, describe(
            "/diagnostics publish rate (Hz)", float_range=(0.0, 100.0))).value
        run_dir = declare("run_dir", "", describe(
            "directory for safety.csv (every latch / reset); empty = no file")).value
        if check_hz <= 0 or diagnostics_hz <= 0:
            raise ValueError(f"check_rate_hz ({check_hz}) and diagnostics_hz ({diagnostics_hz}) must be > 0")

        self._steady = steady_clock()
        self._start_s = self._now_s()
        self._running_since: float | None = None  # steady time the current episode started; None = not running
        self._episode: int | None = None
        self._reset_s = self._start_s
        self._latched = False
        self._cause = ""
        self._csv = CsvLog(run_dir, "safety", CSV_FIELDS)

        self._heartbeats: dict[str, _Watch] = {}
        if heartbeat_timeout > 0:
            self._heartbeats = {n: _Watch(f"heartbeat {n}", heartbeat_timeout, False) for n in required}
            self.create_subscription(Header, interfaces.HEARTBEAT, self._on_heartbeat, WATCH_QOS)
        self._streams: list[_Watch] = []
        self._watch_stream(state_topic, PoseStamped, state_timeout, WATCH_QOS)
        self._watch_stream(interfaces.JOINT_STATES, JointState, joint_timeout, WATCH_QOS, joint_state_problem)
        for topic in cameras:
            self._watch_stream(topic, Image, camera_timeout, interfaces.SENSOR,
                               lambda msg: image_problem(msg, camera_encoding, camera_width, camera_height))
        self._watch_stream(interfaces.ACTION_CHUNK, JointTrajectory, chunk_deadline, WATCH_QOS)

        self.create_subscription(String, interfaces.EPISODE, self._on_episode, interfaces.EPISODE_RECORDS)
        self._estop_pub = self.create_publisher(Bool, interfaces.ESTOP, interfaces.LATCHED)
        self._diag_pub = self.create_publisher(DiagnosticArray, interfaces.DIAGNOSTICS, 10)
        self.create_service(Trigger, interfaces.ESTOP_RESET, self._on_reset)
        self.create_service(Trigger, interfaces.ESTOP_TRIGGER, self._on_trigger)
        self.create_timer(1.0 / check_hz, self._check, clock=self._steady)
        self.create_timer(1.0 / diagnostics_hz, self._publish_diagnostics, clock=self._steady)
        self._heartbeat = start_heartbeat(self, heartbeat_hz)
        self._estop_pub.publish(Bool(data=False))
        self.get_logger().info(
            f"watching heartbeats of {sorted(self._heartbeats)} and streams {[w.name for w in self._streams]}; "
            "e-stop clear")

    @property
    def latched(self) -> bool:
        return self._latched

    @property
    def cause(self) -> str:
        """Why the e-stop is latched (every violated watchdog, or the manual trigger); empty while clear."""
        return self._cause

    # -- inputs ------------------------------------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def _watch_stream(self, topic: str, msg_type: type, timeout_s: float, qos: QoSProfile,
                      check: Callable[[object], str | None] | None = None) -> None:
        """Watch ``topic``'s arrivals. Without ``check`` it is subscribed raw (only arrival matters: no
        deserialisation). With one, a message it finds a problem in (a NaN joint state, an image of the wrong
        encoding or size) does not count as alive: it is counted, named in the log (once per problem text) and in
        /diagnostics, so a driver that only sends garbage trips the e-stop like a silent one. The recorder still
        records it as it came."""
        if timeout_s <= 0:
            return
        watch = _Watch(f"stream {topic}", timeout_s, True)
        self._streams.append(watch)

        def seen(msg) -> None:
            problem = None if check is None else check(msg)
            if problem is None:
                watch.last_s = self._now_s()
                return
            watch.rejected += 1
            if problem != watch.last_problem:
                self.get_logger().error(f"{topic}: message refused ({problem}); it does not count as alive")
            watch.last_problem = problem

        self.create_subscription(msg_type, topic, seen, qos, raw=check is None)

    def _on_heartbeat(self, msg: Header) -> None:
        watch = self._heartbeats.get(msg.frame_id)
        if watch is not None:  # nodes not in required_nodes beat too; they are not watched
            watch.last_s = self._now_s()

    def _on_episode(self, msg: String) -> None:
        try:
            record = json_payload(msg)
        except MessageError as error:
            self.get_logger().error(f"{interfaces.EPISODE}: dropped a bad episode record: {error}")
            return
        running = record.get("state") == "running"
        if running and (self._running_since is None or record.get("episode") != self._episode):
            self._running_since = self._now_s()
        elif not running:
            self._running_since = None
        self._episode = record.get("episode")

    # -- watchdogs ---------------------------------------------------------------------------------------------------
    def _violations(self, now_s: float, reset_s: float) -> list[str]:
        """Every watchdog violated at ``now_s`` if the last reset had been at ``reset_s``, as readable causes."""
        causes = []
        for node, watch in self._heartbeats.items():
            if watch.last_s is None:
                if now_s - self._start_s > self._grace_s:
                    causes.append(f"{node}: no heartbeat since start ({now_s - self._start_s:.1f} s, startup grace "
                                  f"{self._grace_s:g} s)")
            elif now_s - watch.last_s > watch.timeout_s:
                causes.append(f"{node}: heartbeat silent for {now_s - watch.last_s:.1f} s (timeout "
                              f"{watch.timeout_s:g} s)")
        if self._running_since is not None:
            since = max(self._running_since, reset_s)
            for watch in self._streams:
                age = watch.age(now_s, since)
                if age is not None and age > watch.timeout_s:
                    causes.append(f"{watch.name}: silent for {age:.1f} s during episode {self._episode} (timeout "
                                  f"{watch.timeout_s:g} s)")
        return causes

    def _check(self) -> None:
        if self._latched:
            return
        causes = self._violations(self._now_s(), self._reset_s)
        if causes:
            self._latch("; ".join(causes))

    def _latch(self, cause: str) -> None:
        self._latched, self._cause = True, cause
        self._estop_pub.publish(Bool(data=True))
        self.get_logger().error(f"E-STOP latched: {cause}")
        self._log("latch", cause)

    def _on_trigger(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._latched:
            self._latch(f"manual trigger ({interfaces.ESTOP_TRIGGER} service)")
        response.success, response.message = True, f"e-stop latched: {self._cause}"
        return response

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._latched:
            response.success, response.message = True, "e-stop was not latched"
            return response
        now = self._now_s()
        causes = self._violations(now, now)
        if causes:
            reason = "; ".join(causes)
            self._log("reset refused", reason)
            self.get_logger().warning(f"e-stop reset refused, still violated: {reason}")
            response.success, response.message = False, f"reset refused, still violated: {reason}"
            return response
        cleared = self._cause
        self._latched, self._cause, self._reset_s = False, "", now
        self._estop_pub.publish(Bool(data=False))
        self._log("reset", cleared)
        self.get_logger().warning(f"e-stop reset by operator (was: {cleared})")
        response.success, response.message = True, f"e-stop cleared (was: {cleared})"
        return response

    def _log(self, event: str, cause: str) -> None:
        self._csv.write({"wall_time": datetime.now(timezone.utc).isoformat(), "event": event, "cause": cause})

    # -- diagnostics -------------------------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = self._now_s()
        since = self._reset_s if self._running_since is None else max(self._running_since, self._reset_s)
        statuses = [DiagnosticStatus(
            level=DiagnosticStatus.ERROR if self._latched else DiagnosticStatus.OK,
            name=f"{self.get_name()}: estop", hardware_id=self.get_name(),
            message=f"LATCHED: {self._cause}" if self._latched else "clear",
            values=[KeyValue(key="latched", value=json.dumps(self._latched)), KeyValue(key="cause", value=self._cause)],
        )]
        for watch in self._heartbeats.values():
            statuses.append(self._status(watch, watch.age(now, self._start_s), armed=True))
        for watch in self._streams:
            statuses.append(self._status(watch, watch.age(now, since), armed=self._running_since is not None))
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                               status=statuses))

    def _status(self, watch: _Watch, age: float | None, armed: bool) -> DiagnosticStatus:
        if watch.data_flow and (not armed or age is None):
            level, message = DiagnosticStatus.OK, "not armed (no episode running or no message yet)"
        elif watch.last_s is None:  # a heartbeat still inside its startup grace, or past it
            late = age > self._grace_s
            level = DiagnosticStatus.ERROR if late else DiagnosticStatus.OK
            message = f"never heard ({age:.1f} s since start)" if late else "waiting (startup grace)"
        else:
            late = age > watch.timeout_s
            level = DiagnosticStatus.ERROR if late else DiagnosticStatus.OK
            message = f"silent for {age:.1f} s" if late else "ok"
        if watch.rejected:
            level = max(level, DiagnosticStatus.WARN)
            message += f"; {watch.rejected} messages refused, last: {watch.last_problem}"
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: {watch.name}", hardware_id=self.get_name(),
                                message=message,
                                values=[KeyValue(key="age_s", value="" if age is None else f"{age:.3f}"),
                                        KeyValue(key="timeout_s", value=f"{watch.timeout_s:g}"),
                                        KeyValue(key="refused", value=str(watch.rejected)),
                                        KeyValue(key="last_refused", value=watch.last_problem)])

    def destroy_node(self) -> None:
        self._csv.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: SafetyMonitor(), args)


if __name__ == "__main__":
    raise SystemExit(main())
