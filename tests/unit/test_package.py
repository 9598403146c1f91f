"""The repo root is a valid ROS 2 package that `colcon build` in ros2_ws/ installs, with no ROS distro present."""
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_is_valid_format_3_named_inril():
    warnings: list[str] = []
    package = parse_package(str(ROOT / "package.xml"), warnings=warnings)
    assert (package.name, package.package_format, warnings) == ("inril", 3, [])
    assert package.get_build_type() == "ament_python"
    assert package.version == importlib.metadata.version("inril"), "package.xml and setup.py versions differ"


def test_workspace_links_back_to_the_repo_root_relatively():
    link = ROOT / "ros2_ws" / "src" / "inril"
    assert os.readlink(link) == "../.." and link.resolve() == ROOT


def test_inril_console_script_is_registered():
    (entry_point,) = importlib.metadata.entry_points(group="console_scripts", name="inril")
    assert entry_point.value == "inril_core.cli:main"


def test_colcon_build_installs_the_package(tmp_path):
    colcon = Path(sys.executable).with_name("colcon")
    result = subprocess.run(
        [str(colcon), "--log-base", str(tmp_path / "log"), "build", "--base-paths", "src",
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
        cwd=ROOT / "ros2_ws",
        env={**os.environ, "COLCON_HOME": str(tmp_path / "colcon_home")},  # ignore a user's colcon defaults
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    prefix = tmp_path / "install" / "inril"
    site_packages = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "inril").is_file()
    assert (prefix / "share" / "inril" / "package.xml").is_file()
    assert (site_packages / "inril_core" / "__init__.py").is_file()
    assert os.access(prefix / "lib" / "inril" / "inril", os.X_OK), "console script must be in lib/inril for ros2 run"

    ros_prefix = tmp_path / "install" / "inril_ros"
    assert (ros_prefix / "share" / "ament_index" / "resource_index" / "packages" / "inril_ros").is_file()
    for node in ("sim_bridge", "policy_server", "action_executor", "episode_manager", "learner", "safety_monitor",
                 "recorder"):
        assert os.access(ros_prefix / "lib" / "inril_ros" / node, os.X_OK), f"{node} must be in lib/inril_ros"
