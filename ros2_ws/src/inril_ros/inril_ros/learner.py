"""learner: live IN-RIL updates from the policy server's transitions, announced as versioned checkpoints.

A thin ROS adapter over ``inril_core.live.LiveLearner`` (docs/graph.md, "Transitions and learning", "Checkpoints"):

- ``/inril/transitions`` records and ``/inril/episode`` outcomes are filed as they come; an episode the learner
  cannot learn from on-policy (lost record, e-stop, acted by another version, NaN) is dropped and counted.
- Once ``episodes_per_update`` complete episodes with ``env_steps_per_update`` env steps between them wait, one
  update runs. The new version is saved under
  ``<run_dir>/learner/checkpoints`` (``inril_core.checkpoint``, atomic) and announced, latched, on
  ``/inril/learner/checkpoint`` as ``{"version", "path", "sha256", "env_steps", "updates"}`` (absolute path of the
  weights file; env steps of the episodes learned from; updates = version, one version per update); the metrics
  go to ``/inril/learner/metrics`` (JSON, non-finite values as null) and ``<run_dir>/learner/metrics.csv``.
- Configure resumes from the newest checkpoint in ``<run_dir>/learner`` and re-announces it, so a restarted learner
  continues its version sequence and a restarted policy server finds the newest weights at once.

Threading: an update takes seconds to minutes. It runs in its own callback group, woken by a guard condition when
enough episodes wait, so under ``run_node(threads=2)`` records keep being filed meanwhile (those of the version
being replaced are dropped when it ends). An update that meets NaN/Inf leaves the learner at its last good version:
nothing is saved or announced. A checkpoint that cannot be written stops the node (the graph marks it critical:
learning that cannot be published only wastes robot time).
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

from omegaconf import OmegaConf
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import String, UInt8MultiArray

from inril_core import transitions
from inril_core.agent import NonFiniteError
from inril_core.config import load_config
from inril_core.live import EpisodeRecordError, LiveLearner
from inril_core.run_log import RunLog
from inril_ros import interfaces
from inril_ros.convert import MessageError, json_msg, json_payload
from inril_ros.runtime import declare_heartbeat_hz, describe, run_node, start_heartbeat

NODE_NAME = "learner"


def _json_safe(metrics: dict) -> dict:
    """NaN/Inf (e.g. rho before any injection) as null: strict JSON readers refuse the bare NaN token."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}


