"""ROS 2 package `inril_ros` (ament_python): one rclpy node per module, one console script per node.

The scripts install under lib/inril_ros (setup.cfg) so `ros2 run inril_ros <node>` and launch_ros find them;
`inril sim` starts the same entry points as plain processes where no ROS distro is installed.
"""
from setuptools import find_packages, setup

PACKAGE = "inril_ros"
NODES = ("sim_bridge", "policy_server", "action_executor", "episode_manager", "learner", "safety_monitor",
         "recorder")

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="inril developers",
    maintainer_email="inril@example.invalid",
    description="The IN-RIL ROS 2 node graph (thin rclpy adapters over inril_core)",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={"console_scripts": [f"{node} = {PACKAGE}.{node}:main" for node in NODES]},
)
