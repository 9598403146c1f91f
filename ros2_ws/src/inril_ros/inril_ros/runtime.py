"""What every node shares: one way to start, spin and stop; the heartbeat; parameter descriptors; CSV logs.

rclpy's spin ignores SIGTERM (ros2-notes §9), and a process supervisor (``inril sim``, systemd, launch) sends it:
so SIGTERM is turned into the same clean shutdown as Ctrl-C. Jazzy's rclpy has no ``with rclpy.init()``, so the
init / try / finally shape is spelt out here once.

Wall-clock timers: with ``use_sim_time`` a node's own clock is sim time, and in lock-step the sim stands still
whenever nobody commands it, so a node-clock timer would stop exactly when a heartbeat, watchdog or retry is
needed. Such timers run on :func:`steady_clock`; stamps stay on the node clock.
"""
from __future__ import annotations

import csv
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.timer import Timer
from std_msgs.msg import Header

from inril_ros import interfaces


def _raise_keyboard_interrupt(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def run_node(make_node: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> int:
    """Init rclpy, build the node, spin until Ctrl-C / SIGTERM / shutdown, then tear everything down.

    ``threads > 1`` spins a MultiThreadedExecutor (for nodes whose slow callbacks, e.g. a learner update, sit in
    their own callback group). Returns the process exit code: 0 on a requested stop, 1 when the node raised.
    """
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    rclpy.init(args=args if args is not None else sys.argv)
    node: Node | None = None
    code = 0
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:  # noqa: BLE001 - the one place a node's failure becomes an exit code and a log line
        if node is not None:
            node.get_logger().fatal(f"{type(error).__name__}: {error}")
        else:
            print(f"node failed to start: {type(error).__name__}: {error}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def steady_clock() -> Clock:
    """The wall clock heartbeats, watchdogs and retries run on: it ticks while sim time stands still."""
    return Clock(clock_type=ClockType.STEADY_TIME)


@dataclass
class Heartbeat:
    """A running heartbeat; ``stop`` removes its timer and publisher (a lifecycle node's cleanup)."""

    node: Node
    publisher: Publisher
    timer: Timer

    def stop(self) -> None:
        self.node.destroy_timer(self.timer)
        self.node.destroy_publisher(self.publisher)


def declare_heartbeat_hz(node: Node, when: str = "") -> float:
    """Declare the ``heartbeat_hz`` parameter every node has (one description, one range) and return its value."""
    return node.declare_parameter("heartbeat_hz", 5.0, describe(
        f"rate of /inril/heartbeat (Hz, steady clock){when}; 0 = none", float_range=(0.0, 100.0))).value


def declare_robot_state_qos(node: Node) -> QoSProfile:
    """Declare ``robot_state_qos`` (set per graph profile: reliable in sim, best_effort on the robot) and return the
    reader QoS for the robot state topics (interfaces.robot_state_qos says why the two differ)."""
    name = node.declare_parameter("robot_state_qos", "reliable", describe(
        "reader QoS of joint states, eef pose and gripper: reliable (sim_bridge) | best_effort (franka_ros2's "
        "current_pose is best effort; set by the graph profile)")).value
    return interfaces.robot_state_qos(name)


def start_heartbeat(node: Node, rate_hz: float, name: str | None = None) -> Heartbeat | None:
    """Publish ``std_msgs/Header`` (frame_id ``name``, default the node's name; stamp = node clock) on
    /inril/heartbeat at ``rate_hz`` on the steady clock, so a node keeps beating while sim time stands still.

    ``rate_hz`` 0 disables it (returns None). The timer has a callback group of its own: a node spun by a
    multi-threaded executor (the learner) keeps beating while a slow callback (configure, an update) runs. A
    single-threaded node cannot, so it starts its heartbeat after its slow start-up: until the first beat the safety
    monitor's startup grace applies, after it the heartbeat timeout.
    """
    if rate_hz <= 0:
        return None
    publisher = node.create_publisher(Header, interfaces.HEARTBEAT, interfaces.LATEST)
    frame_id = node.get_name() if name is None else name

    def beat() -> None:
        publisher.publish(Header(stamp=node.get_clock().now().to_msg(), frame_id=frame_id))

    timer = node.create_timer(1.0 / rate_hz, beat, callback_group=MutuallyExclusiveCallbackGroup(),
                              clock=steady_clock())
    return Heartbeat(node, publisher, timer)


def describe(description: str, *, int_range: tuple[int, int] | None = None,
             float_range: tuple[float, float] | None = None) -> ParameterDescriptor:
    """A parameter's descriptor: its description and, where it matters, an inclusive range that rclpy enforces
    (a value outside it is refused when the node starts, naming the parameter)."""
    descriptor = ParameterDescriptor(description=description)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                              to_value=float(float_range[1]), step=0.0)]
    return descriptor


class ThrottledLog:
    """One kind of repeated log line, written at most every ``period_s`` wall seconds with the number of lines left
    out since: a condition that holds for every step (a clipped command, a refused observation) would otherwise
    write one line per step (14k lines in 8 minutes from the executor). ``log`` is a logger method, e.g.
    ``node.get_logger().warning``."""

    def __init__(self, log: Callable[[str], Any], period_s: float = 5.0) -> None:
        self._log, self._period_s = log, period_s
        self._left_out, self._logged_at = 0, None

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < self._period_s:
            self._left_out += 1
            return
        suffix = f" ({self._left_out} more such lines left out since the last)" if self._left_out else ""
        self._log(message + suffix)
        self._logged_at, self._left_out = now, 0


class CsvLog:
    """Rows appended to ``<run_dir>/<name>.csv`` under a header line; no file at all when ``run_dir`` is empty.

    The file is opened at the first row (a node that never logs leaves no empty file) and every row is flushed, so
    a killed node loses none. An existing file is appended to; the header is written when it is new or empty. A
    row is a mapping: keys not in ``fields`` are ignored (a JSON record can be written as it is), missing ones are
    left empty.
    """

    def __init__(self, run_dir: str, name: str, fields: Sequence[str]) -> None:
        self.path = Path(run_dir) / f"{name}.csv" if run_dir else None
        self._fields = list(fields)
        self._file = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = self.path.open("a", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self._fields, extrasaction="ignore")
            if new:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        """Close the file; a later row opens it again (appending)."""
        if self._file is not None:
            self._file.close()
            self._file = None
