"""One way for every node process to start, spin and stop.

rclpy's spin ignores SIGTERM (ros2-notes §9), and a process supervisor (``inril sim``, systemd, launch) sends it:
so SIGTERM is turned into the same clean shutdown as Ctrl-C. Jazzy's rclpy has no ``with rclpy.init()``, so the
init / try / finally shape is spelt out here once.
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def _raise_keyboard_interrupt(signum: int, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def run_node(make_node: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> int:
    """Init rclpy, build the node, spin until Ctrl-C / SIGTERM / shutdown, then tear everything down.

    ``threads > 1`` spins a MultiThreadedExecutor (for nodes whose slow callbacks, e.g. a learner update, sit in
    their own callback group). Returns the process exit code: 0 on a requested stop, 1 when the node raised.
    """
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    rclpy.init(args=args if args is not None else sys.argv)
    node: Node | None = None
    code = 0
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:  # noqa: BLE001 - the one place a node's failure becomes an exit code and a log line
        if node is not None:
            node.get_logger().fatal(f"{type(error).__name__}: {error}")
        else:
            print(f"node failed to start: {type(error).__name__}: {error}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
