"""The graph supervisor behind `inril sim`: real rclpy node processes from a small graph file, started, activated,
watched and stopped, with nothing left running.

The nodes here are tiny real rclpy programs written into the test's folder (a plain node, a LifecycleNode, one that
crashes, one that ignores signals), so each test pins one behaviour of the supervisor without the cost of the full
graph; `tests/ros/test_graph_check.py` runs the real graph.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml
from ros_helpers import stop_process

from inril_ros.graph import load_graph
from inril_ros.supervisor import claim_domain_id, node_command, split_overrides

REPO = Path(__file__).resolve().parents[2]

# A plain node: heartbeat, and when `episodes` > 0 it ends that many episodes on /inril/episode, then says done.
BEACON = """
import json
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from std_msgs.msg import Header, String
from inril_ros import interfaces
from inril_ros.convert import json_msg
from inril_ros.runtime import run_node


class Beacon(Node):
    def __init__(self):
        super().__init__("beacon")
        self.episodes = self.declare_parameter("episodes", 0, ParameterDescriptor(description="episodes")).value
        self.crash_after_s = self.declare_parameter("crash_after_s", 0.0, ParameterDescriptor(description="s")).value
        self.heartbeat = self.create_publisher(Header, interfaces.HEARTBEAT, 10)
        self.episode = self.create_publisher(String, interfaces.EPISODE, interfaces.LATCHED)
        self.ticks = 0
        self.create_timer(0.2, self.tick)

    def tick(self):
        self.ticks += 1
        self.heartbeat.publish(Header(frame_id=self.get_name()))
        if self.crash_after_s and self.ticks * 0.2 >= self.crash_after_s:
            raise RuntimeError("beacon crashed on purpose")
        k = self.ticks - 25  # first episode after 5 s: the supervisor has subscribed by then, even under load
        if 0 <= k < self.episodes:
            self.episode.publish(json_msg({"episode": k, "state": "ended", "outcome": "success" if k % 2 else
                                           "timeout", "length": 30}))
        elif self.episodes and k == self.episodes + 2:
            self.episode.publish(json_msg({"episode": k - 1, "state": "done"}))


raise SystemExit(run_node(Beacon))
"""

# A LifecycleNode: announces policy version 7 (latched) only once active; configure fails when asked to; with
# `autostart` it activates itself (as policy_server can), and the supervisor must leave it as it is.
LIFECYCLE_BEACON = """
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_msgs.msg import String
from inril_ros import interfaces
from inril_ros.convert import json_msg
from inril_ros.runtime import run_node


class LifecycleBeacon(LifecycleNode):
    def __init__(self):
        super().__init__("lifecycle_beacon")
        self.declare_parameter("fail_configure", False, ParameterDescriptor(description="fail on configure"))
        if self.declare_parameter("autostart", False, ParameterDescriptor(description="self-activate")).value:
            self.trigger_configure()
            self.trigger_activate()

    def on_configure(self, state):
        if self.get_parameter("fail_configure").value:
            self.get_logger().error("configure refused: no policy in runs/nowhere")
            return TransitionCallbackReturn.FAILURE
        self.version = self.create_lifecycle_publisher(String, interfaces.POLICY_VERSION, interfaces.LATCHED)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        result = super().on_activate(state)
        self.version.publish(json_msg({"version": 7}))
        self.get_logger().info("activated")
        return result


raise SystemExit(run_node(LifecycleBeacon))
"""

# Ignores SIGINT and SIGTERM (a hung node): only SIGKILL ends it.
STUBBORN = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGINT and SIGTERM", flush=True)
while True:
    time.sleep(0.1)
"""

# Runs the supervisor in its own process (signals go to it, as to `inril sim`) and prints the result as JSON.
DRIVER = """
import json, sys
from pathlib import Path
from inril_ros.graph import load_graph
from inril_ros.supervisor import Supervisor

graph_path, run_dir, budget_s, until_done, grace_s, overrides = sys.argv[1:7]
graph = load_graph(graph_path, executables={"beacon", "lifecycle_beacon", "stubborn"})
supervisor = Supervisor(graph, "sim", run_dir, parameters={"task": "lift"}, node_overrides=json.loads(overrides),
                        bin_dir=Path(graph_path).parent.parent / "bin", stop_grace_s=float(grace_s),
                        activate_timeout_s=60.0)
result = supervisor.run(float(budget_s), until_done=until_done == "1")
print(json.dumps({"ok": result.ok, "reason": result.stop.reason, "exit_code": result.stop.exit_code,
                  "killed_hard": list(result.killed_hard), "pids": supervisor.pids(),
                  "policy_version": result.observed.policy_version, "episodes": len(result.observed.outcomes),
                  "heartbeats": sorted(result.observed.heartbeats)}))
raise SystemExit(result.stop.exit_code)
"""


def _node_entry(name: str, executable: str, lifecycle: bool = False, critical: bool = True) -> dict:
    return {"name": name, "package": "inril_ros", "executable": executable, "namespace": "/inril",
            "params": f"config/nodes/{name}.yaml", "lifecycle": lifecycle, "critical": critical,
            "profiles": ["sim"]}


