"""The IN-RIL node graph on the real robot: ``ros2 launch inril robot.launch.py task:=lift``.

Start the robot's drivers first (franka_ros2, realsense2_camera, the object-pose node: see the ``robot`` profile in
``config/graph.yaml``); this file starts our nodes only, from the same graph file as ``sim.launch.py`` and
``inril sim`` (profile ``robot``: no sim_bridge, franka's topics remapped onto the names our nodes use, wall-clock
time). Lifecycle nodes are configured and activated by launch (``LifecycleNode(autostart=True)``, launch_ros in
Kilted; on Jazzy run ``ros2 lifecycle set``). A critical node's exit shuts the whole launch down.
"""
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration

from inril_ros.graph import load_graph
from inril_ros.launch_nodes import node_actions

GRAPH = Path(__file__).resolve().parents[1] / "config" / "graph.yaml"  # share/inril/config or the source tree
PROFILE = "robot"
# (name, default, description, choices): each becomes a parameter of every node
ARGUMENTS = (
    ("task", "lift", "task the policy acts on: lift | can | square | furniture/one_leg", None),
    ("run_dir", "runs/robot", "folder for the nodes' CSV logs, checkpoints and bags", None),
    ("mode", "realtime", "realtime: act at control_rate_hz; lockstep: one command per new observation",
     ["lockstep", "realtime"]),
)


def generate_launch_description() -> LaunchDescription:
    graph = load_graph(GRAPH)
    profile = graph.profile(PROFILE)
    entities = [DeclareLaunchArgument(name, default_value=default, description=text, choices=choices)
                for name, default, text, choices in ARGUMENTS]
    entities += [
        DeclareLaunchArgument("dds_profile", default_value=str(profile.dds_profile),
                              description="Fast DDS XML (loopback + shared memory); another file for a second host"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("dds_profile")),
    ]
    parameters = {name: LaunchConfiguration(name) for name, *_ in ARGUMENTS}
    return LaunchDescription(entities + node_actions(graph, PROFILE, parameters))
