"""The flat observation layout of the contract (docs/contracts.md), one place for every backend and the experts.

robomimic's low-dim keys in robomimic's order: ``object`` first (its width depends on the task), then the robot.
Inside ``object`` the first 7 numbers are always the object position and its xyzw quaternion, which is what the
scripted experts read, so they drive any backend that honours this layout.
"""
from __future__ import annotations

import numpy as np

TASKS: tuple[str, ...] = ("lift", "can", "square")

# lift: cube pos, cube quat, eef_pos - cube_pos. can / square: pos, quat, object pose in the eef frame (pos, quat).
OBJECT_DIMS: dict[str, int] = {"lift": 10, "can": 14, "square": 14}

ROBOT_KEYS: tuple[tuple[str, int], ...] = (
    ("robot0_eef_pos", 3),
    ("robot0_eef_quat", 4),
    ("robot0_gripper_qpos", 2),
)

# Sub-fields of the ``object`` block that are the same for all tasks.
OBJECT_POS = slice(0, 3)
OBJECT_QUAT = slice(3, 7)


def obs_layout(task: str) -> dict[str, slice]:
    """``{key: slice}`` into the flat observation of ``task``, in concatenation order."""
    if task not in OBJECT_DIMS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    layout = {"object": slice(0, OBJECT_DIMS[task])}
    start = OBJECT_DIMS[task]
    for key, size in ROBOT_KEYS:
        layout[key] = slice(start, start + size)
        start += size
    return layout


def object_features(task: str, obj_pos: np.ndarray, obj_quat: np.ndarray, eef_pos: np.ndarray,
                    eef_quat: np.ndarray) -> np.ndarray:
    """The ``object`` block of ``task`` from world poses (quaternions wxyz).

    lift: cube pos, cube quat, gripper_to_cube_pos = eef - cube (robosuite <= 1.4 sign). can / square: pos, quat,
    then the object pose in the eef frame (pos, quat), as robomimic's object-state observables.
    """
    # imported here: `import inril_sim` registers env ids without loading MuJoCo (rotations uses its C helpers)
    from inril_sim.rotations import quat_conj, quat_mul, quat_to_mat, wxyz_to_xyzw

    if task == "lift":
        return np.concatenate([obj_pos, wxyz_to_xyzw(obj_quat), eef_pos - obj_pos])
    if task not in OBJECT_DIMS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    rel_pos = quat_to_mat(eef_quat).T @ (obj_pos - eef_pos)
    rel_quat = quat_mul(quat_conj(eef_quat), obj_quat)
    return np.concatenate([obj_pos, wxyz_to_xyzw(obj_quat), rel_pos, wxyz_to_xyzw(rel_quat)])


def flat_observation(task: str, obj_pos: np.ndarray, obj_quat: np.ndarray, eef_pos: np.ndarray,
                     eef_quat: np.ndarray, gripper_qpos: np.ndarray) -> np.ndarray:
    """The policy's float32 observation from world poses (quaternions wxyz) and the two finger positions.

    One definition for the simulated envs and for a policy server that assembles the same vector from ROS
    messages (end-effector pose, object poses, gripper joint states), so the two cannot disagree.
    """
    from inril_sim.rotations import wxyz_to_xyzw

    objects = object_features(task, obj_pos, obj_quat, eef_pos, eef_quat)
    return np.concatenate([objects, eef_pos, wxyz_to_xyzw(eef_quat), gripper_qpos]).astype(np.float32)
