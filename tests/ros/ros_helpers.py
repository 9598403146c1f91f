"""Helpers for ROS tests: bounded waits and a stop that always ends a node process."""
from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step_s)
    return predicate()


def call_trigger(executor, client, timeout_s: float):
    """Call the std_srvs/Trigger service of ``client`` once it is up; returns the response (asserts it came)."""
    from std_srvs.srv import Trigger

    assert spin_until(executor, client.service_is_ready, timeout_s), f"service {client.srv_name} not found"
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done, timeout_s), f"service {client.srv_name} did not answer"
    return future.result()


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> int:
    """SIGINT (rclpy's spin ignores SIGTERM), then SIGTERM, then SIGKILL; returns the exit code."""
    for stop in (lambda: proc.send_signal(signal.SIGINT), proc.terminate, proc.kill):
        if proc.poll() is not None:
            break
        stop()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    return proc.wait(timeout=grace_s)
