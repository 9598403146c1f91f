"""FurnitureSim's world layout and coordinate frames, computed from furniture_bench's own config.

FurnitureSim (``envs/furniture_sim_env.py:create_envs``) places a 3 cm table whose centre is at z = 0.4, the Panda's
base 1.5 cm (``ROBOT_HEIGHT``, the bench clamp) above the table surface at x = -0.3, and the AprilTag base frame at
``config["robot"]["tag_base_from_robot_base"]`` from the robot base. Part poses are observed in the AprilTag frame
(its z points down into the table), the end-effector in the robot-base frame. Those placements live in code that
imports IsaacGym, so the few literal numbers below are read off that function; everything furniture_bench exposes
without IsaacGym (ROBOT_HEIGHT, the tag transform, reset joints, limits) is imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mujoco
import numpy as np

from inril_sim.rotations import canonical_xyzw, quat_to_mat

TABLE_CENTRE_Z = 0.4        # create_envs: table_pos.z
TABLE_HALF_THICKNESS = 0.015  # create_envs: table_half_width (table.obj spans z in [-0.015, 0.015])
TABLE_SURFACE_Z = TABLE_CENTRE_Z + TABLE_HALF_THICKNESS
OBSTACLE_FRONT_X = 0.37 + 0.01  # in front of the base tag (create_envs)
OBSTACLE_SIDE_X = OBSTACLE_FRONT_X - 0.075
OBSTACLE_SIDE_Y = 0.175


@dataclass(frozen=True)
class Frames:
    """Homogeneous transforms between FurnitureSim's world (``sim``), robot base and AprilTag base frames."""
    robot_base_in_sim: np.ndarray   # franka_from_origin_mat
    april_in_robot: np.ndarray      # tag_base_from_robot_base
    reset_joints: np.ndarray
    ee_position_limits: np.ndarray  # (3, 2) OSC goal clipping, robot-base frame

    @property
    def april_in_sim(self) -> np.ndarray:
        return self.robot_base_in_sim @ self.april_in_robot

    @property
    def sim_to_april(self) -> np.ndarray:
        return np.linalg.inv(self.april_in_sim)

    @property
    def base_tag_position(self) -> np.ndarray:
        """Where FurnitureSim puts the base-tag board: at the tag frame's x, y on the table surface."""
        return np.array([*self.april_in_sim[:2, 3], TABLE_SURFACE_Z])


@lru_cache(maxsize=1)
def furniture_frames() -> Frames:
    """The frames of FurnitureSim's scene, from furniture_bench's config (imported, not copied)."""
    from furniture_bench.config import ROBOT_HEIGHT, config

    base = np.eye(4)
    base[:3, 3] = (-0.5 * 0.8 + 0.1, 0.0, TABLE_SURFACE_Z + ROBOT_HEIGHT)  # create_envs: franka_pose.p
    robot = config["robot"]
    return Frames(robot_base_in_sim=base, april_in_robot=np.asarray(robot["tag_base_from_robot_base"], float),
                  reset_joints=np.asarray(robot["reset_joints"], float),
                  ee_position_limits=np.asarray(robot["position_limits"], float))


def pose_to_mat(pos: np.ndarray, quat_wxyz: np.ndarray) -> np.ndarray:
    """4x4 transform from a position and a MuJoCo (w, x, y, z) quaternion."""
    mat = np.eye(4)
    mat[:3, :3] = quat_to_mat(quat_wxyz)
    mat[:3, 3] = pos
    return mat


def mat_to_pose_xyzw(mat: np.ndarray) -> np.ndarray:
    """Position and (x, y, z, w) quaternion with w >= 0 (FurnitureBench's convention) of a 4x4 transform."""
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat[:3, :3]).reshape(-1))
    return np.concatenate([mat[:3, 3], canonical_xyzw(quat)])
