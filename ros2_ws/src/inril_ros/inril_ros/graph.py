"""The node graph as data: ``config/graph.yaml`` loaded and checked once, for the launch files and ``inril sim``.

Why one YAML: the robot (``ros2 launch``) and the sim without a ROS distro (``inril_ros.supervisor`` starting plain
processes) must run the same nodes with the same params files and remaps. Both read this file, so they cannot
drift apart, and a typo (a params file that does not name its node, a remap of a topic nobody uses) fails here,
with the file and key, before any process starts. This module imports no ``launch``: the supervisor uses it on
machines where launch is not installed.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

import inril_ros
from inril_core.config import config_dir
from inril_ros import interfaces

PACKAGE = "inril_ros"
NODE_KEYS = {"name", "package", "executable", "namespace", "params", "lifecycle", "critical", "profiles", "remaps"}
PROFILE_KEYS = {"use_sim_time", "dds_profile", "robot_state_qos"}


class GraphError(ValueError):
    """config/graph.yaml (or a file it names) is wrong; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Profile:
    """Graph-wide settings of one way of running the graph (``sim`` or ``robot``)."""

    name: str
    use_sim_time: bool
    dds_profile: Path  # Fast DDS XML, set as FASTDDS_DEFAULT_PROFILES_FILE for every node
    robot_state_qos: str  # reader QoS of the robot state topics (interfaces.ROBOT_STATE_QOS)

    def node_parameters(self) -> dict[str, Any]:
        """Parameters the profile gives every node (a node ignores one it does not declare)."""
        return {"use_sim_time": self.use_sim_time, "robot_state_qos": self.robot_state_qos}


