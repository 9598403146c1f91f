"""The flat observation layout of the contract (docs/contracts.md), one place for every backend and the experts.

robomimic's low-dim keys in robomimic's order: ``object`` first (its width depends on the task), then the robot.
Inside ``object`` the first 7 numbers are always the object position and its xyzw quaternion, which is what the
scripted experts read, so they drive any backend that honours this layout.
"""
from __future__ import annotations

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
