"""Drives episodes in sim: resets the sim, follows its steps, ends each episode with an outcome, starts the next.

Why a node of its own: the learner and the recorder need one authoritative record of every episode (its seed,
the policy version that started it, how it ended), and on the real robot the same record comes from a human's
label. In sim, this node writes it from ``/inril/sim/step_info``; everything downstream only reads
``/inril/episode`` (latched JSON, docs/graph.md "Episodes"):

- ``{"episode", "state": "running", "seed", "start_stamp", "policy_version", "outcome": null, "length": 0,
  "return": 0.0, "stamp"}`` once the sim has reset (episode id, seed and start stamp are the sim's reply);
- ``{... "state": "ended", "outcome": "success" | "timeout" | "estop", "end_stamp", "length", "return"}`` when a
  step reports success or termination (success), the time limit (timeout), or ``/inril/estop`` turns true;
- ``{"episode", "state": "done", "episodes", "policy_version", "stamp"}`` once ``max_episodes`` episodes have
  ended: no further episodes start.

``policy_version`` is the version announced on ``/inril/policy/version`` when the episode started (-1 while
none is known). An e-stop blocks new episodes until it is false again. Stamps are the node clock (sim time under
``use_sim_time``); ``start_stamp`` and ``end_stamp`` are observation stamps of the sim.

Nothing blocks in a callback: the reset service is called asynchronously and a wall-clock tick (not the node
clock, which stands still while the sim is idle) waits for the service and the step stream, retries failed
resets and gives up on a reply that takes longer than ``service_timeout_s``. Records are published with
``interfaces.EPISODE_RECORDS`` (latched, history 100): readers need the same depth to see every record.

Why the first reset waits for subscribers: the reset's observation is published once, and in lock-step nothing
moves until the policy server has answered it with a chunk and the executor with a command. A node whose
subscription is not matched yet (the policy server loads torch and its weights, seconds after the others are up)
loses it and the graph stalls until the safety monitor trips. So before the first reset the manager waits until
every node in ``wait_for_subscribers`` subscribes to ``/inril/robot/eef_pose`` (in this node's view of the graph)
and has for one more tick, logging what it still waits for every few seconds. Node names, not a count: the safety
monitor and the recorder subscribe to the same topic and are up long before the policy server. Each participant
discovers a subscription on its own, and the sim bridge's publisher can match it later than this node sees it
(measured up to 0.6 s on a loaded machine): the sim bridge covers that by publishing an unanswered observation
once more (its ``republish_s``).
"""
from __future__ import annotations

import enum
from typing import Any

from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from inril_ros import interfaces
from inril_ros.convert import MessageError, json_msg, json_payload
from inril_ros.runtime import CsvLog, declare_heartbeat_hz, describe, run_node, start_heartbeat, steady_clock

TICK_S = 0.1  # wall-clock period of the service / retry checks
RETRY_S = 1.0  # wait after a failed reset before trying again
WAIT_LOG_S = 5.0  # while waiting for subscribers before the first reset, say what is missing this often
CONSUMERS = ["policy_server", "action_executor"]  # the nodes the lock-step graph cannot start without
CSV_FIELDS = ("episode", "seed", "policy_version", "outcome", "length", "return", "start_stamp", "end_stamp",
              "wall_time")


class Phase(enum.Enum):
    IDLE = "idle"            # no episode running; one starts when allowed (no e-stop, budget left, service up)
    RESETTING = "resetting"  # reset call in flight
    RUNNING = "running"
    DONE = "done"            # max_episodes reached


def _step_fields(payload: dict) -> tuple[int, float, float, bool, bool]:
    """(episode, stamp, reward, ended_by_success, truncated) of a step_info payload; MessageError if malformed."""
    try:
        return (int(payload["episode"]), float(payload["stamp"]), float(payload["reward"]),
                bool(payload["success"]) or bool(payload["terminated"]), bool(payload["truncated"]))
    except (KeyError, TypeError, ValueError) as error:
        raise MessageError(f"step_info needs episode, stamp, reward, success, terminated, truncated: {error!r}") \
            from None


