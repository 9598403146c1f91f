"""Record the graph's topics as raw CDR into one rosbag2 (MCAP) bag per episode; closed episodes go to the store.

Episode boundaries come from the ``/inril/episode`` records: ``running`` opens
``<run_dir>/bags/episode_<id:06d>/`` (with the record in ``episode.json``; an id reused by a later run gets
``episode_<id:06d>_<n>``), ``ended`` closes it ``end_grace_s`` later (messages on other topics can arrive after the
record that ends their episode; the grace keeps the last step's observation and reward) and replaces
``episode.json`` with the ended record. A stop of the recorder finishes (stores) an ended episode at once.

Two subscriptions read the records. Every record counts and they come back to back ("ended", then "running" or
"done"), so the records are read from a deep queue (``interfaces.EPISODE_RECORDS_LIVE``), volatile: the episode
manager's replayed history (up to 100 records) would open and close a bag for every episode that ended before this
recorder started. What a (re)started recorder needs from the past is only the newest record, the episode running
now: a second, latched subscription takes it and is then dropped. The writer replays its whole history to it, one
record after another, and a callback may run before the last has arrived (seen in CI: the recorder opened the bag
of an episode that had ended), so that subscription keeps the last record it reads for ``CURRENT_RECORD_SETTLE_S``
after the first and applies only that one.

Messages are placed by stamp where they have one (a header: observations, chunks, commands; ``step_info``'s JSON
stamp). The sim publishes an episode's first observation before it answers the reset, and the running record
comes only after that answer, so the first messages of an episode usually arrive before its record, often while
the previous episode's end grace runs. So during the grace, a stamped message later than the ended record's
``end_stamp`` is not written to the ended episode; the last ``RECENT`` stamped messages of each topic are kept,
and those stamped at or after ``start_stamp`` are written when the episode opens. Other messages outside an
episode are dropped, except the newest message of each latched topic (e-stop, policy version, checkpoint), written
at the start of the next episode so every bag says what state it began in.

Why segments: rosbags' MCAP writer keeps a 1 MiB chunk (the schemas and channels included) in memory and writes
the summary, footer and ``metadata.yaml`` only on close. Measured on this machine, a SIGKILLed writer leaves a
0-byte ``.mcap`` after 100 poses (7.6 kB) and, after 20 000 poses, 2.4 MB without a footer that rosbags refuses
("File end magic is invalid") with no ``metadata.yaml``. A bag must therefore be closed to be readable, so each
episode is written as a series of complete bags ``segment_000/``, ``segment_001/``, ... closed every
``segment_s`` wall seconds and at episode end: a killed recorder loses at most the open segment (tested: every
message of the closed segments reads back, no gap). Closing a segment and opening the next costs 10-20 ms on a
loaded 2-core machine (message definitions cached per type; the metadata.yaml dump dominates); messages that
arrive meanwhile wait in the subscription queues (depth 100).

An episode that resumed into its directory (the recorder was restarted mid-episode: the latched running record
matches ``episode.json``) or that has a segment without ``metadata.yaml`` (lost to a crash) keeps its bag but is not
put in the episode store: the store holds complete episodes only.
"""
from __future__ import annotations

import bisect
import importlib
import json
import os
import re
import struct
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import String

from inril_core.episodes.store import SOURCES, Episode, EpisodeStore
from inril_ros import interfaces
from inril_ros.convert import MessageError, json_payload, trajectory_to_actions, stamp_ns
from inril_ros.runtime import (
    CsvLog,
    declare_heartbeat_hz,
    declare_robot_state_qos,
    describe,
    run_node,
    start_heartbeat,
    steady_clock,
)
from inril_ros.task_io import task_io

NODE_NAME = "recorder"
SEGMENT_PREFIX = "segment_"
EPISODE_FILE = "episode.json"  # the episode record next to its segments: running while recording, then ended
CSV_FIELDS = ("wall_time", "episode", "bag", "segments", "messages", "steps", "stored_index", "note")

