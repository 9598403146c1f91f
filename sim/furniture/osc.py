"""FurnitureSim's operational-space controller (furniture_bench ``controllers/osc.py``) in numpy, for MuJoCo.

The control law is FurnitureBench's: a critically damped task-space PD (kp = [90, 90, 90, 70, 60, 80], kv = 2 sqrt(kp))
decoupled through the operational-space inertia (pseudo-inverse dropping singular values below 0.05), plus a
null-space pull (joint kp 10) towards ``reset_joints``, and the extra push when the hand is at the far x limit.
Its torch version runs at ~1 ms a call; this one at ~50 us, which is what lets the port reach its speed.

Two deliberate differences from running it in IsaacGym, both measured (furniture-notes §4):
- torques are recomputed every physics step (1/120 s): held for 50 ms as FurnitureSim does, the same gains diverge in
  MuJoCo; recomputed they converge to ~2 mm / 1 deg.
- the goal is set once per env step as FurnitureSim's controller actually sees it: its ``forward`` re-reads the goal
  parameter that still holds the *initial* pose and interpolates 1/100 of the way from the commanded goal towards
  it, so the target is 0.99 (ee + delta) + 0.01 initial, and the orientation is slerped 0.25 % towards the initial.
"""
from __future__ import annotations

import mujoco
import numpy as np

from inril_sim.rotations import quat_mul, quat_to_mat

KP = np.array([90.0, 90.0, 90.0, 70.0, 60.0, 80.0])   # sim_config robot kp
KV = 2.0 * np.sqrt(KP)                                 # init_ctrl: kv None -> 2 sqrt(kp)
JOINT_KP = 10.0                                        # init_ctrl joint_kp
SINGULARITY_THRESHOLD = 0.05                           # control_utils.opspace_matrices
GOAL_PULL_TO_INITIAL = 2.0 / 200.0                     # (step_num + 1) / total_steps with step_num 1, 200 steps
ORI_PULL_TO_INITIAL = 0.5 / 200.0                      # fraction 0.5 * step_num / total_steps
FAR_X_PUSH = 2.0                                       # _torque_offset
MAX_DX = 0.005


def orientation_error(desired: np.ndarray, current: np.ndarray) -> np.ndarray:
    """FurnitureBench's orientation error between rotation matrices: half the sum of the column cross products
    c_i x d_i, computed as the axial vector of D C^T - C D^T (a x b = vee(b a^T - a b^T))."""
    skew = desired @ current.T - current @ desired.T
    return 0.5 * np.array([skew[2, 1], skew[0, 2], skew[1, 0]])


def _solve_spd(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """matrix^-1 rhs for a symmetric positive-definite matrix, column by column with MuJoCo's Cholesky.

    NumPy's LAPACK calls cost ~10-50 us for a 7x7 and ~500 us when OpenBLAS's threads compete with another busy
    process for the two cores; MuJoCo's single-threaded Cholesky takes a few microseconds."""
    factor = np.ascontiguousarray(matrix, dtype=np.float64).copy()
    mujoco.mju_cholFactor(factor, 0.0)
    out = np.empty_like(rhs, dtype=np.float64)
    column = np.empty(len(matrix))
    for j in range(rhs.shape[1]):
        mujoco.mju_cholSolve(column, factor, np.ascontiguousarray(rhs[:, j], dtype=np.float64))
        out[:, j] = column
    return out


def opspace_matrices(mass_matrix: np.ndarray, jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Operational-space inertia (singular values below the threshold dropped) and the null-space projector."""
    m_inv_jt = _solve_spd(mass_matrix, jacobian.T)
    lambda_inv = jacobian @ m_inv_jt
    u, s, vt = np.linalg.svd(lambda_inv)
    s_inv = np.where(s < SINGULARITY_THRESHOLD, 0.0, 1.0 / np.maximum(s, 1e-12))
    lam = vt.T @ np.diag(s_inv) @ u.T
    nullspace = np.eye(jacobian.shape[1]) - (m_inv_jt @ lam) @ jacobian
    return lam, nullspace


def slerp_wxyz(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (shortest arc)."""
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        out = q0 + fraction * (q1 - q0)
        return out / np.linalg.norm(out)
    theta = np.arccos(dot)
    return (np.sin((1 - fraction) * theta) * q0 + np.sin(fraction * theta) * q1) / np.sin(theta)


class OperationalSpaceController:
    """Joint torques that move the end effector to the goal FurnitureSim's controller would track."""

    def __init__(self, reset_joints: np.ndarray, position_limits: np.ndarray) -> None:
        self.reset_joints = np.asarray(reset_joints, float)
        self.position_limits = np.asarray(position_limits, float)
        self.goal_pos = np.zeros(3)
        self.goal_rot = np.eye(3)
        self._initial_pos = np.zeros(3)
        self._initial_quat = np.array([1.0, 0.0, 0.0, 0.0])

    def start(self, ee_pos: np.ndarray, ee_quat_wxyz: np.ndarray) -> None:
        """Remember the pose the controller was created at (FurnitureSim's ``init_ctrl``) and hold it."""
        self._initial_pos = np.clip(ee_pos, self.position_limits[:, 0], self.position_limits[:, 1])
        self._initial_quat = np.asarray(ee_quat_wxyz, float).copy()
        self.set_action(ee_pos, ee_quat_wxyz, np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))

    def set_action(self, ee_pos: np.ndarray, ee_quat_wxyz: np.ndarray, delta_pos: np.ndarray,
                   delta_quat_wxyz: np.ndarray) -> None:
        """The goal for this env step: ee + delta and ee * delta_quat, as FurnitureSim's step sets them."""
        self.goal_pos = (1 - GOAL_PULL_TO_INITIAL) * (ee_pos + delta_pos) + GOAL_PULL_TO_INITIAL * self._initial_pos
        goal_quat = slerp_wxyz(quat_mul(ee_quat_wxyz, delta_quat_wxyz), self._initial_quat, ORI_PULL_TO_INITIAL)
        self.goal_rot = quat_to_mat(goal_quat)

    def torques(self, ee_pos: np.ndarray, ee_rot: np.ndarray, jacobian: np.ndarray, mass_matrix: np.ndarray,
                q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """Joint torques for the current state (jacobian 6x7: linear rows then angular, at the end effector)."""
        twist = jacobian @ qd
        force = KP[:3] * (self.goal_pos - ee_pos) - KV[:3] * twist[:3]
        torque = KP[3:] * orientation_error(self.goal_rot, ee_rot) - KV[3:] * twist[3:]
        lam, nullspace = opspace_matrices(mass_matrix, jacobian)
        tau = jacobian.T @ (lam @ np.concatenate([force, torque]))
        joint_kv = 2.0 * np.sqrt(JOINT_KP)
        tau += nullspace.T @ (mass_matrix @ (JOINT_KP * (self.reset_joints - q) - joint_kv * qd))
        if ee_pos[0] >= self.position_limits[0, 1] and self.goal_pos[0] - ee_pos[0] <= -MAX_DX:
            tau[1] -= FAR_X_PUSH
            tau[3] -= FAR_X_PUSH
        return tau