class LearnerNode(LifecycleNode):
    """Configure builds (or resumes) the learner and re-announces its checkpoint; activate starts listening."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("namespace", interfaces.NAMESPACE)
        super().__init__(NODE_NAME, **kwargs)
        self.declare_parameter("task", "lift", describe(
            "task to learn: lift | can | square (task=<task> comes before config_overrides, as in the policy server, "
            "so `ros2 launch ... task:=can` reaches both)"))
        self.declare_parameter("config_overrides", Parameter.Type.STRING_ARRAY, describe(
            "key=value overrides of config/defaults.yaml (inril_core.config), e.g. [method=in-ril]; the same as the "
            "policy server's"))
        self.declare_parameter("policy_dir", "", describe(
            "pre-training run dir with the initial policy (version 0); used while run_dir has no learner "
            "checkpoint yet; empty = the config's train.pretrained (runs/pretrain/<task>)"))
        self.declare_parameter("run_dir", "", describe(
            "run directory: checkpoints, metrics.csv and TensorBoard events go to <run_dir>/learner"))
        self.declare_parameter("episodes_per_update", 16, describe(
            "complete on-policy episodes that start one update (one new policy version)", int_range=(1, 10_000)))
        self.declare_parameter("env_steps_per_update", 0, describe(
            "and at least this many env steps in them (0 = no floor): keeps an update's batch the size of an "
            "offline iteration when episodes get short", int_range=(0, 10_000_000)))
        self.declare_parameter("device", "", describe(
            "torch device (cpu, cuda, cuda:N, auto); empty = the config's device key"))
        heartbeat_hz = declare_heartbeat_hz(self)
        # The heartbeat says the process is alive, whatever its lifecycle state, so it starts here, not at configure.
        self._heartbeat = start_heartbeat(self, heartbeat_hz, NODE_NAME)
        self._busy = threading.Lock()  # held while an update runs; teardown waits for it
        self._live: LiveLearner | None = None
        self._learner_dir: Path | None = None
        self._log: RunLog | None = None
        self._checkpoint_pub = self._metrics_pub = self._update_guard = None
        self._inputs: list = []

    # ------------------------------------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            overrides = list(self.get_parameter("config_overrides").value)
        except ParameterUninitializedException:  # not set: declared without a default, as rclpy would type an
            overrides = []                       # empty-list default as a byte array
        device = self.get_parameter("device").value
        run_dir = self.get_parameter("run_dir").value
        if not run_dir:
            self.get_logger().error("run_dir is empty: the learner needs a directory for its checkpoints "
                                    "(set run_dir, e.g. runs/live/lift)")
            return TransitionCallbackReturn.FAILURE
        self._learner_dir = Path(run_dir) / NODE_NAME
        try:
            task = self.get_parameter("task").value
            cfg = load_config([f"task={task}", *overrides, *([f"device={device}"] if device else [])])
            self._live = LiveLearner.open(cfg, self._learner_dir,
                                          self.get_parameter("policy_dir").value or cfg.train.pretrained,
                                          self.get_parameter("episodes_per_update").value,
                                          self.get_parameter("env_steps_per_update").value)
            resumed = self._live.checkpoint is not None
            self._log = RunLog(self._learner_dir, resume_iteration=self._live.version if resumed else None)
            OmegaConf.save(cfg, self._learner_dir / "config.yaml")  # what this learner ran with, next to its output
        except Exception as error:  # noqa: BLE001 - any failure to build the learner fails the transition, named
            self.get_logger().error(f"configure failed: {type(error).__name__}: {error}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self._checkpoint_pub = self.create_publisher(String, interfaces.CHECKPOINT, interfaces.LATCHED)
        self._metrics_pub = self.create_publisher(String, interfaces.LEARNER_METRICS, interfaces.STREAM)
        self._update_guard = self.create_guard_condition(self._update,
                                                         callback_group=MutuallyExclusiveCallbackGroup())
        if resumed:
            self._announce()
            self.get_logger().info(f"resumed version {self._live.version} from {self._live.checkpoint[0]}")
        else:
            self.get_logger().info(f"starting at version 0 from the policy in {self.get_parameter('policy_dir').value}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._inputs = [
            self.create_subscription(UInt8MultiArray, interfaces.TRANSITIONS, self._on_transition, interfaces.STREAM),
            # volatile on purpose: records from before this learner subscribed end episodes whose transitions it
            # never received; replayed, they would only fill the assembler with episodes that cannot complete
            self.create_subscription(String, interfaces.EPISODE, self._on_episode, interfaces.EPISODE_RECORDS_LIVE),
        ]
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._teardown()
        super().destroy_node()

    def _stop_inputs(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []

    def _teardown(self) -> None:
        """Wait for a running update, then release everything configure and activate made; idempotent."""
        with self._busy:
            self._stop_inputs()
            if self._update_guard is not None:
                self.destroy_guard_condition(self._update_guard)
            for publisher in (self._checkpoint_pub, self._metrics_pub):
                if publisher is not None:
                    self.destroy_publisher(publisher)
            if self._log is not None:
                self._log.close()
            self._checkpoint_pub = self._metrics_pub = self._update_guard = self._log = self._live = None

    # ------------------------------------------------------------------------------------------------ records

    def _on_transition(self, msg: UInt8MultiArray) -> None:
        try:
            self._live.add(transitions.decode(bytes(msg.data)))
        except (transitions.TransitionFormatError, EpisodeRecordError, NonFiniteError) as error:
            self.get_logger().error(f"dropped a record on {interfaces.TRANSITIONS}: {error}")
            return
        self._wake_if_ready()

    def _on_episode(self, msg: String) -> None:
        try:
            self._live.add_episode_outcome(json_payload(msg))
        except (MessageError, EpisodeRecordError) as error:
            self.get_logger().error(f"dropped a record on {interfaces.EPISODE}: {error}")
            return
        self._wake_if_ready()

    def _wake_if_ready(self) -> None:
        """Ask for an update. The guard's callback group runs one callback at a time, so a trigger that comes while
        an update runs is served right after it; skipping the trigger when busy once left a completed batch
        waiting until some later record arrived (seen in `inril bench latency`)."""
        if self._live.ready():
            self._update_guard.trigger()

    # ------------------------------------------------------------------------------------------------ learning

    def _update(self) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            while self._live is not None and self._live.ready() and self._learn():
                pass
        finally:
            self._busy.release()

    def _learn(self) -> bool:
        """One update, saved and announced; False when it failed (the batch is not retried in a loop)."""
        live = self._live
        kept = live.version
        try:
            metrics = live.update()
        except NonFiniteError as error:
            self.get_logger().error(f"update failed, version {kept} kept (nothing saved or announced): {error}")
            return False
        live.save(self._learner_dir)
        self._announce()
        self._metrics_pub.publish(json_msg(_json_safe(metrics)))
        self._log.write("metrics", {"iteration": live.version, **metrics}, live.env_steps)
        self.get_logger().info(
            f"version {live.version}: {metrics['episodes_used']} episodes (success {metrics['success_rate']:.2f}), "
            f"{metrics['update_s']:.2f} s; dropped off-policy {metrics['dropped_off_policy']}, "
            f"incomplete {metrics['dropped_incomplete']}")
        return True

    def _announce(self) -> None:
        path, sha256 = self._live.checkpoint
        self._checkpoint_pub.publish(json_msg({
            "version": self._live.version, "path": str(path), "sha256": sha256,
            "env_steps": self._live.env_steps, "updates": self._live.version,
        }))


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: LearnerNode(), args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