@dataclass(frozen=True)
class NodeSpec:
    """How to start one node: what launch_ros.actions.Node takes, and what the supervisor puts on a command line."""

    name: str
    package: str
    executable: str
    namespace: str
    params_file: Path
    lifecycle: bool
    critical: bool
    profiles: tuple[str, ...]
    remaps: dict[str, dict[str, str]] = field(default_factory=dict)  # profile -> {name used: name published}

    @property
    def fqn(self) -> str:
        """Fully qualified node name, the key of its params file (``/inril/policy_server``)."""
        return f"{self.namespace.rstrip('/')}/{self.name}"

    def parameter_values(self) -> dict[str, Any]:
        """The parameters its params file sets (nested keys joined with '.') and their values: the names warn about
        a mistyped override, the values type one (``supervisor.override_text``)."""
        def flat(values: dict, prefix: str = "") -> dict[str, Any]:
            found: dict[str, Any] = {}
            for key, value in values.items():
                found.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
            return found

        return flat(yaml.safe_load(self.params_file.read_text())[self.fqn]["ros__parameters"])

    def parameter_names(self) -> set[str]:
        """The names alone: ``inril sim`` warns about an override its params file does not set."""
        return set(self.parameter_values())

    def remappings(self, profile: str) -> list[tuple[str, str]]:
        """(from, to) pairs for ``profile``, in file order."""
        return list(self.remaps.get(profile, {}).items())

    def launch_kwargs(self, profile: Profile, parameters: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of launch_ros ``Node``/``LifecycleNode``: the params file, then ``parameters`` on top.

        ``parameters`` may hold launch substitutions (LaunchConfiguration); the profile's node parameters
        (use_sim_time, robot_state_qos) come first.
        """
        return {
            "package": self.package,
            "executable": self.executable,
            "name": self.name,
            "namespace": self.namespace,
            "parameters": [str(self.params_file), {**profile.node_parameters(), **parameters}],
            "remappings": self.remappings(profile.name),
            "output": "screen",
        }


@dataclass(frozen=True)
class Graph:
    path: Path
    profiles: dict[str, Profile]
    nodes: tuple[NodeSpec, ...]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise GraphError(f"{self.path}: no profile '{name}'; profiles: {sorted(self.profiles)}")
        return self.profiles[name]

    def nodes_for(self, profile: str) -> list[NodeSpec]:
        """The nodes that run in ``profile``, in file order (the order they are started in)."""
        self.profile(profile)
        return [node for node in self.nodes if profile in node.profiles]

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise GraphError(f"{self.path}: no node '{name}'; nodes: {[n.name for n in self.nodes]}")


def default_graph_path() -> Path:
    """config/graph.yaml next to the other config files (source tree, $INRIL_CONFIG_DIR, or share/inril)."""
    return config_dir() / "graph.yaml"


def load_graph(path: str | Path | None = None, executables: set[str] | None = None) -> Graph:
    """Load and check the graph file. Relative paths in it are relative to the folder holding ``config/``.

    ``executables`` is the set a node's executable must be one of; default: inril_ros's declared NODES.
    """
    path = Path(path) if path is not None else default_graph_path()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise GraphError(f"cannot read the graph file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise GraphError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or set(data) != {"profiles", "nodes"}:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise GraphError(f"{path}: top level must have exactly the keys 'profiles' and 'nodes', found {found}")
    root = path.resolve().parent.parent
    profiles = _profiles(path, root, data["profiles"])
    if not isinstance(data["nodes"], list) or not data["nodes"]:
        raise GraphError(f"{path}: 'nodes' must be a non-empty list of node entries")
    known = declared_executables() if executables is None else executables
    nodes: list[NodeSpec] = []
    for index, entry in enumerate(data["nodes"]):
        node = _node(path, root, index, entry, profiles, known)
        if any(n.name == node.name for n in nodes):
            raise GraphError(f"{path}: nodes[{index}]: the name '{node.name}' is used twice; node names are unique")
        nodes.append(node)
    return Graph(path=path, profiles=profiles, nodes=tuple(nodes))


def declared_executables() -> set[str]:
    """The console scripts inril_ros declares: NODES in its setup.py (source tree), else its installed entry points."""
    setup_py = Path(inril_ros.__file__).resolve().parents[1] / "setup.py"
    if setup_py.is_file():
        for statement in ast.parse(setup_py.read_text()).body:
            if isinstance(statement, ast.Assign) and any(getattr(t, "id", None) == "NODES" for t in statement.targets):
                return set(ast.literal_eval(statement.value))
    return {ep.name for ep in metadata.distribution(PACKAGE).entry_points if ep.group == "console_scripts"}


def contract_topics() -> set[str]:
    """Every topic and service name of inril_ros.interfaces: what a remap may redirect."""
    return {value for key, value in vars(interfaces).items()
            if key.isupper() and isinstance(value, str) and value.startswith("/") and value != interfaces.NAMESPACE}


def _profiles(path: Path, root: Path, data: Any) -> dict[str, Profile]:
    if not isinstance(data, dict) or not data:
        raise GraphError(f"{path}: 'profiles' must map profile names (sim, robot) to their settings")
    profiles = {}
    for name, settings in data.items():
        where = f"{path}: profiles.{name}"
        if not isinstance(settings, dict) or set(settings) != PROFILE_KEYS:
            found = sorted(settings) if isinstance(settings, dict) else type(settings).__name__
            raise GraphError(f"{where} must have exactly the keys {sorted(PROFILE_KEYS)}, found {found}")
        if not isinstance(settings["use_sim_time"], bool):
            raise GraphError(f"{where}.use_sim_time must be true or false, got {settings['use_sim_time']!r}")
        if settings["robot_state_qos"] not in interfaces.ROBOT_STATE_QOS:
            raise GraphError(f"{where}.robot_state_qos must be one of {sorted(interfaces.ROBOT_STATE_QOS)}, got "
                             f"{settings['robot_state_qos']!r}")
        dds = _existing_file(root, settings["dds_profile"], f"{where}.dds_profile")
        profiles[name] = Profile(name=name, use_sim_time=settings["use_sim_time"], dds_profile=dds,
                                 robot_state_qos=settings["robot_state_qos"])
    return profiles


def _node(path: Path, root: Path, index: int, entry: Any, profiles: dict[str, Profile],
          executables: set[str]) -> NodeSpec:
    where = f"{path}: nodes[{index}]"
    if not isinstance(entry, dict):
        raise GraphError(f"{where} must be a mapping with keys {sorted(NODE_KEYS)}")
    where = f"{path}: nodes[{index}] ({entry.get('name', '?')})"
    missing, unknown = NODE_KEYS - {"remaps"} - set(entry), set(entry) - NODE_KEYS
    if missing or unknown:
        raise GraphError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}; "
                         f"a node has {sorted(NODE_KEYS)} (remaps optional)")
    for key in ("name", "package", "executable", "namespace", "params"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise GraphError(f"{where}.{key} must be a non-empty string, got {entry[key]!r}")
    for key in ("lifecycle", "critical"):
        if not isinstance(entry[key], bool):
            raise GraphError(f"{where}.{key} must be true or false, got {entry[key]!r}")
    if entry["package"] != PACKAGE:
        raise GraphError(f"{where}.package is '{entry['package']}': the graph starts only {PACKAGE} nodes; "
                         "drivers of other packages are started separately (see the robot profile's comments)")
    if entry["executable"] not in executables:
        raise GraphError(f"{where}.executable '{entry['executable']}' is not a console script of {PACKAGE}: "
                         f"choose one of {sorted(executables)} or add it to NODES in ros2_ws/src/inril_ros/setup.py")
    if not entry["namespace"].startswith("/"):
        raise GraphError(f"{where}.namespace must be absolute (start with '/'), got {entry['namespace']!r}")
    node_profiles = entry["profiles"]
    if not isinstance(node_profiles, list) or not node_profiles or not set(node_profiles) <= set(profiles):
        raise GraphError(f"{where}.profiles must be a non-empty list of {sorted(profiles)}, got {node_profiles!r}")
    params_file = _existing_file(root, entry["params"], f"{where}.params")
    fqn = f"{entry['namespace'].rstrip('/')}/{entry['name']}"
    _check_params_file(params_file, fqn, f"{where}.params")
    remaps = _remaps(entry.get("remaps") or {}, node_profiles, f"{where}.remaps")
    return NodeSpec(name=entry["name"], package=entry["package"], executable=entry["executable"],
                    namespace=entry["namespace"], params_file=params_file, lifecycle=entry["lifecycle"],
                    critical=entry["critical"], profiles=tuple(node_profiles), remaps=remaps)


def _existing_file(root: Path, relative: Any, where: str) -> Path:
    if not isinstance(relative, str) or not relative:
        raise GraphError(f"{where} must be a path relative to {root}, got {relative!r}")
    file = (root / relative).resolve()
    if not file.is_file():
        raise GraphError(f"{where}: {file} does not exist; create it or correct the path (relative to {root})")
    return file


def _check_params_file(params_file: Path, fqn: str, where: str) -> None:
    """The file parses and has ``<fqn>: ros__parameters: {...}``, the form ``--params-file`` applies to this node."""
    try:
        data = yaml.safe_load(params_file.read_text())
    except yaml.YAMLError as error:
        raise GraphError(f"{where}: {params_file} is not valid YAML: {error}") from None
    section = data.get(fqn) if isinstance(data, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
        keys = sorted(data) if isinstance(data, dict) else []
        raise GraphError(f"{where}: {params_file} has no '{fqn}: ros__parameters:' section (top-level keys {keys}); "
                         "the key must be the node's namespace + name so --params-file applies it")


def _remaps(data: Any, node_profiles: list[str], where: str) -> dict[str, dict[str, str]]:
    if not isinstance(data, dict) or not set(data) <= set(node_profiles):
        raise GraphError(f"{where} must map this node's profiles {node_profiles} to {{from: to}} topic pairs, "
                         f"got {data!r}")
    topics = contract_topics()
    remaps: dict[str, dict[str, str]] = {}
    for profile, pairs in data.items():
        if not isinstance(pairs, dict):
            raise GraphError(f"{where}.{profile} must map topic names to topic names, got {pairs!r}")
        for source, target in pairs.items():
            if source not in topics:
                raise GraphError(f"{where}.{profile}: '{source}' is not a topic of inril_ros.interfaces; a remap "
                                 f"redirects a name our nodes use: one of {sorted(topics)}")
            if not isinstance(target, str) or not target.startswith("/") or any(c.isspace() for c in target):
                raise GraphError(f"{where}.{profile}.{source}: the target must be an absolute topic name, "
                                 f"got {target!r}")
        remaps[profile] = dict(pairs)
    return remaps