class EpisodeManager(Node):
    """Episode bookkeeping over the sim bridge; see the module docstring for the records it publishes."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("namespace", interfaces.NAMESPACE)
        super().__init__("episode_manager", **kwargs)
        self._max_episodes = self.declare_parameter("max_episodes", 0, describe(
            "stop after this many ended episodes (0 = unlimited)", int_range=(0, 10_000_000))).value
        run_dir = self.declare_parameter("run_dir", "", describe(
            "directory for episodes.csv (empty = no file)")).value
        self._service_timeout_s = self.declare_parameter("service_timeout_s", 30.0, describe(
            "wait this long for the reset service or its reply before logging an error and retrying",
            float_range=(0.1, 3600.0))).value
        # `[]` in a params file or on the command line reaches rclpy as "not set" (value None): no wait
        waited_for = self.declare_parameter("wait_for_subscribers", CONSUMERS, describe(
            f"node names: before the first reset, wait until all of them subscribe to {interfaces.EEF_POSE} (in "
            "lock-step a node that misses the reset's observation stalls the graph); [] = no wait")).value
        self._wait_for = {name for name in waited_for or [] if name}
        heartbeat_hz = declare_heartbeat_hz(self)

        self._csv = CsvLog(run_dir, "episodes", CSV_FIELDS)
        self._steady = steady_clock()
        self._phase = Phase.IDLE
        self._estop = False
        self.policy_version = -1  # the newest announced version; -1 until one is known
        self.episodes_ended = 0
        self._record: dict[str, Any] = {}    # the running episode's record
        self._started_wall_s = 0.0
        self._last_step_stamp = 0.0
        self._early_steps: list[dict] = []   # step_info that arrived while the reset reply was still in flight
        self._pending: Future | None = None  # the reset call in flight
        self._waiting_since_s = self._wall_s()  # start of the current wait for the service or a reply
        self._not_before_s = 0.0             # no reset attempt before this wall time (back-off after a failure)
        self._timeout_logged = False
        self._subscribed_since_s: float | None = None  # wall time all wait_for_subscribers nodes were first seen
        self._wait_logged_s = self._wall_s()

        self._eef_topic = self.resolve_topic_name(interfaces.EEF_POSE)  # as remapped for this node
        self._episode_pub = self.create_publisher(String, interfaces.EPISODE, interfaces.EPISODE_RECORDS)
        self._step_sub = self.create_subscription(String, interfaces.STEP_INFO, self._on_step_info,
                                                  interfaces.STREAM)
        self.create_subscription(String, interfaces.POLICY_VERSION, self._on_policy_version, interfaces.LATCHED)
        self.create_subscription(Bool, interfaces.ESTOP, self._on_estop, interfaces.LATCHED)
        self._reset_client = self.create_client(Trigger, interfaces.SIM_RESET)
        self.create_timer(TICK_S, self._tick, clock=self._steady)
        self._heartbeat = start_heartbeat(self, heartbeat_hz)

    # -- starting episodes ------------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self._wall_s()
        if self._phase is Phase.RESETTING and now - self._waiting_since_s > self._service_timeout_s:
            self.get_logger().error(f"{interfaces.SIM_RESET} did not answer within {self._service_timeout_s} s "
                                    "(is sim_bridge busy or stuck?); calling it again")
            self._reset_client.remove_pending_request(self._pending)
            self._pending = None
            self._phase = Phase.IDLE
        self._maybe_start()

    def _maybe_start(self) -> None:
        """Call the reset service if an episode may start now; the tick retries whatever is not ready yet."""
        if self._phase is not Phase.IDLE or self._estop or self._wall_s() < self._not_before_s:
            return
        if self._wait_for and not self._consumers_ready():
            return
        # Both the service and the step stream must be matched, or the first steps of the episode go uncounted.
        if not (self._reset_client.service_is_ready() and self._step_sub.get_publisher_count() > 0):
            waited = self._wall_s() - self._waiting_since_s
            if waited > self._service_timeout_s and not self._timeout_logged:
                self.get_logger().error(f"no {interfaces.SIM_RESET} service or {interfaces.STEP_INFO} publisher "
                                        f"after {waited:.0f} s: start sim_bridge (in the same ROS domain); "
                                        "still waiting")
                self._timeout_logged = True
            return
        self._phase = Phase.RESETTING
        self._waiting_since_s = self._wall_s()
        self._timeout_logged = False
        self._early_steps = []
        self._pending = self._reset_client.call_async(Trigger.Request())
        self._pending.add_done_callback(self._on_reset_reply)

    def _consumers_ready(self) -> bool:
        """Whether every ``wait_for_subscribers`` node has subscribed to the eef pose for at least one tick; once
        true, the wait is over for good (it guards the first reset only)."""
        now = self._wall_s()
        subscribed = {info.node_name for info in self.get_subscriptions_info_by_topic(self._eef_topic)}
        missing = sorted(self._wait_for - subscribed)
        if missing:
            self._subscribed_since_s = None
            if now - self._wait_logged_s >= WAIT_LOG_S:
                self._wait_logged_s = now
                self.get_logger().info(f"first reset waits for {missing} to subscribe to {self._eef_topic} "
                                       f"(subscribed now: {sorted(subscribed) or 'none'})")
            return False
        if self._subscribed_since_s is None:
            self._subscribed_since_s = now
        if now - self._subscribed_since_s < TICK_S:
            return False  # give the sim bridge's own discovery a moment to match them too
        self.get_logger().info(f"{sorted(self._wait_for)} subscribe to {self._eef_topic}: starting episodes")
        self._wait_for = set()
        return True

    def _on_reset_reply(self, future: Future) -> None:
        if future is not self._pending:  # a reply we already gave up on
            return
        self._pending = None
        self._phase = Phase.IDLE
        self._waiting_since_s = self._wall_s()
        try:
            response = future.result()
            if response is None or not response.success:
                raise MessageError(f"reset failed: {getattr(response, 'message', 'no response')}")
            reply = json_payload(String(data=response.message))
            episode, seed, start_stamp = int(reply["episode"]), int(reply["seed"]), float(reply["stamp"])
        except (MessageError, KeyError, TypeError, ValueError) as error:
            self.get_logger().error(f"{interfaces.SIM_RESET}: {error}; retrying in {RETRY_S} s")
            self._not_before_s = self._wall_s() + RETRY_S
            return
        if self._estop:
            self.get_logger().info(f"sim reset to episode {episode} during an e-stop: not started")
            return
        self._record = {"episode": episode, "state": "running", "seed": seed, "start_stamp": start_stamp,
                        "policy_version": self.policy_version, "outcome": None, "length": 0, "return": 0.0}
        self._last_step_stamp = start_stamp
        self._started_wall_s = self._wall_s()
        self._phase = Phase.RUNNING
        self._publish(self._record)
        early, self._early_steps = self._early_steps, []
        for payload in early:
            self._follow_step(payload)

    # -- following episodes -----------------------------------------------------------------------------------

    def _on_step_info(self, msg: String) -> None:
        try:
            payload = json_payload(msg)
        except MessageError as error:
            self.get_logger().error(f"{interfaces.STEP_INFO}: {error}; dropped")
            return
        if self._phase is Phase.RESETTING:
            self._early_steps.append(payload)
        elif self._phase is Phase.RUNNING:
            self._follow_step(payload)

    def _follow_step(self, payload: dict) -> None:
        try:
            episode, stamp, reward, success, truncated = _step_fields(payload)
        except MessageError as error:
            self.get_logger().error(f"{interfaces.STEP_INFO}: {error}; dropped")
            return
        if self._phase is not Phase.RUNNING or episode != self._record["episode"]:
            return  # a step of an episode that already ended
        self._record["length"] += 1
        self._record["return"] += reward
        self._last_step_stamp = stamp
        if success:
            self._end("success")
        elif truncated:
            self._end("timeout")

    def _on_estop(self, msg: Bool) -> None:
        self._estop = bool(msg.data)
        if self._estop and self._phase is Phase.RUNNING:
            self._end("estop")
        elif not self._estop:
            self._maybe_start()

    def _on_policy_version(self, msg: String) -> None:
        try:
            self.policy_version = int(json_payload(msg)["version"])
        except (MessageError, KeyError, TypeError, ValueError) as error:
            self.get_logger().error(f"{interfaces.POLICY_VERSION}: expected JSON {{version, sha256}}: {error!r}; "
                                    "dropped")

    def _end(self, outcome: str) -> None:
        record = {**self._record, "state": "ended", "outcome": outcome, "end_stamp": self._last_step_stamp}
        wall_time = self._wall_s() - self._started_wall_s
        self._publish(record)
        self._csv.write({**record, "wall_time": round(wall_time, 4)})
        self.episodes_ended += 1
        self.get_logger().info(f"episode {record['episode']} ended: {outcome}, {record['length']} steps, "
                               f"return {record['return']:.3f}")
        if self._max_episodes and self.episodes_ended >= self._max_episodes:
            self._phase = Phase.DONE
            self._publish({"episode": record["episode"], "state": "done", "episodes": self.episodes_ended,
                           "policy_version": self.policy_version})
            self.get_logger().info(f"{self.episodes_ended} episodes ended (max_episodes): no more episodes start")
            return
        self._phase = Phase.IDLE
        self._waiting_since_s = self._wall_s()
        self._maybe_start()

    # -- output -----------------------------------------------------------------------------------------------

    def _publish(self, record: dict) -> None:
        self._episode_pub.publish(json_msg({**record, "stamp": self.get_clock().now().nanoseconds * 1e-9}))

    def _wall_s(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def destroy_node(self) -> None:
        self._csv.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: EpisodeManager(), args)


if __name__ == "__main__":
    raise SystemExit(main())
