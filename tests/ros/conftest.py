"""ROS 2 test isolation: one ROS domain per test process, localhost-only discovery, bounded waits, no leftovers.

The domain id is claimed with an exclusive lock file (the same claim `inril sim` makes), so concurrent pytest runs on one machine (CI, a developer's
second terminal) never see each other's nodes. Node tests run in this process with their own rclpy context; graph
tests start processes with ``ros_env`` and must stop every one of them (``ros_helpers.stop_process``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from inril_ros.supervisor import claim_domain_id
from inril_ros.supervisor import clean_fastdds_shared_memory as clean_shared_memory

DOMAIN_ID = claim_domain_id()
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import rclpy  # noqa: E402 - after the domain is set: rclpy reads it at init


@pytest.fixture
def ros_context() -> Iterator[object]:
    """An initialised rclpy context for one test, shut down afterwards whatever the test did."""
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for node processes started by a test: this process's domain, localhost discovery."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


@pytest.fixture(scope="session", autouse=True)
def clean_fastdds_shared_memory() -> Iterator[None]:
    """Fast DDS leaves /dev/shm segments behind after hard kills (ros2-notes §9); remove unused ones at the end."""
    yield
    clean_shared_memory()
