"""The flat observation layout of the contract (docs/contracts.md), one place for every backend and the experts.

robomimic's low-dim keys in robomimic's order: ``object`` first (its width depends on the task), then each robot
(Transport has two, ``robot0_*`` then ``robot1_*``). Inside ``object`` the first 7 numbers are always the (first)
object's position and its xyzw quaternion; Transport's ``object`` block is laid out in
``TRANSPORT_OBJECT_LAYOUT``. The scripted experts read fields only through these layouts, so they drive any backend
that honours them.
"""
from __future__ import annotations

import numpy as np

TASKS: tuple[str, ...] = ("lift", "can", "square", "transport")

# lift: cube pos, cube quat, eef_pos - cube_pos. can / square: pos, quat, object pose in the eef frame (pos, quat).
# transport: TRANSPORT_OBJECT_KEYS.
OBJECT_DIMS: dict[str, int] = {"lift": 10, "can": 14, "square": 14, "transport": 41}
N_ARMS: dict[str, int] = {"lift": 1, "can": 1, "square": 1, "transport": 2}


def robot_keys(arm: int) -> tuple[tuple[str, int], ...]:
    """robomimic's proprioceptive keys of robot ``arm`` and their widths, in observation order."""
    return ((f"robot{arm}_eef_pos", 3), (f"robot{arm}_eef_quat", 4), (f"robot{arm}_gripper_qpos", 2))


ROBOT_KEYS: tuple[tuple[str, int], ...] = robot_keys(0)

# robomimic's TwoArmTransport ``object`` vector: robosuite <= 1.4's object observables in their order (robomimic's
# datasets, DPPO's and Diffusion Policy's obs_dim 59 = 41 + 2 x 9). Quaternions xyzw, w >= 0 (robosuite's mat2quat);
# ``gripper{i}_to_X`` = X_pos - robot{i}_eef_pos; the two flags are robosuite's contact tests (1.0 / 0.0).
# robosuite 1.5 moved the two flags before the four gripper-relative vectors; robomimic's order is kept here.
TRANSPORT_OBJECT_KEYS: tuple[tuple[str, int], ...] = (
    ("payload_pos", 3),
    ("payload_quat", 4),
    ("trash_pos", 3),
    ("trash_quat", 4),
    ("lid_handle_pos", 3),
    ("lid_handle_quat", 4),
    ("target_bin_pos", 3),
    ("trash_bin_pos", 3),
    ("gripper0_to_payload", 3),
    ("gripper0_to_lid_handle", 3),
    ("gripper1_to_payload", 3),
    ("gripper1_to_trash", 3),
    ("payload_in_target_bin", 1),
    ("trash_in_trash_bin", 1),
)


def _consecutive(keys: tuple[tuple[str, int], ...], start: int = 0) -> dict[str, slice]:
    layout = {}
    for key, size in keys:
        layout[key] = slice(start, start + size)
        start += size
    return layout


# Slices into Transport's ``object`` block, which starts the observation, so they index the flat vector too.
TRANSPORT_OBJECT_LAYOUT: dict[str, slice] = _consecutive(TRANSPORT_OBJECT_KEYS)

# Sub-fields of the ``object`` block that are the same for all tasks.
OBJECT_POS = slice(0, 3)
OBJECT_QUAT = slice(3, 7)


def obs_layout(task: str) -> dict[str, slice]:
    """``{key: slice}`` into the flat observation of ``task``, in concatenation order."""
    if task not in OBJECT_DIMS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    robots = tuple(key for arm in range(N_ARMS[task]) for key in robot_keys(arm))
    return {"object": slice(0, OBJECT_DIMS[task]), **_consecutive(robots, OBJECT_DIMS[task])}


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
    if task not in ("can", "square"):
        raise ValueError(f"task {task!r} has no single-object features; expected lift, can or square")
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

    # the same robot part as robots_observation, concatenated in one go: this runs every step of the fast tasks
    objects = object_features(task, obj_pos, obj_quat, eef_pos, eef_quat)
    return np.concatenate([objects, eef_pos, wxyz_to_xyzw(eef_quat), gripper_qpos]).astype(np.float32)


def transport_object_features(*, payload_pos: np.ndarray, payload_quat: np.ndarray, trash_pos: np.ndarray,
                              trash_quat: np.ndarray, lid_handle_pos: np.ndarray, lid_handle_quat: np.ndarray,
                              target_bin_pos: np.ndarray, trash_bin_pos: np.ndarray, eef_pos: tuple[np.ndarray, ...],
                              payload_in_target_bin: bool, trash_in_trash_bin: bool) -> np.ndarray:
    """Transport's 41-D ``object`` block from world poses (quaternions wxyz) and the two eef positions.

    One definition for the fast env and the robosuite-backed env, so the two cannot disagree on order or signs.
    """
    from inril_sim.rotations import canonical_xyzw

    return np.concatenate([
        payload_pos, canonical_xyzw(payload_quat), trash_pos, canonical_xyzw(trash_quat),
        lid_handle_pos, canonical_xyzw(lid_handle_quat), target_bin_pos, trash_bin_pos,
        payload_pos - eef_pos[0], lid_handle_pos - eef_pos[0], payload_pos - eef_pos[1], trash_pos - eef_pos[1],
        [float(payload_in_target_bin), float(trash_in_trash_bin)],
    ])


def robots_observation(eef_pos: tuple[np.ndarray, ...], eef_quat: tuple[np.ndarray, ...],
                       gripper_qpos: tuple[np.ndarray, ...]) -> np.ndarray:
    """The robot part of the observation for any number of arms: per arm eef pos, eef quat (wxyz in, xyzw out) and
    the two finger positions, in arm order."""
    from inril_sim.rotations import wxyz_to_xyzw

    return np.concatenate([np.concatenate([p, wxyz_to_xyzw(q), g]) for p, q, g in zip(eef_pos, eef_quat, gripper_qpos)])
