"""Message <-> numpy conversions shared by the nodes, so each message type is read and written one way.

Quaternions in ROS messages are xyzw; inril_sim's internals are wxyz (MuJoCo). Conversions here take and return
xyzw, matching the messages and the observation vector; callers that talk to MuJoCo convert with
``inril_sim.rotations``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose, PoseArray, PoseStamped, TwistStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


class MessageError(ValueError):
    """A message that cannot be turned into what the node needs (wrong size, NaN, unknown names)."""


def stamp_ns(stamp: Time) -> int:
    """A message stamp as integer nanoseconds: exact, so stamps of one env step compare equal."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def time_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def s_to_duration(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def pose_to_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,), quaternion xyzw (4,))."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def arrays_to_pose(position: Sequence[float], quat_xyzw: Sequence[float]) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat_xyzw)
    return pose


def pose_stamped(position: Sequence[float], quat_xyzw: Sequence[float], stamp_s: float, frame: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.pose = arrays_to_pose(position, quat_xyzw)
    return msg


def pose_array(poses: Sequence[tuple[Sequence[float], Sequence[float]]], stamp_s: float, frame: str) -> PoseArray:
    msg = PoseArray()
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.poses = [arrays_to_pose(p, q) for p, q in poses]
    return msg


def twist_stamped(linear: Sequence[float], angular: Sequence[float], stamp_s: float, frame: str) -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in angular)
    return msg


def joint_state(names: Sequence[str], positions: Sequence[float], stamp_s: float) -> JointState:
    msg = JointState()
    msg.header.stamp = s_to_time(stamp_s)
    msg.name = list(names)
    msg.position = [float(v) for v in positions]
    return msg


def actions_to_trajectory(actions: np.ndarray, stamp_s: float, dt: float, names: Sequence[str],
                          frame: str = "") -> JointTrajectory:
    """(n, A) actions with components ``names`` -> JointTrajectory stamped ``stamp_s``; point k is due at
    ``stamp_s + k * dt``."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != len(names):
        raise MessageError(f"actions must have shape (n, {len(names)}) ({', '.join(names)}), got {actions.shape}")
    msg = JointTrajectory()
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.joint_names = list(names)
    msg.points = [JointTrajectoryPoint(positions=row.tolist(), time_from_start=s_to_duration(k * dt))
                  for k, row in enumerate(actions)]
    return msg


def trajectory_to_actions(msg: JointTrajectory, expected: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(actions (n, A) in the order of the action names ``expected``, due offsets (n,) in s); a malformed message,
    or one for another action convention, raises MessageError."""
    names = list(msg.joint_names)
    if sorted(names) != sorted(expected):
        raise MessageError(f"trajectory joint_names {names} are not the task's action names {list(expected)}")
    if not msg.points:
        raise MessageError("trajectory has no points")
    order = [names.index(n) for n in expected]
    rows = []
    for i, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise MessageError(f"trajectory point {i} has {len(point.positions)} positions, expected {len(names)}")
        rows.append([point.positions[j] for j in order])
    offsets = np.array([time_to_s(p.time_from_start) for p in msg.points])
    return np.asarray(rows, dtype=np.float64), offsets


# bytes per pixel of the image encodings a camera of the graph may publish (sensor_msgs/image_encodings.hpp)
IMAGE_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "16UC1": 2,
                         "32FC1": 4}


def image_problem(msg: Image, encoding: str, width: int = 0, height: int = 0) -> str | None:
    """Why ``msg`` is not a usable ``encoding`` image of ``width`` x ``height`` (0 = any), or None when it is.

    Checks what a consumer would trip over: the encoding, the size, and that ``step`` and ``data`` hold exactly
    ``height`` rows of at least ``width`` pixels (a truncated frame from a driver or a bag)."""
    if msg.encoding != encoding:
        return f"encoding {msg.encoding!r}, expected {encoding!r}"
    if (width and msg.width != width) or (height and msg.height != height):
        return f"size {msg.width}x{msg.height}, expected {width or msg.width}x{height or msg.height}"
    row = msg.width * IMAGE_BYTES_PER_PIXEL.get(encoding, 1)
    if msg.step < row:
        return f"step {msg.step} is shorter than a row of {msg.width} {encoding} pixels ({row} bytes)"
    if len(msg.data) != msg.step * msg.height:
        return f"{len(msg.data)} data bytes, expected step x height = {msg.step * msg.height}"
    return None


def joint_state_problem(msg: JointState) -> str | None:
    """Why ``msg`` is not a usable joint state (names and positions of different lengths, NaN/Inf), or None."""
    if len(msg.position) != len(msg.name):
        return f"{len(msg.name)} joint names but {len(msg.position)} positions"
    for field in ("position", "velocity", "effort"):
        values = np.asarray(getattr(msg, field), dtype=np.float64)
        if not np.isfinite(values).all():
            bad = [msg.name[i] if i < len(msg.name) else str(i) for i in np.flatnonzero(~np.isfinite(values))]
            return f"NaN/Inf {field} of {', '.join(bad)}"
    return None


def json_msg(payload: dict) -> String:
    return String(data=json.dumps(payload, sort_keys=True))


def json_payload(msg: String) -> dict:
    """The JSON object in a String message; anything else raises MessageError naming what was received."""
    try:
        payload = json.loads(msg.data)
    except json.JSONDecodeError as error:
        raise MessageError(f"expected a JSON object, got {msg.data[:80]!r}: {error}") from None
    if not isinstance(payload, dict):
        raise MessageError(f"expected a JSON object, got {type(payload).__name__}")
    return payload
