"""config/graph.yaml: the repository's graph is valid, and every kind of mistake in a graph file is refused with
an error that names the file, the key and the fix."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from inril_ros.graph import GraphError, contract_topics, declared_executables, load_graph

REPO = Path(__file__).resolve().parents[2]
NODES = ("sim_bridge", "policy_server", "action_executor", "episode_manager", "learner", "safety_monitor", "recorder")


def test_repository_graph_runs_all_seven_nodes_in_sim_and_all_but_the_sim_on_the_robot() -> None:
    graph = load_graph()
    assert [n.name for n in graph.nodes_for("sim")] == list(NODES)
    assert [n.name for n in graph.nodes_for("robot")] == [n for n in NODES if n != "sim_bridge"]
    assert {n.name for n in graph.nodes if n.lifecycle} == {"policy_server", "learner"}
    assert graph.profile("sim").use_sim_time and not graph.profile("robot").use_sim_time
    # franka's current_pose is best effort; sim_bridge's state is reliable (lock-step must not lose one)
    assert graph.profile("robot").robot_state_qos == "best_effort"
    assert graph.profile("sim").robot_state_qos == "reliable"
    assert {n.executable for n in graph.nodes} == declared_executables()


def test_robot_profile_remaps_only_contract_topics_onto_franka_names() -> None:
    graph = load_graph()
    for node in graph.nodes:
        assert not node.remappings("sim")  # the sim publishes the contract names itself
    remaps = dict(graph.node("policy_server").remappings("robot"))
    assert remaps["/inril/robot/eef_pose"] == "/franka_robot_state_broadcaster/current_pose"
    assert set(remaps) <= contract_topics()


def test_params_files_apply_to_their_node_through_the_node_key() -> None:
    for node in load_graph().nodes:
        data = yaml.safe_load(node.params_file.read_text())
        assert node.fqn == f"/inril/{node.name}" and "ros__parameters" in data[node.fqn]


@pytest.fixture
def graph_copy(tmp_path: Path) -> Path:
    """A copy of the repository's config folder to break one thing in."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config" / "graph.yaml"


def edit_graph(path: Path, change: Callable[[dict], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def node(data: dict, name: str) -> dict:
    return next(n for n in data["nodes"] if n["name"] == name)


BROKEN = {
    "unknown executable": (lambda d: node(d, "learner").update(executable="learnr"),
                           "nodes[4] (learner).executable 'learnr' is not a console script of inril_ros"),
    "duplicate name": (lambda d: node(d, "recorder").update(name="learner", params="config/nodes/learner.yaml"),
                       "the name 'learner' is used twice"),
    "missing params file": (lambda d: node(d, "recorder").update(params="config/nodes/recordr.yaml"),
                            "recordr.yaml does not exist"),
    "remap of a topic nobody uses": (
        lambda d: node(d, "policy_server")["remaps"]["robot"].update({"/inril/robot/eef": "/x"}),
        "'/inril/robot/eef' is not a topic of inril_ros.interfaces"),
    "relative remap target": (lambda d: node(d, "policy_server")["remaps"]["robot"].update(
        {"/inril/robot/eef_pose": "current_pose"}), "the target must be an absolute topic name"),
    "remap for a profile the node does not run in": (
        lambda d: node(d, "sim_bridge").update(remaps={"robot": {"/clock": "/sim_clock"}}),
        "nodes[0] (sim_bridge).remaps must map this node's profiles ['sim']"),
    "unknown profile": (lambda d: node(d, "recorder").update(profiles=["sim", "robt"]),
                        "profiles must be a non-empty list of ['robot', 'sim']"),
    "typo in a key": (lambda d: node(d, "recorder").update(critcal=True), "unknown keys ['critcal']"),
    "string for a flag": (lambda d: node(d, "learner").update(lifecycle="yes"), "lifecycle must be true or false"),
    "relative namespace": (lambda d: node(d, "learner").update(namespace="inril"), "namespace must be absolute"),
    "another package's node": (lambda d: node(d, "recorder").update(package="rosbag2"),
                               "the graph starts only inril_ros nodes"),
    "missing dds profile": (lambda d: d["profiles"]["sim"].update(dds_profile="config/dds/none.xml"),
                            "profiles.sim.dds_profile"),
    "unknown robot state qos": (lambda d: d["profiles"]["robot"].update(robot_state_qos="best-effort"),
                                "profiles.robot.robot_state_qos must be one of ['best_effort', 'reliable']"),
}


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_a_broken_graph_is_refused_naming_file_and_key(graph_copy: Path, mistake: str) -> None:
    change, message = BROKEN[mistake]
    edit_graph(graph_copy, change)
    with pytest.raises(GraphError) as error:
        load_graph(graph_copy)
    assert message in str(error.value) and str(graph_copy) in str(error.value)


def test_params_file_keyed_for_another_node_is_refused(graph_copy: Path) -> None:
    params = graph_copy.parent / "nodes" / "recorder.yaml"
    params.write_text(params.read_text().replace("/inril/recorder:", "/inril/recordr:"))
    with pytest.raises(GraphError, match=r"recorder.yaml has no '/inril/recorder: ros__parameters:' section"):
        load_graph(graph_copy)


def test_unparsable_params_file_is_refused(graph_copy: Path) -> None:
    (graph_copy.parent / "nodes" / "learner.yaml").write_text("/inril/learner:\n  ros__parameters: [unclosed\n")
    with pytest.raises(GraphError, match=r"nodes\[4\] \(learner\)\.params: .*learner.yaml is not valid YAML"):
        load_graph(graph_copy)
