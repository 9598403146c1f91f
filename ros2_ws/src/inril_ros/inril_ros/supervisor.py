"""``inril sim`` without a ROS distro: the graph's nodes as plain processes, lifecycle activation, one progress line,
and a stop that never leaves a process behind.

Why not ``ros2 launch``: launch and launch_ros are not installable from the package registries (ros2-notes §2.2),
so on a machine with only the rclpy wheels this module does what launch would: it starts each node of
``config/graph.yaml`` with the same executable, params file and remaps (``--ros-args``), configures and activates
the lifecycle nodes through their ``change_state`` services (what ``LifecycleNode(autostart=True)`` does), and stops
the whole graph when a critical node dies (launch's ``on_exit=Shutdown()``).

Isolation: every process gets one ROS domain (the user's ``ROS_DOMAIN_ID`` or a free one claimed here), localhost-only
discovery and the graph's Fast DDS profile. Stopping: rclpy's spin ignores SIGTERM (ros2-notes §9), so each process
group gets SIGINT, then SIGTERM, then SIGKILL after grace periods; hard kills leave Fast DDS shared-memory segments
behind, which ``fastdds shm clean`` removes. Children also get SIGTERM from the kernel if this process dies
(PR_SET_PDEATHSIG), so even a killed supervisor leaves no node running.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
import yaml
from lifecycle_msgs.msg import State as LifecycleState
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.task import Future
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from rich.console import Console
from rich.live import Live
from rich.text import Text
from std_msgs.msg import Bool, Header, String

from inril_ros import interfaces
from inril_ros.convert import MessageError, json_payload
from inril_ros.graph import Graph, GraphError, NodeSpec

DOMAIN_LOCK_DIR = Path(tempfile.gettempdir()) / "inril-ros-domains"
DOMAIN_RANGE = range(1, 102)  # 0-101 are safe on Linux (ros2-notes §6); 0 is left to a developer's own nodes
SUCCESS_WINDOW = 20           # episodes in the rolling success rate of the progress line
LOG_TAIL_LINES = 15
PR_SET_PDEATHSIG = 1
# lifecycle state -> the transition that moves it towards active
NEXT_TRANSITION = {
    LifecycleState.PRIMARY_STATE_UNCONFIGURED: ("configure", Transition.TRANSITION_CONFIGURE),
    LifecycleState.PRIMARY_STATE_INACTIVE: ("activate", Transition.TRANSITION_ACTIVATE),
}
# a node in one of these is on its way (its get_state answered during a transition): ask again
TRANSITION_STATES = frozenset({LifecycleState.TRANSITION_STATE_CONFIGURING, LifecycleState.TRANSITION_STATE_ACTIVATING})
LIFECYCLE_REPLY_S = 30.0  # a lifecycle service reply not in by then is taken as lost (_activate_lifecycle_nodes)


def clean_fastdds_shared_memory() -> None:
    """Hard kills leave Fast DDS segments in /dev/shm; fastdds's own tool removes the unused ones.

    Run with this interpreter: the venv's `fastdds` wrapper calls the system python3, which may lack psutil, and
    then the tool fails without a word (it did in the tests and the latency bench, which called the wrapper)."""
    tool = Path(sys.prefix) / "tools" / "fastdds" / "fastdds.py"
    if tool.is_file():
        subprocess.run([sys.executable, str(tool), "shm", "clean"], capture_output=True, timeout=60, check=False)


class SupervisorError(RuntimeError):
    """The graph cannot be started as asked (a missing executable, no free ROS domain)."""


# ------------------------------------------------------------------------------------------------ domain id

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_domain_id(pid: int | None = None) -> int:
    """The first ROS domain id whose lock file is free or held by a dead process; the lock then names ``pid``.

    The locks live in one folder shared with the ROS tests (tests/ros/ros_domain.py), so a test run and an
    ``inril sim`` on the same machine never see each other's nodes.
    """
    pid = os.getpid() if pid is None else pid
    DOMAIN_LOCK_DIR.mkdir(exist_ok=True)
    start = pid % len(DOMAIN_RANGE)
    for offset in range(len(DOMAIN_RANGE)):
        domain = DOMAIN_RANGE[(start + offset) % len(DOMAIN_RANGE)]
        lock = DOMAIN_LOCK_DIR / str(domain)
        for _attempt in range(2):  # a second attempt after removing a dead owner's lock
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(lock.read_text() or 0)
                except (OSError, ValueError):
                    break
                if owner == pid:
                    return domain
                if owner and not _alive(owner):
                    lock.unlink(missing_ok=True)
                    continue
                break
            with os.fdopen(fd, "w") as f:
                f.write(str(pid))
            return domain
    raise SupervisorError(f"every ROS domain id in {DOMAIN_RANGE.start}..{DOMAIN_RANGE.stop - 1} is held by a live "
                          f"process (locks in {DOMAIN_LOCK_DIR}); set ROS_DOMAIN_ID yourself")


# ------------------------------------------------------------------------------------------------ commands

def ros_value(value: Any) -> str:
    """A Python value as the YAML text of ``-p name:=value``; strings are quoted so '0' or 'true' stay strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ros_value(v) for v in value) + "]"
    return json.dumps(str(value))


