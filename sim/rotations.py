"""Quaternion helpers shared by the envs and the experts.

MuJoCo stores quaternions as wxyz; the observation uses robosuite's xyzw. Keeping the conversions here means
neither the env nor the experts hand-roll index shuffles.
"""
from __future__ import annotations

import mujoco
import numpy as np


def wxyz_to_xyzw(quat: np.ndarray) -> np.ndarray:
    return np.asarray(quat)[..., [1, 2, 3, 0]]


def xyzw_to_wxyz(quat: np.ndarray) -> np.ndarray:
    return np.asarray(quat)[..., [3, 0, 1, 2]]


def canonical_xyzw(quat: np.ndarray) -> np.ndarray:
    """xyzw of the wxyz ``quat`` with w >= 0: the sign robosuite's ``mat2quat`` picks for its Transport observables."""
    quat = np.asarray(quat)
    return wxyz_to_xyzw(-quat if quat[0] < 0 else quat)


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """wxyz quaternion of the rotation vector ``rotvec`` (axis times angle, radians)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * np.asarray(rotvec) / angle])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """wxyz product ``a * b`` (rotate by ``b`` first, then by ``a``)."""
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return out


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(q, dtype=np.float64))
    return mat.reshape(3, 3)


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector that turns ``current`` into ``target`` (both wxyz), angle in [0, pi]."""
    delta = quat_mul(target, quat_conj(current))
    if delta[0] < 0:
        delta = -delta
    rotvec = np.empty(3)
    mujoco.mju_quat2Vel(rotvec, delta, 1.0)
    return rotvec


def yaw_of(q: np.ndarray) -> float:
    """Heading (radians) of the body x axis projected on the world xy plane, for a wxyz quaternion."""
    w, x, y, z = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def wrap_angle(angle: float, period: float = 2 * np.pi) -> float:
    """``angle`` shifted by multiples of ``period`` into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)