def write_graph(root: Path, nodes: list[dict], params: dict[str, dict] | None = None) -> Path:
    """A graph folder like the repository's: config/graph.yaml, config/nodes/*.yaml, and bin/ with the scripts."""
    (root / "config" / "nodes").mkdir(parents=True)
    (root / "bin").mkdir()
    for name, source in (("beacon", BEACON), ("lifecycle_beacon", LIFECYCLE_BEACON), ("stubborn", STUBBORN)):
        script = root / "bin" / name
        script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(source))
        script.chmod(0o755)
    for node in nodes:
        values = {"heartbeat_hz": 5.0, **(params or {}).get(node["name"], {})}
        (root / "config" / "nodes" / f"{node['name']}.yaml").write_text(
            yaml.safe_dump({f"/inril/{node['name']}": {"ros__parameters": values}}))
    graph = {"profiles": {"sim": {"use_sim_time": False, "dds_profile": str(REPO / "config/dds/fastdds_inril.xml"),
                                  "robot_state_qos": "reliable"}},
             "nodes": nodes}
    path = root / "config" / "graph.yaml"
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    return path


def start_driver(tmp_path: Path, graph: Path, env: dict, budget_s: float, until_done: bool = False,
                 grace_s: float = 5.0, overrides: dict | None = None) -> subprocess.Popen:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(driver), str(graph), str(tmp_path / "run"), str(budget_s),
                             "1" if until_done else "0", str(grace_s), json.dumps(overrides or {})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen, timeout_s: float = 90.0) -> tuple[dict, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        stop_process(proc)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the driver printed no result (exit {proc.returncode}); stderr:\n{err}"
    return json.loads(lines[-1]), err


def assert_all_gone(pids: list[int]) -> None:
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"node processes left running: {alive}"


def test_graph_runs_until_done_with_lifecycle_node_activated(tmp_path: Path, ros_env: dict) -> None:
    graph = write_graph(tmp_path, [_node_entry("beacon", "beacon"),
                                   _node_entry("lifecycle_beacon", "lifecycle_beacon", lifecycle=True)],
                        params={"beacon": {"episodes": 3}})
    result, err = finish(start_driver(tmp_path, graph, ros_env, budget_s=60, until_done=True))
    assert result["ok"], f"{result['reason']}\n{err}"
    assert "done after 3 episodes" in result["reason"]
    assert result["policy_version"] == 7  # published in on_activate only: configure + activate went through
    assert result["heartbeats"] == ["beacon"]
    assert (tmp_path / "run" / "logs" / "lifecycle_beacon.log").read_text().count("]: activated") == 1
    assert_all_gone(result["pids"])


def test_self_activated_lifecycle_node_is_left_active(tmp_path: Path, ros_env: dict) -> None:
    graph = write_graph(tmp_path, [_node_entry("lifecycle_beacon", "lifecycle_beacon", lifecycle=True)],
                        params={"lifecycle_beacon": {"autostart": True}})
    result, err = finish(start_driver(tmp_path, graph, ros_env, budget_s=4))
    assert result["ok"] and "time budget" in result["reason"], f"{result['reason']}\n{err}"
    assert result["policy_version"] == 7
    assert (tmp_path / "run" / "logs" / "lifecycle_beacon.log").read_text().count("]: activated") == 1


def start_active_graph(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, list[int]]:
    """A supervisor running a plain and a lifecycle node, returned once the lifecycle node is active."""
    graph = write_graph(tmp_path, [_node_entry("beacon", "beacon"),
                                   _node_entry("lifecycle_beacon", "lifecycle_beacon", lifecycle=True)])
    driver = start_driver(tmp_path, graph, env, budget_s=300)
    log = tmp_path / "run" / "logs" / "lifecycle_beacon.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "]: activated" in log.read_text()):
        if driver.poll() is not None:
            stop_process(driver)
            pytest.fail(f"the supervisor ended early: {driver.communicate()}")
        time.sleep(0.2)
    children = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
    assert len(children) == 2
    return driver, children


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_to_the_supervisor_stops_every_node(tmp_path: Path, ros_env: dict,
                                                              stop_signal: signal.Signals) -> None:
    driver, children = start_active_graph(tmp_path, ros_env)
    try:
        driver.send_signal(stop_signal)
        result, err = finish(driver, timeout_s=30)
    finally:
        stop_process(driver)
    assert result["exit_code"] == 130 and result["reason"] == f"interrupted by {stop_signal.name}", err
    assert result["killed_hard"] == []  # both nodes stopped on SIGINT
    assert_all_gone(children)


def test_nodes_stop_even_when_the_supervisor_is_killed(tmp_path: Path, ros_env: dict) -> None:
    driver, children = start_active_graph(tmp_path, ros_env)
    driver.kill()  # no chance to clean up: the kernel's parent-death signal must end the nodes
    stop_process(driver)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(pid) for pid in children):
        time.sleep(0.2)
    assert_all_gone(children)


