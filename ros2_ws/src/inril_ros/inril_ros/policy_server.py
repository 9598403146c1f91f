"""policy_server: complete observations -> action chunks, transitions for the learner, weight swaps at chunk boundaries.

A lifecycle node (docs/graph.md): configure loads the policy (a pre-training or fine-tuning run directory) and
fails loudly when there is none; activate starts answering. It assembles the policy's observation from the task's
observation topics (``inril_ros.task_io``: end-effector pose, gripper and object poses, and for FurnitureBench the
end-effector twist) only when all of them carry the same stamp (one env step, never mixed),
decides a chunk at an episode's first observation and at the first observation the newest chunk's ``h`` points no
longer cover (``decide_ahead_steps`` earlier, for real time on a slow policy), and publishes it stamped with the
observation's time. A chunk carries the policy's ``h`` executed points, or with ``publish_steps`` more of its
predicted horizon: in real time a decision that takes ``L`` steps reaches the executor ``L`` points into its chunk,
and the extra points cover the steps until the next one arrives instead of holds (docs/graph.md has what that did
and did not buy on one_leg). Coverage is judged by stamp, as the executor picks points, not by counting
observations: the observation subscriptions keep only the newest sample, and when
the sim steps faster than this node reads, intermediate samples of a chunk are overwritten; a count would then
fall short and lock-step would wait forever for a chunk. When the sim publishes an unanswered observation again
(sim_bridge ``republish_s``), the chunk that covers it is sent again, in case that chunk was the one lost.

In ``explore`` sampling it also publishes one ``inril_core.transitions`` record per executed chunk. A record is
published one chunk late, once it is known whether it was the episode's last: the episode manager announces an end
only after the final observation is out, so the chunk decided from that observation (at a time-out it falls on a
chunk boundary) must be dropped rather than reported as executed, and the chunk before it flagged ``last``.

New weights announced by the learner are verified (sha256) and loaded at the next chunk boundary only, so a chunk
is never produced by two versions; a bad file keeps the running weights.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from inril_core import transitions
from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.checkpoint import file_sha256, load_latest, weights_file
from inril_core.config import load_config, resolve_device
from inril_core.rl.dppo import DPPO
from inril_ros import interfaces as ifc
from inril_ros.convert import MessageError, actions_to_trajectory, json_msg, json_payload
from inril_ros.episode_record import STAMP_MATCH_NS, EpisodeRecord, read_episode_record
from inril_ros.runtime import (
    CsvLog,
    Heartbeat,
    declare_heartbeat_hz,
    declare_robot_state_qos,
    describe,
    ThrottledLog,
    run_node,
    start_heartbeat,
)
from inril_ros.task_io import BRIDGED_TASKS, message_for, task_io

SAMPLING = ("explore", "deterministic")


@dataclass
class _Chunk:
    """A decided chunk whose transition record is not published yet."""
    stamp_ns: int
    obs: np.ndarray        # (obs_dim,) raw
    chain: np.ndarray      # (K'+1, H, A) normalised fine-tuned chain
    actions: np.ndarray    # (h, A) raw actions sent
    version: int
    episode: int
    index: int             # chunk index within its episode


class PolicyServer(LifecycleNode):
    """Lifecycle node serving a diffusion policy to the graph; see the module docstring for the protocol."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("policy_server", namespace=ifc.NAMESPACE, **node_kwargs)
        self._declare_parameters()
        self._log_out_of_order = ThrottledLog(self.get_logger().warning)
        self._log_future = ThrottledLog(self.get_logger().error)
        # made at configure, destroyed at cleanup
        self._lifecycle_pubs: list = []
        self._subs: list = []
        self._logs: list[CsvLog] = []
        self._active = False
        self._heartbeat: Heartbeat | None = None
        if self.get_parameter("autostart").value:
            self._autostart()

    # ------------------------------------------------------------------------------------------- parameters

    def _declare_parameters(self) -> None:
        self.declare_parameter("task", "lift", describe(
            f"task whose observation and action the policy has: {' | '.join(BRIDGED_TASKS)}"))
        self.declare_parameter("policy_dir", "", describe(
            "run directory with checkpoints (pre-training or fine-tuning); empty = the config's train.pretrained"))
        self.declare_parameter("config_overrides", Parameter.Type.STRING_ARRAY, describe(
            "key=value overrides for inril_core.config.load_config (task=<task> is added first); the rl section "
            "builds DPPO for exploration, so pass the learner's overrides"))
        self.declare_parameter("device", "auto", describe("auto | cpu | cuda | cuda:N"))
        self.declare_parameter("sampling", "explore", describe(
            "explore: DPPO's stochastic chain, publishes transitions | deterministic: DDIM eta=0, no transitions"))
        self.declare_parameter("mode", "lockstep", describe(
            "the graph's mode (every node gets it): lockstep | realtime; decide_ahead_steps and publish_steps are "
            "for real time only"))
        self.declare_parameter("decide_ahead_steps", 0, describe(
            "decide the next chunk when the newest one has this many points left, not when it has none: in real "
            "time a decision that takes longer than a step otherwise leaves the executor holding until it comes; "
            "real time and deterministic sampling only (an exploring chunk must run whole for its transition "
            "record); 0 = each chunk run whole as in the offline evaluation", int_range=(0, 1000)))
        self.declare_parameter("ddim_steps", 0, describe(
            "deterministic sampling: DDIM steps per decision, 1 up to the policy's T (0 = T); fewer decide faster "
            "and may cost success: measure with `inril bench latency-tolerance --ddim-steps` (one_leg, 20 -> 5: "
            "3.6x faster, success 0.65 -> 0.20)",
            int_range=(0, 1000)))
        self.declare_parameter("publish_steps", 0, describe(
            "points per published chunk, from h (0 = h) up to the policy's predicted horizon; decisions still come "
            "every h steps, so the points past h only cover a decision that arrives late; real time and "
            "deterministic sampling only (as decide_ahead_steps)",
            int_range=(0, 1000)))
        self.declare_parameter("control_rate_hz", 20.0, describe(
            "env steps per second: chunk point k is due at stamp + k / control_rate_hz", float_range=(0.1, 1000.0)))
        self.declare_parameter("obs_history", 20, describe(
            "complete observations kept by stamp, to find the one an episode ended with", int_range=(2, 10000)))
        self.declare_parameter("max_future_s", 1.0, describe(
            "an observation stamped more than this ahead of the node's clock is refused: accepted, it would make "
            "every later, correctly stamped observation look out of order (a driver clock out of sync); 0 = no check",
            float_range=(0.0, 3600.0)))
        self.declare_parameter("run_dir", "", describe(
            "folder for policy_latency.csv and policy_versions.csv; empty = no files"))
        declare_heartbeat_hz(self, " once configured")
        self._state_qos = declare_robot_state_qos(self)
        self.declare_parameter("autostart", False, describe(
            "configure and activate at start (no lifecycle manager, e.g. `inril sim`); a failed configure exits"))

    def _autostart(self) -> None:
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("policy_server failed to configure (see the error above)")
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("policy_server failed to activate")

    # ------------------------------------------------------------------------------------------- lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as error:  # noqa: BLE001 - rclpy turns an exception into a silent ERROR; say why instead
            self.get_logger().error(f"configure failed: {error}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._active = True
        self._publish_version()
        self.get_logger().info(f"active: policy version {self._version}, {self._sampling} sampling")
        self._decide_on_latest()  # an episode's first observation may have come while configured but inactive
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        self._task = get("task")
        self._io = task_io(self._task)
        self._sampling = get("sampling")
        if self._sampling not in SAMPLING:
            raise ValueError(f"parameter sampling={self._sampling!r}: use one of {SAMPLING}")
        self._dt = 1.0 / get("control_rate_hz")
        self._decide_ahead, publish_steps = get("decide_ahead_steps"), get("publish_steps")
        self._ddim_steps = get("ddim_steps") or None
        self._check_sampling_options(get("mode"), decide_ahead_steps=self._decide_ahead, publish_steps=publish_steps,
                                     ddim_steps=self._ddim_steps)
        overrides = [f"task={self._task}", *(get("config_overrides") or [])]
        cfg = load_config(overrides)
        device = resolve_device(get("device"), cfg.threads)
        policy_dir = get("policy_dir") or cfg.train.pretrained
        found = load_latest(policy_dir, device)
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint in {Path(policy_dir).resolve()}: make one with 'inril pretrain task={self._task}' "
                "or set the policy_dir parameter to a run directory that has checkpoints/"
            )
        step, tensors, _ = found
        agent = DiffusionAgent.from_tensors(tensors).to(device)
        self._check_agent(agent, cfg)
        if self._decide_ahead >= agent.act_steps:
            raise ValueError(f"parameter decide_ahead_steps={self._decide_ahead} must be below the policy's chunk "
                             f"length h={agent.act_steps} (h - 1: decide at every observation)")
        self._publish_steps = self._checked_publish_steps(publish_steps, agent)
        if self._ddim_steps and self._ddim_steps > agent.spec["n_steps"]:
            raise ValueError(f"parameter ddim_steps={self._ddim_steps} exceeds the policy's {agent.spec['n_steps']} "
                             "denoising steps")
        torch.manual_seed(int(cfg.seed))  # exploration chains are reproducible in lock-step
        self._agent, self._algo = agent, DPPO(agent, cfg.rl)
        if any(k.startswith("dppo.") for k in tensors):  # a fine-tuning run: its frozen base and critic too
            self._algo.load_tensors(tensors)
        self._version = 0
        self._sha256 = file_sha256(weights_file(policy_dir, step))
        self._reset_state(get("obs_history"))
        self._max_future_ns = int(get("max_future_s") * 1e9)
        run_dir = get("run_dir")
        self._latency_log = CsvLog(run_dir, "policy_latency",
                                   ["stamp", "episode", "chunk", "version", "latency_s", "wall_time"])
        self._version_log = CsvLog(run_dir, "policy_versions", ["version", "stamp", "wall_time", "sha256"])
        self._logs = [self._latency_log, self._version_log]
        self._make_entities()
        # only now: configure blocks this single-threaded node for seconds, and a heartbeat that started and then
        # stopped would trip the safety monitor's timeout; never heard yet, it is covered by the startup grace
        self._heartbeat = start_heartbeat(self, get("heartbeat_hz"))
        self.get_logger().info(
            f"configured: {self._task} policy from {policy_dir} (step {step}, h={agent.act_steps}, "
            f"{self._publish_steps} points published, "
            f"horizon {agent.spec['horizon']}, {agent.spec['n_steps']} denoising steps"
            f"{f', {self._ddim_steps} per decision' if self._ddim_steps else ''}) on {device}")

    def _check_agent(self, agent: DiffusionAgent, cfg) -> None:
        if agent.spec["obs_dim"] != self._io.obs_dim:
            raise ValueError(f"the policy takes {agent.spec['obs_dim']} observation dims but task {self._task} "
                             f"has {self._io.obs_dim}: set the task parameter to the policy's task")
        names = self._io.action_names
        if agent.spec["act_dim"] != len(names):
            raise ValueError(f"the policy has {agent.spec['act_dim']} action dims, task {self._task}'s actions are "
                             f"{len(names)} ({', '.join(names)})")
        if cfg.rl.ft_denoising_steps > agent.spec["n_steps"]:
            raise ValueError(f"rl.ft_denoising_steps={cfg.rl.ft_denoising_steps} exceeds the policy's "
                             f"{agent.spec['n_steps']} denoising steps: pass the learner's config_overrides")

    def _checked_publish_steps(self, publish_steps: int, agent: DiffusionAgent) -> int:
        """The chunk length to publish: h unless publish_steps asks for more, up to the predicted horizon."""
        h, horizon = agent.act_steps, agent.spec["horizon"]
        if publish_steps in (0, h):
            return h
        if not h < publish_steps <= horizon:
            raise ValueError(f"parameter publish_steps={publish_steps} must be 0, or from the policy's chunk length "
                             f"h={h} to its predicted horizon {horizon}")
        return publish_steps

    # why each option needs deterministic sampling
    _REALTIME_ONLY = ("decide_ahead_steps", "publish_steps")
    _EXPLORING_REFUSES = {
        **dict.fromkeys(_REALTIME_ONLY, "an exploring chunk's transition record says its h actions ran whole"),
        "ddim_steps": "exploration runs DPPO's own chain (rl.ft_denoising_steps)",
    }

    def _check_sampling_options(self, mode: str, **options: int | None) -> None:
        """All three options need deterministic sampling (``_EXPLORING_REFUSES`` says why). decide_ahead_steps and
        publish_steps also need real time: they hand the executor points of the newest chunk past where a lock-step
        decision would take over, and in lock-step it would command them at once instead of waiting for the
        decision (the run no longer the offline policy, and racing the server)."""
        for name, value in options.items():
            if not value:
                continue
            if name in self._REALTIME_ONLY and mode != "realtime":
                raise ValueError(f"parameter {name}={value} is for mode realtime (mode is {mode!r}): in lock-step "
                                 "the executor would run the newest chunk's later points instead of waiting for "
                                 "the next decision")
            if self._sampling != "deterministic":
                raise ValueError(f"parameter {name}={value} needs sampling=deterministic: "
                                 f"{self._EXPLORING_REFUSES[name]}")

    def _reset_state(self, history: int) -> None:
        self._history_size = history
        self._history: OrderedDict[int, tuple[np.ndarray, float]] = OrderedDict()  # stamp -> (obs, arrival)
        self._latest: dict[str, tuple[int, np.ndarray]] = {}  # observation topic -> (stamp, values) of its newest
        self._episode: EpisodeRecord | None = None
        self._estop = False
        self._announced: dict | None = None     # newest checkpoint announcement not yet loaded
        self._refused: set[tuple[int, str]] = set()
        self._logged_version: int | None = None
        self._chunk_episode: int | None = None  # episode of the newest chunk
        self._chunk_stamp_ns = 0                # stamp of the newest chunk
        self._chunk_msg: JointTrajectory | None = None  # the newest chunk as sent
        self._chunk_index = -1
        self._pending: _Chunk | None = None     # newest chunk: next observation not known yet
        self._ready: tuple[_Chunk, np.ndarray] | None = None  # complete, waiting to know whether it was last
        self._ending: EpisodeRecord | None = None    # an ended episode whose final observation is awaited

    def _make_entities(self) -> None:
        self._chunk_pub = self.create_lifecycle_publisher(JointTrajectory, ifc.ACTION_CHUNK, ifc.LATEST)
        self._version_pub = self.create_lifecycle_publisher(String, ifc.POLICY_VERSION, ifc.LATCHED)
        self._transition_pub = self.create_lifecycle_publisher(UInt8MultiArray, ifc.TRANSITIONS, ifc.STREAM)
        self._lifecycle_pubs = [self._chunk_pub, self._version_pub, self._transition_pub]
        self._subs = [
            self.create_subscription(message_for(topic), topic, partial(self._on_observation_part, topic),
                                     self._state_qos if topic in ifc.ROBOT_STATE_TOPICS else ifc.LATEST)
            for topic in self._io.observation_topics
        ] + [
            self.create_subscription(String, ifc.EPISODE, self._on_episode, ifc.EPISODE_RECORDS),
            self.create_subscription(String, ifc.CHECKPOINT, self._on_checkpoint, ifc.LATCHED),
            self.create_subscription(Bool, ifc.ESTOP, self._on_estop, ifc.LATCHED),
        ]

    def _teardown(self) -> None:
        """The one path back to unconfigured: every entity, log file and the model go."""
        for pub in self._lifecycle_pubs:
            self.destroy_lifecycle_publisher(pub)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._lifecycle_pubs, self._subs = [], []
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        for log in self._logs:
            log.close()
        self._logs = []
        self._agent = self._algo = None

    def destroy_node(self) -> None:
        self._teardown()
        super().destroy_node()

    # ------------------------------------------------------------------------------------------- observations

    def _on_observation_part(self, topic: str, msg) -> None:
        try:
            stamp, values = self._io.read(topic, msg)
        except MessageError as error:
            self.get_logger().error(f"{topic}: {error}; message dropped, no observation at its stamp")
            return
        if topic == ifc.EEF_POSE and topic in self._latest and stamp == self._latest[topic][0]:
            self._answer_again(stamp)
        self._latest[topic] = (stamp, values)
        self._on_sample(time.perf_counter())

    def _answer_again(self, stamp: int) -> None:
        """The sim published an observation again: nobody commanded it, so the chunk that covers it may have been
        lost (the chunk publisher matches the executor on its own, and can be late after configure): send it
        again. The executor ignores a chunk it has (it commands each observation time once)."""
        if self._chunk_msg is None or not self._active or self._estop:
            return
        k = round((stamp - self._chunk_stamp_ns) * 1e-9 / self._dt)
        if 0 <= k < self._publish_steps:
            self.get_logger().info(f"observation at {stamp * 1e-9:.3f} s came again: chunk of "
                                   f"{self._chunk_stamp_ns * 1e-9:.3f} s sent again")
            self._chunk_pub.publish(self._chunk_msg)

    def _on_sample(self, arrived: float) -> None:
        """Build the observation once every observation topic carries one stamp (one env step)."""
        if len(self._latest) < len(self._io.observation_topics):
            return
        stamp = self._latest[ifc.EEF_POSE][0]
        if any(part_stamp != stamp for part_stamp, _ in self._latest.values()) or stamp in self._history:
            return
        if self._history and stamp < next(reversed(self._history)):
            self._log_out_of_order(  # an old sample completed late: the graph has moved on
                f"observation at {stamp * 1e-9:.3f} s is older than the newest one "
                f"({next(reversed(self._history)) * 1e-9:.3f} s): dropped as out of order")
            return
        now = self.get_clock().now().nanoseconds
        if self._max_future_ns and now > 0 and stamp > now + self._max_future_ns:  # now == 0: sim clock not yet heard
            self._log_future(
                f"observation at {stamp * 1e-9:.3f} s is {(stamp - now) * 1e-9:.3f} s ahead of this node's clock "
                f"(max_future_s {self._max_future_ns * 1e-9:g}): refused; check the driver's clock and use_sim_time")
            return
        obs = self._io.observation({topic: values for topic, (_, values) in self._latest.items()})
        self._history[stamp] = (obs, arrived)
        while len(self._history) > self._history_size:
            self._history.popitem(last=False)
        self._finish_episode(force=False)
        self._maybe_decide(stamp, obs, arrived)

    def _history_at(self, wanted_ns: int) -> np.ndarray | None:
        for stamp, (obs, _) in reversed(self._history.items()):
            if abs(stamp - wanted_ns) <= STAMP_MATCH_NS:
                return obs
        return None

    def _decide_on_latest(self) -> None:
        """Retry the newest observation after what blocked it changed (episode record came late, e-stop cleared)."""
        if self._history:
            stamp = next(reversed(self._history))
            self._maybe_decide(stamp, *self._history[stamp])

    # ------------------------------------------------------------------------------------------- chunks

    def _maybe_decide(self, stamp: int, obs: np.ndarray, arrived: float) -> None:
        episode = self._episode
        if not self._active or self._estop or episode is None or episode.state != "running":
            return
        if stamp + STAMP_MATCH_NS < episode.start_ns:
            return  # an observation of the previous episode
        first = self._chunk_episode != episode.episode
        used = round((stamp - self._chunk_stamp_ns) * 1e-9 / self._dt)
        if not first and used < self._agent.act_steps - self._decide_ahead:
            return  # the newest chunk still has a point for this observation (or more than decide_ahead_steps)
        self._swap_weights_if_announced()
        try:
            actions, chain = self._sample(obs)
        except NonFiniteError as error:
            self.get_logger().error(f"no chunk for the observation at {stamp * 1e-9:.3f} s: {error}")
            return
        self._chunk_index = 0 if first else self._chunk_index + 1
        self._chunk_episode, self._chunk_stamp_ns = episode.episode, stamp
        self._chunk_msg = actions_to_trajectory(actions, stamp * 1e-9, self._dt, self._io.action_names)
        self._chunk_pub.publish(self._chunk_msg)
        self._latency_log.write({"stamp": stamp * 1e-9, "episode": episode.episode, "chunk": self._chunk_index,
                                 "version": self._version, "latency_s": time.perf_counter() - arrived,
                                 "wall_time": time.time()})
        if self._logged_version != self._version:
            self._version_log.write({"version": self._version, "stamp": stamp * 1e-9, "wall_time": time.time(),
                                     "sha256": self._sha256})
            self._logged_version = self._version
        if chain is not None:
            self._record(_Chunk(stamp, obs, chain, actions, self._version, episode.episode, self._chunk_index))

    def _sample(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(raw actions (points, A): h, or publish_steps when deterministic; normalised fine-tuned chain
        (K'+1, H, A) or None when deterministic)."""
        if self._sampling == "deterministic":
            actions = self._agent.act_deterministic(obs[None], self._algo.denoiser_for_step, self._publish_steps,
                                                    self._ddim_steps)
            return actions[0], None
        chunk, chain = self._algo.explore(self._agent.obs_tensor(obs[None]))
        return self._agent.to_env_actions(chunk)[0], chain[0].cpu().numpy()

    # ------------------------------------------------------------------------------------------- transitions

    def _record(self, chunk: _Chunk) -> None:
        """A new chunk completes the previous one (its next obs is this chunk's) and confirms the one before."""
        if self._ready is not None:
            self._publish_transition(*self._ready, last=False)
        self._ready = None
        if self._pending is not None:
            if self._pending.episode == chunk.episode:
                self._ready = (self._pending, chunk.obs)
            else:
                self.get_logger().warning(
                    f"episode {self._pending.episode} was replaced by {chunk.episode} without an 'ended' record: "
                    "its last chunk's transition is dropped")
        self._pending = chunk

    def _finish_episode(self, force: bool) -> None:
        """Publish an ended episode's last records once its final observation is known (or can no longer come)."""
        ending = self._ending
        if ending is None:
            return
        latest = next(reversed(self._history)) if self._history else None
        final = self._history_at(ending.end_ns) if ending.end_ns is not None else None
        if final is None:
            may_still_come = ending.end_ns is not None and (latest is None or latest < ending.end_ns)
            if may_still_come and not force:
                return
            if latest is None:
                self.get_logger().error(f"episode {ending.episode} ended with no observation kept: its last "
                                        "transitions are dropped")
                self._drop_episode(ending.episode)
                return
            final = self._history[latest][0]
            self.get_logger().warning(
                f"episode {ending.episode}: no observation at its end_stamp ({ending.end_ns} ns); the last "
                f"transition uses the latest one ({latest * 1e-9:.3f} s)")
        end_ns = ending.end_ns if ending.end_ns is not None else latest  # no end_stamp: the latest obs is the end
        pending = self._pending if self._pending and self._pending.episode == ending.episode else None
        ready = self._ready if self._ready and self._ready[0].episode == ending.episode else None
        if pending is not None and pending.stamp_ns + STAMP_MATCH_NS >= end_ns:
            # decided from the final observation (the end record came later): never executed
            if ready is not None:
                self._publish_transition(*ready, last=True)
        else:
            if ready is not None:
                self._publish_transition(*ready, last=False)
            if pending is not None:
                self._publish_transition(pending, final, last=True)
        self._drop_episode(ending.episode)

    def _holds_episode(self, episode: int) -> bool:
        """Whether a chunk of ``episode`` still waits for its transition record."""
        return ((self._pending is not None and self._pending.episode == episode)
                or (self._ready is not None and self._ready[0].episode == episode))

    def _drop_episode(self, episode: int) -> None:
        if self._pending is not None and self._pending.episode == episode:
            self._pending = None
        if self._ready is not None and self._ready[0].episode == episode:
            self._ready = None
        self._ending = None

    def _publish_transition(self, chunk: _Chunk, next_obs: np.ndarray, last: bool) -> None:
        record = transitions.Transition(chunk.version, chunk.episode, chunk.index, chunk.stamp_ns * 1e-9, chunk.obs,
                                        next_obs, chunk.actions, chunk.chain, last=last)
        self._transition_pub.publish(UInt8MultiArray(data=transitions.encode(record)))

    # ------------------------------------------------------------------------------------------- episodes, e-stop

    def _on_episode(self, msg: String) -> None:
        record = read_episode_record(msg, self.get_logger())
        if record is None:
            return
        previous = self._episode
        self._episode = record
        if record.state != "running":
            if self._holds_episode(record.episode):
                self._ending = record
                self._finish_episode(force=False)
            return
        if previous is not None and previous.episode != record.episode:
            self._finish_episode(force=True)  # the previous episode's final observation can no longer come
        self._decide_on_latest()  # the episode's first observation may have completed before its record

    def _on_estop(self, msg: Bool) -> None:
        if msg.data != self._estop:
            self.get_logger().warning("e-stop: chunks stopped" if msg.data else "e-stop cleared: chunks resume")
        cleared = self._estop and not msg.data
        self._estop = bool(msg.data)
        if cleared:
            self._decide_on_latest()

    # ------------------------------------------------------------------------------------------- weights

    def _on_checkpoint(self, msg: String) -> None:
        try:
            payload = json_payload(msg)
            announced = {"version": int(payload["version"]), "path": str(payload["path"]),
                         "sha256": str(payload["sha256"]).lower()}
        except (MessageError, KeyError, TypeError, ValueError) as error:
            self.get_logger().error(f"{ifc.CHECKPOINT}: needs version, path, sha256 ({error}); announcement dropped")
            return
        self._announced = announced

    def _swap_weights_if_announced(self) -> None:
        """At a chunk boundary: load an announced checkpoint whose file matches its sha256, else keep the weights."""
        announced = self._announced
        if announced is None or announced["version"] == self._version:
            return
        key = (announced["version"], announced["sha256"])
        if key in self._refused:
            return
        path = Path(announced["path"])
        try:
            digest = file_sha256(path)
            if digest != announced["sha256"]:
                raise ValueError(f"sha256 of {path} is {digest}, the announcement says {announced['sha256']} "
                                 "(file replaced or corrupt)")
            from safetensors.torch import load_file

            tensors = load_file(str(path), device=str(self._agent.device))
            backup = {k: v.clone() for k, v in {**self._agent.tensors(), **self._algo.tensors()}.items()}
            try:
                self._agent.load_tensors(tensors)
                self._algo.load_tensors(tensors)
            except Exception:
                self._agent.load_tensors(backup)
                self._algo.load_tensors(backup)
                raise
        except Exception as error:  # noqa: BLE001 - any failure keeps the running weights; the graph goes on
            self._refused.add(key)
            self.get_logger().error(f"checkpoint version {announced['version']} refused, keeping version "
                                    f"{self._version}: {type(error).__name__}: {error}")
            return
        self._version, self._sha256 = announced["version"], announced["sha256"]
        self._publish_version()
        self.get_logger().info(f"weights swapped to version {self._version} ({path})")

    def _publish_version(self) -> None:
        self._version_pub.publish(json_msg({"version": self._version, "sha256": self._sha256}))


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: PolicyServer(), args)


if __name__ == "__main__":
    raise SystemExit(main())
