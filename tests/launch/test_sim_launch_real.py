"""The real ROS 2 launch of launch/sim.launch.py, on machines with a ROS distro (launch_testing installed): every
node of the sim profile comes up and sends heartbeats, and every process exits cleanly at shutdown.

Skipped where launch_testing is absent (the wheel-only dev machine); test_launch_files.py checks the file there
against the capture stand-in, and tests/ros/test_graph_check.py runs the same graph through `inril sim --check`.
"""
from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip("launch_testing")

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from inril_ros import interfaces  # noqa: E402
from inril_ros.graph import load_graph  # noqa: E402
from inril_ros.supervisor import claim_domain_id  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
if not (REPO / "runs" / "pretrain" / "lift" / "checkpoints").is_dir():
    pytest.skip("no pre-trained lift policy for the policy server: run `inril pretrain task=lift` first",
                allow_module_level=True)
# the launched nodes inherit this process's environment: a domain of their own, discovery on this host only
os.environ["ROS_DOMAIN_ID"] = str(claim_domain_id())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
RUN_DIR = tempfile.mkdtemp(prefix="inril-launch-test-")
NODES = {node.name for node in load_graph().nodes_for("sim")}
HEARTBEAT_TIMEOUT_S = 120.0  # torch imports and policy loading on a loaded machine


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(REPO / "launch" / "sim.launch.py")),
        launch_arguments={"task": "lift", "run_dir": RUN_DIR, "mode": "lockstep"}.items())
    return LaunchDescription([sim, launch_testing.actions.ReadyToTest()])


class TestSimGraphComesUp(unittest.TestCase):
    def test_every_node_sends_heartbeats(self) -> None:
        rclpy.init()
        seen: set[str] = set()
        try:
            probe = rclpy.create_node("launch_test_probe")
            probe.create_subscription(Header, interfaces.HEARTBEAT, lambda msg: seen.add(msg.frame_id),
                                      interfaces.SENSOR)
            deadline = time.monotonic() + HEARTBEAT_TIMEOUT_S
            while time.monotonic() < deadline and not NODES <= seen:
                rclpy.spin_once(probe, timeout_sec=0.1)
            probe.destroy_node()
        finally:
            rclpy.try_shutdown()
        self.assertLessEqual(NODES, seen, f"no heartbeat on {interfaces.HEARTBEAT} from {sorted(NODES - seen)}")


@launch_testing.post_shutdown_test()
class TestSimGraphShutsDown(unittest.TestCase):
    def test_every_node_exits_cleanly(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