def override_text(text: str, file_value: Any) -> str:
    """A command-line override typed as its params file types the parameter: ROS refuses ``-p rate:=3`` for a
    parameter declared a double, or ``-p name:=7`` for a string (the node exits), so an integer given where the
    file has a float becomes ``3.0``, and any value where it has a string is quoted."""
    if not isinstance(file_value, (float, str)):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(file_value, str):
        return text if isinstance(value, str) else json.dumps(text)
    return repr(float(value)) if isinstance(value, int) and not isinstance(value, bool) else text


def node_command(spec: NodeSpec, profile: str, executable: Path, parameters: dict[str, Any],
                 overrides: dict[str, str]) -> list[str]:
    """The command line ``ros2 launch`` would build: name, namespace, params file, ``-p`` values, remaps.

    ``parameters`` (typed values) go to every node; ``overrides`` (YAML text, from the command line) to this one,
    after them, so they win, each typed as the params file has it (``override_text``).
    """
    file_values = spec.parameter_values() if overrides else {}
    command = [str(executable), "--ros-args", "-r", f"__ns:={spec.namespace}", "-r", f"__node:={spec.name}",
               "--params-file", str(spec.params_file)]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={ros_value(value)}"]
    for name, text in overrides.items():
        command += ["-p", f"{name}:={override_text(text, file_values.get(name))}"]
    for source, target in spec.remappings(profile):
        command += ["-r", f"{source}:={target}"]
    return command


