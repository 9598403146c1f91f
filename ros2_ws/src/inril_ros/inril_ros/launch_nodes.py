"""The node actions of one graph profile, for ``launch/sim.launch.py`` and ``launch/robot.launch.py``.

Both launch files start the nodes of ``config/graph.yaml`` the same way (params file, profile parameters, remaps,
lifecycle nodes configured and activated by launch, a critical node's exit shutting the launch down); only their
arguments and environment differ. Imports ``launch``/``launch_ros``, so only a launch file (or a test with the
capture stand-in) imports this module.
"""
from __future__ import annotations

from typing import Any

from launch.actions import Shutdown
from launch_ros.actions import LifecycleNode, Node

from inril_ros.graph import Graph


def node_actions(graph: Graph, profile: str, parameters: dict[str, Any]) -> list:
    """One ``Node`` / ``LifecycleNode(autostart=True)`` per node of ``profile``, ``parameters`` on top of each
    node's params file (they may be LaunchConfiguration substitutions)."""
    settings = graph.profile(profile)
    actions = []
    for spec in graph.nodes_for(profile):
        node = spec.launch_kwargs(settings, parameters)
        if spec.critical:
            node["on_exit"] = Shutdown(reason=f"critical node {spec.name} exited")
        actions.append(LifecycleNode(autostart=True, **node) if spec.lifecycle else Node(**node))
    return actions
