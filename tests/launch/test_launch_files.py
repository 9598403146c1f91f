"""launch/sim.launch.py and launch/robot.launch.py start exactly the nodes of config/graph.yaml for their profile.

Without a ROS distro the files run against the capture stand-in (launch_standin.py), which records every action
they build; on a machine with launch_ros these tests step aside for the real launch test (test_sim_launch_real.py).
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import launch_standin
from inril_ros.graph import load_graph

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = {"sim": REPO / "launch" / "sim.launch.py", "robot": REPO / "launch" / "robot.launch.py"}


@pytest.fixture
def launch_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in in sys.modules, only where ROS 2 launch_ros is absent (never shadow a real install)."""
    if importlib.util.find_spec("launch_ros") is not None:
        pytest.skip("launch_ros is installed: the real launch test (test_sim_launch_real.py) covers the files")
    spec = importlib.util.find_spec("launch")
    if spec is not None and spec.origin is not None:  # a namespace package (tests/launch itself) is not an install
        installed = importlib.import_module("launch")
        assert hasattr(installed, "LaunchDescription"), (
            f"the installed 'launch' ({spec.origin}) is not ROS 2 launch but PyPI's unrelated 'launch' app: "
            "pip uninstall launch")
    for name, module in launch_standin.modules().items():
        monkeypatch.setitem(sys.modules, name, module)


def generate(profile: str) -> launch_standin.LaunchDescription:
    path = LAUNCH_FILES[profile]
    spec = importlib.util.spec_from_file_location(f"{profile}_launch", path)
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def resolve(value: Any, args: dict[str, str], declared: dict[str, Any]) -> Any:
    """What launch would substitute: a LaunchConfiguration is the given argument, else its declared default."""
    if isinstance(value, launch_standin.LaunchConfiguration):
        return args.get(value.variable_name, declared[value.variable_name])
    if isinstance(value, dict):
        return {k: resolve(v, args, declared) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, args, declared) for v in value]
    return value


def of_type(description: launch_standin.LaunchDescription, kind: type) -> list:
    return [e for e in description.entities if isinstance(e, kind)]


def declared_defaults(description: launch_standin.LaunchDescription) -> dict[str, Any]:
    return {a.name: a.kwargs["default_value"] for a in of_type(description, launch_standin.DeclareLaunchArgument)}


@pytest.mark.parametrize("profile", ["sim", "robot"])
def test_launch_file_starts_the_graph_nodes_of_its_profile(launch_api: None, profile: str) -> None:
    graph = load_graph()
    description = generate(profile)
    launched = [(n.kwargs["name"], n.kwargs["package"], n.kwargs["executable"], n.kwargs["namespace"],
                 n.kwargs["parameters"][0], n.kwargs["remappings"], isinstance(n, launch_standin.LifecycleNode),
                 isinstance(n.kwargs["on_exit"], launch_standin.Shutdown))
                for n in of_type(description, launch_standin.Node)]
    expected = [(s.name, s.package, s.executable, s.namespace, str(s.params_file), s.remappings(profile), s.lifecycle,
                 s.critical) for s in graph.nodes_for(profile)]
    assert launched == expected
    assert all(n.kwargs["autostart"] for n in of_type(description, launch_standin.LifecycleNode))


def test_robot_launch_remaps_franka_state_and_starts_no_sim(launch_api: None) -> None:
    nodes = {n.kwargs["name"]: n for n in of_type(generate("robot"), launch_standin.Node)}
    assert "sim_bridge" not in nodes
    assert ("/inril/robot/eef_pose", "/franka_robot_state_broadcaster/current_pose") in \
        nodes["policy_server"].kwargs["remappings"]
    assert all(not n.kwargs["remappings"] for n in of_type(generate("sim"), launch_standin.Node))


@pytest.mark.parametrize("profile, sim_time, default_mode, state_qos", [("sim", True, "lockstep", "reliable"),
                                                                         ("robot", False, "realtime", "best_effort")])
def test_launch_arguments_reach_every_node_as_parameters(launch_api: None, profile: str, sim_time: bool,
                                                         default_mode: str, state_qos: str) -> None:
    description = generate(profile)
    declared = declared_defaults(description)
    args = {"task": "can", "run_dir": "/data/run7"}
    for node in of_type(description, launch_standin.Node):
        params_file, values = resolve(node.kwargs["parameters"], args, declared)
        assert Path(params_file).is_file()
        assert values == {"use_sim_time": sim_time, "robot_state_qos": state_qos, "task": "can", "run_dir": "/data/run7",
                          "mode": default_mode}


@pytest.mark.parametrize("profile", ["sim", "robot"])
def test_every_node_gets_the_graph_dds_profile(launch_api: None, profile: str) -> None:
    description = generate(profile)
    declared = declared_defaults(description)
    env = {resolve(e.kwargs["name"], {}, declared): resolve(e.kwargs["value"], {}, declared)
           for e in of_type(description, launch_standin.SetEnvironmentVariable)}
    dds = load_graph().profile(profile).dds_profile
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(dds) and dds.is_file()
    first_node = next(i for i, e in enumerate(description.entities) if isinstance(e, launch_standin.Node))
    assert all(i < first_node for i, e in enumerate(description.entities)
               if isinstance(e, launch_standin.SetEnvironmentVariable))  # set before any node starts


def test_launch_files_import_only_what_the_standin_provides() -> None:
    """A launch import outside the whitelist would pass here and break on the robot, or the reverse."""
    outside = []
    for path in sorted((REPO / "launch").glob("*.py")):
        for statement in ast.walk(ast.parse(path.read_text())):
            if isinstance(statement, ast.Import):
                imported = [(alias.name, None) for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom) and statement.module:
                imported = [(statement.module, alias.name) for alias in statement.names]
            else:
                continue
            for module, name in imported:
                if module.split(".")[0] not in ("launch", "launch_ros"):
                    continue
                if module not in launch_standin.WHITELIST or (name and name not in launch_standin.WHITELIST[module]):
                    outside.append(f"{path.name}:{statement.lineno}: {module}{'.' + name if name else ''}")
    assert not outside, f"launch imports outside tests/launch/launch_standin.py WHITELIST: {outside}"