# Topic -> message type of every topic the graph defines (docs/graph.md, interfaces.py); cameras by pattern.
TOPIC_TYPES: dict[str, str] = {
    interfaces.JOINT_STATES: "sensor_msgs/msg/JointState",
    interfaces.EEF_POSE: "geometry_msgs/msg/PoseStamped",
    interfaces.EEF_TWIST: "geometry_msgs/msg/TwistStamped",
    interfaces.GRIPPER_STATE: "sensor_msgs/msg/JointState",
    interfaces.OBJECT_POSES: "geometry_msgs/msg/PoseArray",
    interfaces.CLOCK: "rosgraph_msgs/msg/Clock",
    interfaces.STEP_INFO: "std_msgs/msg/String",
    interfaces.ACTION_CHUNK: "trajectory_msgs/msg/JointTrajectory",
    interfaces.POLICY_VERSION: "std_msgs/msg/String",
    interfaces.TRANSITIONS: "std_msgs/msg/UInt8MultiArray",
    interfaces.COMMAND: "trajectory_msgs/msg/JointTrajectory",
    interfaces.EPISODE: "std_msgs/msg/String",
    interfaces.CHECKPOINT: "std_msgs/msg/String",
    interfaces.LEARNER_METRICS: "std_msgs/msg/String",
    interfaces.ESTOP: "std_msgs/msg/Bool",
    interfaces.HEARTBEAT: "std_msgs/msg/Header",
    interfaces.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
CAMERA_TYPES = {"image_raw": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo"}
_CAMERA = re.compile(r"^/camera/[^/]+/color/(image_raw|camera_info)$")
# Types whose serialised form starts with a stamp (std_msgs/Header first): their stamp is read without deserialising.
STAMPED_TYPES = frozenset({"sensor_msgs/msg/JointState", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseArray",
                           "geometry_msgs/msg/TwistStamped", "trajectory_msgs/msg/JointTrajectory",
                           "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"})
STAMP_TOLERANCE_NS = 1000  # start_stamp / end_stamp are JSON seconds: a message stamp matches them within 1 us
RECENT = 20  # stamped messages kept per topic for the next episode: a few steps of a fast lock-step graph
CURRENT_RECORD_SETTLE_S = 0.5  # how long the latched record subscription reads the replayed history for its newest
LATCHED_TOPICS = frozenset({interfaces.EPISODE, interfaces.ESTOP, interfaces.POLICY_VERSION, interfaces.CHECKPOINT})
DEFAULT_TOPICS = [interfaces.JOINT_STATES, interfaces.EEF_POSE, interfaces.GRIPPER_STATE, interfaces.OBJECT_POSES,
                  interfaces.ACTION_CHUNK, interfaces.COMMAND, interfaces.STEP_INFO, interfaces.EPISODE,
                  interfaces.ESTOP]
# Streams: every message counts and a bag write can stall the executor for a moment; 100 rides that out.
RECORD_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                        history=HistoryPolicy.KEEP_LAST)


def topic_type(topic: str) -> str:
    """The message type name (``pkg/msg/Type``) of a graph topic; an unknown topic raises naming the known ones."""
    if topic in TOPIC_TYPES:
        return TOPIC_TYPES[topic]
    camera = _CAMERA.match(topic)
    if camera:
        return CAMERA_TYPES[camera.group(1)]
    raise ValueError(f"recorder: no message type known for topic {topic!r}; record one of {sorted(TOPIC_TYPES)} or "
                     "/camera/<name>/color/{image_raw,camera_info}, or add the topic to recorder.TOPIC_TYPES")


def topic_qos(topic: str, robot_state: QoSProfile = interfaces.LATEST) -> QoSProfile:
    """Episode records from a deep volatile queue (module docstring), the other latched topics transient-local (a bag
    starts with their state), cameras best effort, robot state with the reliability the profile reads it with
    (``robot_state``, interfaces.robot_state_qos) in RECORD_QOS's deep queue, the rest reliable."""
    if topic == interfaces.EPISODE:
        return interfaces.EPISODE_RECORDS_LIVE
    if topic in LATCHED_TOPICS:
        return interfaces.LATCHED
    if _CAMERA.match(topic):
        return interfaces.SENSOR
    if topic in interfaces.ROBOT_STATE_TOPICS:
        return QoSProfile(depth=RECORD_QOS.depth, reliability=robot_state.reliability,
                          durability=RECORD_QOS.durability, history=RECORD_QOS.history)
    return RECORD_QOS


def message_class(type_name: str) -> type:
    """``'sensor_msgs/msg/JointState'`` -> the rclpy class."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def bag_segments(episode_dir: Path) -> tuple[list[Path], list[Path]]:
    """(closed, unclosed) segment bags of an episode directory in order; unclosed ones have no metadata.yaml."""
    parts = sorted(p for p in episode_dir.iterdir() if p.is_dir() and p.name.startswith(SEGMENT_PREFIX))
    closed = [p for p in parts if (p / "metadata.yaml").exists()]
    return closed, [p for p in parts if p not in closed]


def read_bag(path: str | Path) -> list[tuple[str, int, Any]]:
    """Every message of a bag as (topic, bag time ns, rclpy message), in time order.

    ``path`` is one rosbag2 bag or an episode directory of segment bags (read in order; segments left unclosed by a
    crash are unreadable and skipped). Messages are deserialised with rclpy, which reads every CDR rclpy wrote
    (rosbags' own deserialiser rejects JointStates with empty trailing arrays, ros2-notes §4.2).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"bag {path} does not exist (expected a rosbag2 directory or an episode directory)")
    bags = [path] if (path / "metadata.yaml").exists() else bag_segments(path)[0]
    messages = []
    for bag in bags:
        with Reader(bag) as reader:
            for connection, timestamp, raw in reader.messages():
                msg = deserialize_message(bytes(raw), message_class(connection.msgtype))
                messages.append((connection.topic, timestamp, msg))
    return messages


def _write_json(path: Path, payload: dict) -> None:
    """Atomic (write, rename): a crash leaves the old record or the new one, never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, sort_keys=True))
    os.replace(tmp, path)



def _json_stamp_ns(payload: dict, key: str) -> int | None:
    """``payload[key]`` (seconds) in ns; None when it is missing or not a number."""
    try:
        return int(round(float(payload[key]) * 1e9))
    except (KeyError, TypeError, ValueError):
        return None


def cdr_stamp_ns(raw: bytes) -> int:
    """The header stamp of a serialised message of a ``STAMPED_TYPES`` type: after the 4-byte CDR encapsulation
    header (byte 1 is 1 for little-endian) come ``stamp.sec`` (int32) and ``stamp.nanosec`` (uint32)."""
    sec, nanosec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def build_episode(messages: list[tuple[str, int, Any]], task: str, metadata: dict,
                  end_ns: int | None = None) -> Episode:
    """An Episode from recorded messages: one step per executed command.

    ``end_ns``: the episode's ``end_stamp``. The executor answers the final observation too, but the sim had
    already ended the episode there and ignores that command, so commands stamped at or after it are not steps
    (without this every stored episode was one step longer than its record said).

    Step ``i`` is the command stamped ``t_i`` (the observation time it answers); its observation is the newest
    complete sample (every observation topic of the task with one stamp: eef pose, gripper, object poses, and the
    eef twist for FurnitureBench) at or before ``t_i``, built as the policy server builds it
    (``inril_ros.task_io``); its reward is the sum of ``step_info`` rewards stamped in
    ``(t_i, t_{i+1}]`` (step_info is stamped with the observation the step produced). Malformed messages are
    counted in ``metadata['dropped_messages']``; an episode with no step raises ValueError.
    """
    io = task_io(task)
    samples: dict[int, dict[str, np.ndarray]] = {}
    commands: dict[int, np.ndarray] = {}
    step_rewards: list[tuple[int, float]] = []
    dropped = 0
    for topic, _, msg in messages:
        try:
            if topic in io.observation_topics:
                stamp, values = io.read(topic, msg)
                samples.setdefault(stamp, {})[topic] = values
            elif topic == interfaces.COMMAND:
                commands[stamp_ns(msg.header.stamp)] = trajectory_to_actions(msg, io.action_names)[0][0]
            elif topic == interfaces.STEP_INFO:
                info = json_payload(msg)
                step_rewards.append((int(round(float(info["stamp"]) * 1e9)), float(info["reward"])))
        except (MessageError, KeyError, TypeError, ValueError):
            dropped += 1
    complete = sorted(t for t, s in samples.items() if len(s) == len(io.observation_topics))
    step_rewards.sort()
    reward_stamps = [t for t, _ in step_rewards]
    stamps = sorted(t for t in commands if end_ns is None or t < end_ns - STAMP_TOLERANCE_NS)
    observations, actions, rewards = [], [], []
    for i, t in enumerate(stamps):
        k = bisect.bisect_right(complete, t) - 1
        if k < 0:
            continue  # a command before any complete observation answers nothing this episode recorded
        observations.append(io.observation(samples[complete[k]]))
        actions.append(commands[t])
        end = stamps[i + 1] if i + 1 < len(stamps) else None
        lo = bisect.bisect_right(reward_stamps, t)
        hi = len(step_rewards) if end is None else bisect.bisect_right(reward_stamps, end)
        rewards.append(sum(r for _, r in step_rewards[lo:hi]))
    if not observations:
        raise ValueError(f"no steps: {len(commands)} commands, {len(complete)} complete observations "
                         f"({', '.join(io.observation_topics)} with one stamp) recorded")
    return Episode(np.asarray(observations), np.asarray(actions), np.asarray(rewards),
                   {**metadata, "task": task, "dropped_messages": dropped})


class Recorder(Node):
    """Raw-CDR subscriptions -> per-episode MCAP segment bags -> the episode store (module docstring)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("namespace", interfaces.NAMESPACE)
        super().__init__(NODE_NAME, **kwargs)
        declare = self.declare_parameter
        heartbeat_hz = declare_heartbeat_hz(self)
        robot_state = declare_robot_state_qos(self)
        topics = declare("topics", DEFAULT_TOPICS, describe(
            "topics to record (types from recorder.TOPIC_TYPES; /inril/episode is always recorded)")).value
        run_dir = declare("run_dir", "", describe(
            "bags go to <run_dir>/bags, recorder.csv to <run_dir>; required")).value
        store = declare("episode_store", "", describe(
            "episode store directory; empty = <run_dir>/episodes")).value
        self._task = declare("task", "lift", describe(
            "task whose observation the stored episodes hold (inril_ros.task_io); its observation topics are "
            "always recorded")).value
        self._source = declare("source", "policy", describe(
            f"episode source in the store metadata, one of {', '.join(SOURCES)}")).value
        self._segment_s = declare("segment_s", 5.0, describe(
            "close the open bag segment after this many wall seconds (a crash loses at most one)",
            float_range=(0.1, 3600.0))).value
        self._end_grace_s = declare("end_grace_s", 0.5, describe(
            "wall seconds an ended episode's bag stays open for late messages of its last step",
            float_range=(0.0, 60.0))).value
        if not run_dir:
            raise ValueError("recorder: parameter run_dir is empty; set it (e.g. -p run_dir:=runs/sim) so bags have a "
                             "place to go")
        if self._source not in SOURCES:
            raise ValueError(f"recorder: parameter source is {self._source!r}; use one of {', '.join(SOURCES)}")
        topics = list(dict.fromkeys([*topics, *task_io(self._task).observation_topics, interfaces.EPISODE]))
        types = {topic: topic_type(topic) for topic in topics}  # fails at start on an unknown topic

        self._bags = Path(run_dir) / "bags"
        self._csv = CsvLog(run_dir, "recorder", CSV_FIELDS)
        self._store = EpisodeStore(store or Path(run_dir) / "episodes")
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._typedefs: dict[str, tuple[str, str]] = {}  # type name -> (msgdef, rihs01), computed once
        self._types = types
        self._steady = steady_clock()
        self._latest_latched: dict[str, bytes] = {}
        self._recent: dict[str, deque[tuple[int, bytes]]] = {}  # topic -> its newest stamped messages (stamp ns, raw)
        self._end_ns: int | None = None         # end_stamp of the ended episode whose grace runs
        self._episode: dict | None = None       # the running record of the open episode
        self._newest_live_episode = -1          # the highest episode id read on the live record queue
        self._written_record: bytes | None = None  # the last episode record written, not to write it twice
        self._episode_dir: Path | None = None
        self._resumed = False                   # the episode directory existed already: a restart mid-episode
        self._ended: dict | None = None         # its ended record, once received
        self._close_at_s: float | None = None   # steady time the ended episode's bag closes
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._segment_opened_s = 0.0

        for topic, type_name in types.items():
            self.create_subscription(message_class(type_name), topic,
                                     lambda raw, topic=topic: self._on_message(topic, raw),
                                     topic_qos(topic, robot_state), raw=True)
        self._current_sub = self.create_subscription(String, interfaces.EPISODE, self._on_current_record,
                                                     interfaces.LATCHED, raw=True)
        self._current_record: bytes | None = None  # the newest record the latched subscription has read
        self._current_timer = None                 # fires CURRENT_RECORD_SETTLE_S after its first record
        self.create_timer(0.1, self._on_tick, clock=self._steady)
        self._heartbeat = start_heartbeat(self, heartbeat_hz)
        self.get_logger().info(f"recording {topics} into {self._bags}, episodes into {self._store.path}")

    def _now_s(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    # -- messages ----------------------------------------------------------------------------------------------------
    def _on_message(self, topic: str, raw: bytes) -> None:
        if topic == interfaces.EPISODE:
            self._on_episode(raw)
            return
        if topic in LATCHED_TOPICS:
            self._latest_latched[topic] = raw
        stamp_ns = self._stamp_of(topic, raw)
        if stamp_ns is not None:
            self._recent.setdefault(topic, deque(maxlen=RECENT)).append((stamp_ns, raw))
        if self._episode is None:
            return
        if self._end_ns is not None and stamp_ns is not None and stamp_ns > self._end_ns + STAMP_TOLERANCE_NS:
            return  # the next episode's, come during this one's end grace: written when that one opens
        self._write(topic, raw)

    def _stamp_of(self, topic: str, raw: bytes) -> int | None:
        """The message's stamp (ns) when it has one: header stamp, or the JSON stamp of a step_info."""
        if self._types[topic] in STAMPED_TYPES:
            return cdr_stamp_ns(raw)
        if topic == interfaces.STEP_INFO:
            try:
                return _json_stamp_ns(json_payload(deserialize_message(raw, String)), "stamp")
            except MessageError:
                return None  # written as it is; build_episode counts it as dropped
        return None

    def _on_current_record(self, raw: bytes) -> None:
        """A record of the history replayed to this recorder when it joined; the newest wins once they settle."""
        if self._current_sub is None:
            return
        self._current_record = raw
        if self._current_timer is None:
            self._current_timer = self.create_timer(CURRENT_RECORD_SETTLE_S, self._apply_current_record,
                                                    clock=self._steady)

    def _apply_current_record(self) -> None:
        """The newest episode record when this recorder joined, once: a running one resumes or opens its episode,
        unless the live queue has moved past it already."""
        self.destroy_timer(self._current_timer)
        self.destroy_subscription(self._current_sub)
        self._current_timer, self._current_sub = None, None
        raw, self._current_record = self._current_record, None
        record = self._parse_record(raw)
        if record is not None and record["state"] == "running" and int(record["episode"]) > self._newest_live_episode:
            self._apply_record(record, raw)

    def _on_episode(self, raw: bytes) -> None:
        record = self._parse_record(raw)
        if record is not None:
            self._newest_live_episode = max(self._newest_live_episode, int(record["episode"]))
            self._apply_record(record, raw)

    def _parse_record(self, raw: bytes) -> dict | None:
        try:
            record = json_payload(deserialize_message(raw, String))
            int(record["episode"]), str(record["state"])
        except (MessageError, KeyError, TypeError, ValueError) as error:
            self.get_logger().error(f"{interfaces.EPISODE}: dropped a bad episode record: {error!r}")
            return None
        return record

    def _apply_record(self, record: dict, raw: bytes) -> None:
        episode, state = int(record["episode"]), record["state"]
        open_id = None if self._episode is None else int(self._episode["episode"])
        if state == "running" and episode != open_id:
            if self._episode is not None:
                self._finish()
            self._open_episode(record)
        elif state == "ended" and episode == open_id and self._ended is None:
            self._ended, self._end_ns = record, _json_stamp_ns(record, "end_stamp")
            self._close_at_s = self._now_s() + self._end_grace_s
        if self._episode is not None and int(self._episode["episode"]) == episode and raw != self._written_record:
            self._write(interfaces.EPISODE, raw)  # a record read on both subscriptions is written once
            self._written_record = raw

    def _open_episode(self, record: dict) -> None:
        self._episode, self._ended, self._close_at_s, self._end_ns = record, None, None, None
        self._episode_dir, self._resumed = self._directory_for(record)
        if self._resumed:
            self.get_logger().warning(f"{self._episode_dir} holds this running episode already: recording resumes "
                                      "after a restart; the bag is kept, the episode will not be stored (incomplete)")
        else:
            self._episode_dir.mkdir(parents=True)
            _write_json(self._episode_dir / EPISODE_FILE, record)
        for topic, raw in self._latest_latched.items():
            self._write(topic, raw)
        start_ns = _json_stamp_ns(record, "start_stamp")
        if start_ns is None:
            return  # a record without a usable start_stamp: the messages before it cannot be placed
        for topic, recent in self._recent.items():
            for stamp, raw in recent:
                if stamp + STAMP_TOLERANCE_NS >= start_ns:
                    self._write(topic, raw)

    def _directory_for(self, record: dict) -> tuple[Path, bool]:
        """(directory, resumed): the directory already holding this very running record (a restart mid-episode), else
        the first free one; an id reused by another run gets ``episode_<id>_<n>`` instead of mixing two episodes."""
        base, n = f"episode_{int(record['episode']):06d}", 0
        while True:
            path = self._bags / (base if n == 0 else f"{base}_{n}")
            if not path.exists():
                return path, False
            sidecar = path / EPISODE_FILE
            if sidecar.exists() and json.loads(sidecar.read_text()) == record:
                return path, True
            n += 1

    def _write(self, topic: str, raw: bytes) -> None:
        if self._writer is None:
            self._open_segment()
        connection = self._connections.get(topic)
        if connection is None:
            type_name = self._types[topic]
            if type_name not in self._typedefs:
                msgdef, _ = self._typestore.generate_msgdef(type_name, ros_version=2)
                self._typedefs[type_name] = (msgdef, self._typestore.hash_rihs01(type_name))
            msgdef, rihs01 = self._typedefs[type_name]
            connection = self._writer.add_connection(topic, type_name, msgdef=msgdef, rihs01=rihs01)
            self._connections[topic] = connection
        self._writer.write(connection, self.get_clock().now().nanoseconds, raw)

    # -- segments and episodes ---------------------------------------------------------------------------------------
    def _open_segment(self) -> None:
        index = len(list(self._episode_dir.glob(f"{SEGMENT_PREFIX}*")))
        writer = Writer(self._episode_dir / f"{SEGMENT_PREFIX}{index:03d}", version=9,
                        storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._writer, self._connections, self._segment_opened_s = writer, {}, self._now_s()

    def _close_segment(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _on_tick(self) -> None:
        now = self._now_s()
        if self._close_at_s is not None and now >= self._close_at_s:
            self._finish()
        elif self._writer is not None and now - self._segment_opened_s >= self._segment_s:
            self._close_segment()

    def _finish(self) -> None:
        """Close the open episode's bag and put a complete, ended episode into the store; never raises."""
        record, ended, episode_dir = self._episode, self._ended, self._episode_dir
        self._close_segment()
        self._episode, self._ended, self._close_at_s, self._episode_dir, self._end_ns = None, None, None, None, None
        row = {"episode": record["episode"], "bag": str(episode_dir), "segments": "", "messages": "", "steps": "",
               "stored_index": "", "note": ""}
        try:
            row["note"] = self._store_episode(record, ended, episode_dir, row)
        except Exception as error:  # noqa: BLE001 - a bad episode must not stop the recording of the next one
            row["note"] = f"not stored: {type(error).__name__}: {error}"
        message = f"episode {record['episode']}: bag {episode_dir} closed; {row['note']}"
        if row["stored_index"] != "":  # two call sites: rclpy refuses one call site logging at two severities
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)
        self._log(row)

    def _store_episode(self, record: dict, ended: dict | None, episode_dir: Path, row: dict) -> str:
        """Append the episode to the store if it is complete; returns what happened, for the log."""
        closed, unclosed = bag_segments(episode_dir)
        row["segments"] = len(closed)
        if ended is None:
            return "not stored: the episode never ended (a new one started)"
        _write_json(episode_dir / EPISODE_FILE, ended)
        if self._resumed or unclosed:
            return f"not stored: incomplete (resumed after a restart: {self._resumed}, unclosed segments: " \
                   f"{[p.name for p in unclosed]})"
        messages = read_bag(episode_dir)
        row["messages"] = len(messages)
        outcome = ended.get("outcome")
        metadata = {"source": self._source, "success": outcome == "success", "outcome": outcome,
                    "policy_version": record.get("policy_version"), "seed": record.get("seed"),
                    "episode": record["episode"], "bag": str(episode_dir)}
        try:
            episode = build_episode(messages, self._task, metadata, _json_stamp_ns(ended, "end_stamp"))
        except ValueError as error:
            return f"not stored: {error}"
        row["steps"] = len(episode)
        row["stored_index"] = self._store.append(episode)
        note = f"stored as {self._store.path}[{row['stored_index']}], {len(episode)} steps"
        if ended.get("length") is not None and ended["length"] != len(episode):
            note += f" (episode record says {ended['length']} steps)"
        return note

    def _log(self, row: dict) -> None:
        self._csv.write({"wall_time": datetime.now(timezone.utc).isoformat(), **row})

    def destroy_node(self) -> None:
        """A stop mid-episode closes the open segment so everything recorded so far stays readable. An episode that
        has ended is finished (stored) at once: no late message can come any more, and a graph stopped right after
        its last episode (``max_episodes``) would otherwise lose that one from the store."""
        if self._ended is not None:
            self._finish()
        else:
            self._close_segment()
        self._csv.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: Recorder(), args)


if __name__ == "__main__":
    raise SystemExit(main())