def split_overrides(items: Iterable[str], node_names: Iterable[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``node.param=value`` items (first part a node name) -> {node: {param: value}}; the rest stay config overrides."""
    names = set(node_names)
    nodes: dict[str, dict[str, str]] = {}
    rest = []
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, param = key.partition(".")
        if sep and dot and node in names:
            nodes.setdefault(node, {})[param] = value
        else:
            rest.append(item)
    return nodes, rest


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a node's log, for an error message that shows why it failed."""
    try:
        with path.open(errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return f"(no log at {path})"


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child between fork and exec only calls it


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when the supervisor dies, however it dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# ------------------------------------------------------------------------------------------------ observed state

@dataclass
class Observed:
    """What the supervisor has seen on the graph's topics: the progress line and the run summary come from here."""

    started: float = field(default_factory=time.monotonic)
    outcomes: dict[int, str] = field(default_factory=dict)  # episode id -> outcome, ended episodes only
    lengths: dict[int, int] = field(default_factory=dict)
    policy_version: int | None = None
    checkpoints: set[int] = field(default_factory=set)      # learner versions announced
    estop: bool | None = None
    heartbeats: set[str] = field(default_factory=set)
    done: bool = False                                       # the episode manager reached max_episodes

    def on_episode(self, payload: dict) -> None:
        state = payload.get("state")
        if state == "ended" and isinstance(payload.get("episode"), int):
            self.outcomes[payload["episode"]] = str(payload.get("outcome"))
            if isinstance(payload.get("length"), int):
                self.lengths[payload["episode"]] = payload["length"]
        elif state == "done":
            self.done = True

    def success_rate(self) -> float | None:
        recent = [self.outcomes[k] for k in sorted(self.outcomes)[-SUCCESS_WINDOW:]]
        return sum(o == "success" for o in recent) / len(recent) if recent else None

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        rate = self.success_rate()
        window = min(len(self.outcomes), SUCCESS_WINDOW)
        return "  ".join([  # under 80 characters: one terminal line
            f"{elapsed // 60:02d}:{elapsed % 60:02d}",
            f"episodes {len(self.outcomes)}",
            f"success {'-' if rate is None else f'{rate:.2f}'} (last {window})",
            f"policy v{'-' if self.policy_version is None else self.policy_version}",
            f"updates {len(self.checkpoints)}",
            "E-STOP" if self.estop else ("estop off" if self.estop is False else "estop ?"),
        ])


@dataclass(frozen=True)
class Stop:
    """Why a run stops: ``ok`` for a normal end (budget, done), ``exit_code`` is what ``inril sim`` returns."""

    ok: bool
    reason: str                 # one line for a normal end; a failure adds the failed node's log tail
    exit_code: int


@dataclass(frozen=True)
class RunResult:
    stop: Stop
    elapsed_s: float
    observed: Observed
    killed_hard: tuple[str, ...]  # nodes that needed SIGKILL
    logs: Path                    # <run_dir>/logs: one <node>.log per node

    @property
    def ok(self) -> bool:
        return self.stop.ok

    def summary(self) -> str:
        """One line: why the run stopped and what it did."""
        return f"{self.stop.reason.splitlines()[0]}; {self.observed.line()}"


def check_verdict(result: RunResult, nodes: list[str]) -> tuple[bool, str]:
    """``inril sim --check``: passed when one episode ran to its end through the whole graph, every node sent
    heartbeats, and the e-stop never tripped; otherwise the first reason it did not."""
    seen = result.observed
    if not result.ok:
        return False, result.stop.reason
    if seen.estop or "estop" in seen.outcomes.values():
        return False, f"the e-stop tripped during the check; see {result.logs / 'safety_monitor.log'}"
    silent = sorted(set(nodes) - seen.heartbeats)
    if silent:
        return False, f"no heartbeat on {interfaces.HEARTBEAT} from {silent}; see their logs in {result.logs}"
    if not seen.outcomes:
        return False, f"the episode manager said done without an ended episode; see {result.logs}"
    episode = max(seen.outcomes)
    return True, (f"check passed in {result.elapsed_s:.0f} s: {len(nodes)} nodes up and heartbeating, episode "
                  f"{episode} ended ({seen.outcomes[episode]}, {seen.lengths.get(episode, '?')} steps) with policy "
                  f"v{seen.policy_version}")


# ------------------------------------------------------------------------------------------------ supervisor

@dataclass
class _Child:
    spec: NodeSpec
    proc: subprocess.Popen
    log: Path
    reported: bool = False  # a non-critical exit is reported once


class Supervisor:
    """Runs one profile of a graph as plain processes; ``run()`` starts, watches and always stops them."""

    def __init__(self, graph: Graph, profile: str, run_dir: str | Path, parameters: dict[str, Any] | None = None,
                 node_overrides: dict[str, dict[str, str]] | None = None, bin_dir: str | Path | None = None,
                 domain_id: int | None = None, console: Console | None = None,
                 activate_timeout_s: float = 180.0, stop_grace_s: float = 10.0) -> None:
        self.graph = graph
        self.profile = graph.profile(profile)
        self.specs = graph.nodes_for(profile)
        self.run_dir = Path(run_dir).resolve()
        self.parameters = {**self.profile.node_parameters(), "run_dir": str(self.run_dir),
                           **(parameters or {})}
        unknown = set(node_overrides or {}) - {s.name for s in self.specs}
        if unknown:
            raise GraphError(f"parameter overrides for {sorted(unknown)}, which do not run in profile '{profile}': "
                             f"nodes are {[s.name for s in self.specs]}")
        self.node_overrides = node_overrides or {}
        self.bin_dir = Path(bin_dir) if bin_dir is not None else Path(sys.executable).parent
        env_domain = os.environ.get("ROS_DOMAIN_ID", "").strip()
        self.domain_id = domain_id if domain_id is not None else (int(env_domain) if env_domain else None)
        self.console = console or Console(stderr=True)
        self.activate_timeout_s = activate_timeout_s
        self.stop_grace_s = stop_grace_s
        self.observed = Observed()
        self._children: list[_Child] = []
        self._stop_signal: str | None = None

    # -- public

    def run(self, budget_s: float, until_done: bool = False) -> RunResult:
        """Start the graph, activate it, watch it until the budget, done, a failure or a signal; stop everything.

        ``until_done``: the run succeeds only when the episode manager says done before the budget (``--check``).
        """
        executables = self._executables()
        self.observed = Observed()
        if self.domain_id is None:
            self.domain_id = claim_domain_id()
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        ros_env = self._ros_env(logs)
        saved_env = {key: os.environ.get(key) for key in ros_env}
        os.environ.update(ros_env)  # the children inherit it; the monitor below is a participant of the same graph
        context = Context()
        try:
            for spec in self.specs:
                self._start(spec, executables[spec.name], logs)
            rclpy.init(context=context, domain_id=self.domain_id, signal_handler_options=SignalHandlerOptions.NO)
            stop = self._supervise(context, budget_s, until_done)
        finally:
            killed = self._stop_all()
            rclpy.try_shutdown(context=context)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if killed:
                self._clean_shared_memory()
        return RunResult(stop=stop, elapsed_s=time.monotonic() - self.observed.started, observed=self.observed,
                         killed_hard=tuple(killed), logs=logs)

    def pids(self) -> list[int]:
        return [child.proc.pid for child in self._children]

    # -- start

    def _executables(self) -> dict[str, Path]:
        found = {}
        for spec in self.specs:
            path = self.bin_dir / spec.executable
            if not os.access(path, os.X_OK):
                raise SupervisorError(f"node {spec.name}: executable {path} not found; install the node package "
                                      "(pip install -e ros2_ws/src/inril_ros) into this environment")
            found[spec.name] = path
        return found

    def _ros_env(self, logs: Path) -> dict[str, str]:
        return {
            "ROS_DOMAIN_ID": str(self.domain_id),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "FASTDDS_DEFAULT_PROFILES_FILE": str(self.profile.dds_profile),
            "ROS_LOG_DIR": str(logs / "ros"),     # rcl's own log files next to the nodes' output
            "RCUTILS_COLORIZED_OUTPUT": "0",       # plain text in the log files
            "PYTHONUNBUFFERED": "1",               # a crash's last lines reach the log before the process ends
        }

    def _start(self, spec: NodeSpec, executable: Path, logs: Path) -> None:
        command = node_command(spec, self.profile.name, executable, self.parameters,
                               self.node_overrides.get(spec.name, {}))
        log = logs / f"{spec.name}.log"
        with log.open("w") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            # own session: a terminal's Ctrl-C reaches only the supervisor, which stops the nodes in order
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ), start_new_session=True, preexec_fn=die_with_parent)
        self._children.append(_Child(spec, proc, log))

    # -- watch

    def _on_signal(self, signum: int, frame) -> None:  # noqa: ARG002 - signal handler signature
        self._stop_signal = signal.Signals(signum).name

    def _supervise(self, context: Context, budget_s: float, until_done: bool) -> Stop:
        node = rclpy.create_node("supervisor", namespace=interfaces.NAMESPACE, context=context,
                                 enable_rosout=False, start_parameter_services=False)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            self._subscribe(node)
            failure = self._activate_lifecycle_nodes(node, executor)
            if failure is not None:
                return failure
            return self._watch(executor, budget_s, until_done)
        finally:
            executor.shutdown()
            node.destroy_node()

    def _subscribe(self, node) -> None:
        # Latched topics: a deeper reader queue than the publisher's depth 1, so an "ended" followed at once by the
        # next "running" is not overwritten between two spins.
        latched = QoSProfile(depth=100, reliability=interfaces.LATCHED.reliability,
                             durability=interfaces.LATCHED.durability, history=interfaces.LATCHED.history)
        seen = self.observed

        def on_json(handler: Callable[[dict], None]) -> Callable[[String], None]:
            def callback(msg: String) -> None:
                try:
                    handler(json_payload(msg))
                except MessageError as error:
                    node.get_logger().warning(f"ignored a malformed message: {error}")
            return callback

        def on_version(payload: dict) -> None:
            if isinstance(payload.get("version"), int):
                seen.policy_version = payload["version"]

        def on_checkpoint(payload: dict) -> None:
            if isinstance(payload.get("version"), int):
                seen.checkpoints.add(payload["version"])

        def on_estop(msg: Bool) -> None:
            seen.estop = bool(msg.data)

        def on_heartbeat(msg: Header) -> None:
            seen.heartbeats.add(msg.frame_id)

        node.create_subscription(String, interfaces.EPISODE, on_json(seen.on_episode), latched)
        node.create_subscription(String, interfaces.POLICY_VERSION, on_json(on_version), latched)
        node.create_subscription(String, interfaces.CHECKPOINT, on_json(on_checkpoint), latched)
        node.create_subscription(Bool, interfaces.ESTOP, on_estop, latched)
        # best effort reads reliable and best-effort heartbeats alike
        node.create_subscription(Header, interfaces.HEARTBEAT, on_heartbeat, interfaces.SENSOR)

    def _activate_lifecycle_nodes(self, node, executor: SingleThreadedExecutor) -> Stop | None:
        """Bring every lifecycle node to active, all in parallel, as a lifecycle manager does.

        Each node's state is read first (``get_state``) and only the transitions it still needs are requested, so a
        node that configured itself (an ``autostart`` parameter) is left as it is. A reply that has not come within
        ``LIFECYCLE_REPLY_S`` is given up and the state read again: on a loaded machine a service reply can be lost
        (rmw: "failed to send response (timeout)" while the client's reader was not matched yet; seen once with
        seven nodes starting on two busy cores), and waiting for it would stall the run until the deadline. A node
        busy configuring answers the new ``get_state`` when it is done. A refused transition, a node stuck outside
        unconfigured/inactive/active, or the deadline ends the run with that node's log tail.
        """
        remaining = {c.spec.name: c for c in self._children if c.spec.lifecycle}
        get = {name: node.create_client(GetState, f"{c.spec.fqn}/get_state") for name, c in remaining.items()}
        change = {name: node.create_client(ChangeState, f"{c.spec.fqn}/change_state") for name, c in remaining.items()}
        in_flight: dict[str, tuple[str, Future, float]] = {}  # node -> (what was asked, its reply, when asked)
        deadline = time.monotonic() + self.activate_timeout_s
        try:
            while remaining:
                stopped = self._check_processes_and_signals()
                if stopped is not None:
                    return stopped
                if time.monotonic() > deadline:
                    child = next(iter(remaining.values()))
                    return self._failure(child, f"was not active {self.activate_timeout_s:.0f} s after start "
                                                f"(still waiting for {sorted(remaining)})")
                for name, child in list(remaining.items()):
                    if name not in in_flight:
                        if get[name].service_is_ready() and change[name].service_is_ready():
                            in_flight[name] = ("get_state", get[name].call_async(GetState.Request()),
                                               time.monotonic())
                        continue
                    asked, future, since = in_flight[name]
                    if not future.done():
                        if time.monotonic() - since > LIFECYCLE_REPLY_S:
                            self.console.print(f"{name}: no reply to {asked} in {LIFECYCLE_REPLY_S:.0f} s; asking "
                                               "its state again", soft_wrap=True)
                            del in_flight[name]
                        continue
                    del in_flight[name]
                    if asked != "get_state":
                        if not future.result().success:
                            return self._failure(child, f"failed to {asked}")
                        continue  # read the state again next round
                    state = future.result().current_state
                    if state.id == LifecycleState.PRIMARY_STATE_ACTIVE:
                        del remaining[name]
                    elif state.id in TRANSITION_STATES:
                        continue  # asked again next round
                    elif state.id in NEXT_TRANSITION:
                        label, transition = NEXT_TRANSITION[state.id]
                        request = ChangeState.Request(transition=Transition(id=transition))
                        in_flight[name] = (label, change[name].call_async(request), time.monotonic())
                    else:
                        return self._failure(child, f"is in lifecycle state '{state.label}', which cannot become "
                                                    "active")
                executor.spin_once(timeout_sec=0.05)
        finally:
            for client in (*get.values(), *change.values()):
                node.destroy_client(client)
        return None

    def _watch(self, executor: SingleThreadedExecutor, budget_s: float, until_done: bool) -> Stop:
        deadline = self.observed.started + budget_s
        stop = None
        with Live(self._line(), console=self.console, refresh_per_second=2, transient=False) as live:
            while stop is None:
                executor.spin_once(timeout_sec=0.1)
                live.update(self._line())
                stop = self._why_stop(deadline, budget_s, until_done)
        if not self.console.is_terminal:
            self.console.print()  # Live leaves its last frame without a newline where it cannot redraw
        return stop

    def _why_stop(self, deadline: float, budget_s: float, until_done: bool) -> Stop | None:
        stopped = self._check_processes_and_signals()
        if stopped is not None:
            return stopped
        if self.observed.done:
            return Stop(True, f"the episode manager is done after {len(self.observed.outcomes)} episodes", 0)
        if time.monotonic() < deadline:
            return None
        if until_done:
            return Stop(False, f"no 'done' from the episode manager within {budget_s:.0f} s "
                               f"({len(self.observed.outcomes)} episodes ended); logs in {self.run_dir / 'logs'}", 1)
        return Stop(True, f"time budget of {budget_s / 60:.1f} min reached", 0)

    def _line(self) -> Text:
        return Text(self.observed.line(), no_wrap=True, overflow="ellipsis")

    def _check_processes_and_signals(self) -> Stop | None:
        if self._stop_signal is not None:
            return Stop(False, f"interrupted by {self._stop_signal}", 130)
        for child in self._children:
            code = child.proc.poll()
            if code is None:
                continue
            if child.spec.critical:
                return self._failure(child, f"exited with code {code}")
            if not child.reported:
                child.reported = True
                self.console.print(f"warning: node {child.spec.name} (not critical) exited with code {code}; "
                                   f"the graph runs on without it. Log: {child.log}")
        return None

    def _failure(self, child: _Child, what: str) -> Stop:
        return Stop(False, f"node {child.spec.name} {what}; last lines of {child.log}:\n{log_tail(child.log)}", 1)

    # -- stop

    def _stop_all(self) -> list[str]:
        """SIGINT, then SIGTERM, then SIGKILL to every node's process group; returns the nodes killed hard."""
        killed: list[str] = []
        for sig, grace in ((signal.SIGINT, self.stop_grace_s), (signal.SIGTERM, self.stop_grace_s / 2),
                           (signal.SIGKILL, self.stop_grace_s / 2)):
            alive = [c for c in self._children if c.proc.poll() is None]
            if not alive:
                break
            if sig == signal.SIGKILL:
                killed = [c.spec.name for c in alive]
            for child in alive:
                try:  # the group: a helper process a node started goes with it (the leader is not reaped yet)
                    os.killpg(child.proc.pid, sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + grace
            while time.monotonic() < end and any(c.proc.poll() is None for c in alive):
                time.sleep(0.05)
        for child in self._children:
            child.proc.wait()
        return killed

    def _clean_shared_memory(self) -> None:
        clean_fastdds_shared_memory()
