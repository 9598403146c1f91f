"""The IN-RIL node graph against the simulated robot: ``ros2 launch inril sim.launch.py task:=lift mode:=lockstep``.

Thin on purpose: the nodes, their params files and remaps come from ``config/graph.yaml`` (profile ``sim``), the
file ``inril sim`` starts as plain processes where no ROS distro is installed, so the two cannot drift apart.
Lifecycle nodes are configured and activated by launch (``LifecycleNode(autostart=True)``, launch_ros in Kilted;
on Jazzy run ``ros2 lifecycle set /inril/<node> configure`` then ``activate``). A critical node's exit shuts the
whole launch down, as ``inril sim`` does.
"""
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration

from inril_ros.graph import load_graph
from inril_ros.launch_nodes import node_actions

# share/inril/launch/ -> share/inril/config/graph.yaml once installed; <repo>/config/graph.yaml from the source
# tree (a --symlink-install link resolves there too)
GRAPH = Path(__file__).resolve().parents[1] / "config" / "graph.yaml"
PROFILE = "sim"
# (name, default, description, choices): each becomes a parameter of every node
ARGUMENTS = (
    ("task", "lift", "task to simulate, act and learn on: lift | can | square | furniture/one_leg", None),
    ("run_dir", "runs/sim/launch", "folder for the nodes' CSV logs, checkpoints and bags", None),
    ("mode", "lockstep", "lockstep: the sim steps on each command (deterministic); realtime: at control_rate_hz",
     ["lockstep", "realtime"]),
)


def generate_launch_description() -> LaunchDescription:
    graph = load_graph(GRAPH)
    profile = graph.profile(PROFILE)
    entities = [DeclareLaunchArgument(name, default_value=default, description=text, choices=choices)
                for name, default, text, choices in ARGUMENTS]
    entities += [
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(profile.dds_profile)),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),  # the sim graph never leaves the host
    ]
    parameters = {name: LaunchConfiguration(name) for name, *_ in ARGUMENTS}
    return LaunchDescription(entities + node_actions(graph, PROFILE, parameters))