def test_crashing_critical_node_stops_the_graph_with_its_log_tail(tmp_path: Path, ros_env: dict) -> None:
    graph = write_graph(tmp_path, [_node_entry("beacon", "beacon"),
                                   _node_entry("lifecycle_beacon", "lifecycle_beacon", lifecycle=True)],
                        params={"beacon": {"crash_after_s": 1.0}})
    result, err = finish(start_driver(tmp_path, graph, ros_env, budget_s=120))
    assert not result["ok"] and result["exit_code"] == 1, err
    assert result["reason"].startswith("node beacon exited with code 1")
    assert "beacon crashed on purpose" in result["reason"]  # the log tail says why
    assert_all_gone(result["pids"])


def test_failed_configure_stops_the_graph_with_the_nodes_error(tmp_path: Path, ros_env: dict) -> None:
    graph = write_graph(tmp_path, [_node_entry("beacon", "beacon", critical=False),
                                   _node_entry("lifecycle_beacon", "lifecycle_beacon", lifecycle=True)])
    # a command-line override (node.param=value) reaches only its node
    result, err = finish(start_driver(tmp_path, graph, ros_env, budget_s=120,
                                      overrides={"lifecycle_beacon": {"fail_configure": "true"}}))
    assert not result["ok"], err
    assert "node lifecycle_beacon failed to configure" in result["reason"]
    assert "configure refused: no policy in runs/nowhere" in result["reason"]
    assert_all_gone(result["pids"])


def test_node_ignoring_sigint_and_sigterm_is_killed_and_nothing_is_left(tmp_path: Path, ros_env: dict) -> None:
    graph = write_graph(tmp_path, [_node_entry("beacon", "beacon"), _node_entry("stubborn", "stubborn")])
    result, err = finish(start_driver(tmp_path, graph, ros_env, budget_s=3, grace_s=1.0))
    assert result["ok"] and "time budget" in result["reason"], err
    assert result["killed_hard"] == ["stubborn"]
    assert_all_gone(result["pids"])


def test_node_command_carries_name_namespace_params_and_remaps(tmp_path: Path) -> None:
    entry = {**_node_entry("beacon", "beacon"), "remaps": {"sim": {"/inril/robot/eef_pose": "/arm/pose"}}}
    graph = load_graph(write_graph(tmp_path, [entry]), executables={"beacon"})
    spec = graph.node("beacon")
    command = node_command(spec, "sim", tmp_path / "bin" / "beacon", {"use_sim_time": True, "run_dir": "/r/0"},
                           {"episodes": "3"})
    assert command[:2] == [str(tmp_path / "bin" / "beacon"), "--ros-args"]
    text = " ".join(command)
    assert "-r __ns:=/inril -r __node:=beacon" in text
    assert f"--params-file {tmp_path / 'config/nodes/beacon.yaml'}" in text
    # typed values: a bool stays a bool, a path stays a string, an override comes last so it wins
    assert text.endswith('-p use_sim_time:=true -p run_dir:="/r/0" -p episodes:=3 -r /inril/robot/eef_pose:=/arm/pose')


def test_an_override_is_typed_as_its_params_file_types_the_parameter(tmp_path: Path) -> None:
    """`inril sim sim_bridge.control_rate_hz=3`: ROS refuses an INTEGER for a DOUBLE parameter (and a number for a
    string) and the node exits."""
    graph = load_graph(write_graph(tmp_path, [_node_entry("beacon", "beacon")],
                                   {"beacon": {"rate_hz": 20.0, "episodes": 2, "name": "a"}}), executables={"beacon"})
    command = node_command(graph.node("beacon"), "sim", tmp_path / "bin" / "beacon", {},
                           {"rate_hz": "3", "episodes": "3", "name": "7", "heartbeat_hz": "2.5", "other": "1"})
    assert " ".join(command).endswith(
        '-p rate_hz:=3.0 -p episodes:=3 -p name:="7" -p heartbeat_hz:=2.5 -p other:=1')


def test_overrides_naming_a_node_become_its_parameters() -> None:
    nodes, rest = split_overrides(["sim_bridge.max_episode_steps=30", "task=can", "interleave.m=5"],
                                  ["sim_bridge", "episode_manager"])
    assert nodes == {"sim_bridge": {"max_episode_steps": "30"}}
    assert rest == ["task=can", "interleave.m=5"]


def test_claimed_domain_is_kept_until_its_owner_dies() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    # pids beyond any pid_max (2**22) that start their search at the sleeper's domain: never alive
    same_start = [sleeper.pid + 101 * k for k in (50_000, 60_000)]
    try:
        first = claim_domain_id(pid=sleeper.pid)
        assert claim_domain_id(pid=sleeper.pid) == first           # the same owner gets its domain back
        assert claim_domain_id(pid=same_start[0]) != first          # a live owner's domain is not handed out
    finally:
        stop_process(sleeper)
    assert claim_domain_id(pid=same_start[1]) == first              # a dead owner's domain is free again
