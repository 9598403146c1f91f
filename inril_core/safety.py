"""The action filter every command to the arm passes, in sim and on the real robot (pure functions, numpy only).

Two action conventions (docs/contracts.md), named by ``SafetyLimits.rotation``:

- ``axis_angle`` (robosuite's OSC_POSE delta; lift, can, square): ``a[:3]`` translation and ``a[3:6]`` axis-angle
  rotation, each scaled to [-1, 1] (``pos_scale_m`` metres and ``rot_scale_rad`` radians per unit), ``a[6]`` the
  gripper (+1 close, -1 open, 0 leaves it as it is).
- ``quaternion`` (FurnitureBench's delta pose; furniture/*): ``a[:3]`` translation in metres (``pos_scale_m`` 1),
  ``a[3:7]`` a delta quaternion (x, y, z, w) multiplied onto the end-effector orientation, ``a[7]`` the gripper
  (a sign flip beyond a small margin toggles it; 0 leaves it as it is).

The filter only ever *removes* motion: it refuses NaN/Inf (the arm holds), clips to the action bounds, keeps the
end-effector inside the task's workspace box and limits the translation and rotation of one control step. What it
changed is reported, so the executor can count and log it.

The limits live in ``config/safety.yaml`` (per-task workspace boxes and convention), loaded with
:func:`load_limits`. The scales are fields here rather than imports of ``inril_sim`` because the core never imports
the simulator (DESIGN.md §2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

POS = slice(0, 3)
SAFETY_FILE = "safety.yaml"
# The components of each convention's action vector: JointTrajectory.joint_names of the graph's chunks and commands.
ACTION_NAMES: dict[str, tuple[str, ...]] = {
    "axis_angle": ("dx", "dy", "dz", "drx", "dry", "drz", "gripper"),
    "quaternion": ("dx", "dy", "dz", "qx", "qy", "qz", "qw", "gripper"),
}


@dataclass(frozen=True)
class SafetyLimits:
    """Limits of one task's arm commands; every length in metres, every angle in radians."""
    workspace_min_m: np.ndarray      # (3,) lowest end-effector position the arm may be sent to
    workspace_max_m: np.ndarray      # (3,) highest
    max_step_m: float                # largest translation of one control step
    max_rotation_rad: float          # largest rotation (angle of the rotation vector) of one control step
    pos_scale_m: float               # metres of translation per unit action (robosuite OSC_POSE: 0.05)
    rot_scale_rad: float             # radians of rotation per unit action (robosuite OSC_POSE: 0.5)
    action_low: float = -1.0         # bounds of every action component
    action_high: float = 1.0
    rotation: str = "axis_angle"     # the action convention (module docstring): axis_angle | quaternion

    def __post_init__(self) -> None:
        if self.rotation not in ACTION_NAMES:
            raise ValueError(f"rotation must be one of {', '.join(ACTION_NAMES)}, got {self.rotation!r}")
        low, high = (np.asarray(v, dtype=np.float64) for v in (self.workspace_min_m, self.workspace_max_m))
        if low.shape != (3,) or high.shape != (3,) or not (low < high).all():
            raise ValueError(f"workspace box must be two (3,) corners with min < max, got {low} and {high}")
        for name in ("max_step_m", "max_rotation_rad", "pos_scale_m", "rot_scale_rad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"safety limit {name} must be > 0, got {getattr(self, name)}")
        if not self.action_low < 0 < self.action_high:
            raise ValueError(f"action bounds must enclose 0 (the hold action), got [{self.action_low}, "
                             f"{self.action_high}]")
        object.__setattr__(self, "workspace_min_m", low)
        object.__setattr__(self, "workspace_max_m", high)

    @property
    def action_names(self) -> tuple[str, ...]:
        return ACTION_NAMES[self.rotation]

    @property
    def act_dim(self) -> int:
        return len(self.action_names)

    @property
    def rot(self) -> slice:
        """The rotation's components: axis-angle (3) or quaternion (4)."""
        return slice(3, 6) if self.rotation == "axis_angle" else slice(3, 7)


@dataclass
class FilterReport:
    """What :func:`filter_action` did to one action; all False (and ``reason`` empty) when it passed untouched."""
    rejected: bool = False            # NaN/Inf: replaced by the hold action
    reason: str = ""                  # why it was rejected
    clipped: bool = False             # a component was outside the action bounds
    workspace_clipped: bool = False   # the translation would have left (or gone further out of) the workspace box
    step_scaled: bool = False         # the translation was longer than max_step_m
    rotation_scaled: bool = False     # the rotation was larger than max_rotation_rad
    changes: list[str] = field(default_factory=list)  # one line per change, for logs

    @property
    def changed(self) -> bool:
        return self.rejected or self.clipped or self.workspace_clipped or self.step_scaled or self.rotation_scaled


def hold_action(rotation: str = "axis_angle") -> np.ndarray:
    """Zero motion and gripper 0 (left as it is) in the action convention ``rotation``: what the arm does when there
    is nothing safe to do. Zero rotation is the identity quaternion (0, 0, 0, 1) in a quaternion action."""
    hold = np.zeros(len(ACTION_NAMES[rotation]))
    if rotation == "quaternion":
        hold[6] = 1.0
    return hold


def filter_action(action: np.ndarray, eef_pos: np.ndarray, limits: SafetyLimits) -> tuple[np.ndarray, FilterReport]:
    """The safe version of ``action`` for an end-effector at ``eef_pos``, and a report of what changed.

    A wrong shape is a programming error and raises ValueError; a NaN/Inf action or position is data and gives the
    hold action with ``report.rejected``. An action that needs no change comes back bit-identical (as float64).
    Inside the workspace the step never leaves it; an end-effector already outside (after a disturbance) may move
    back or along the box but not further out, so the filter never adds motion the policy did not ask for.
    """
    action = np.asarray(action)
    eef_pos = np.asarray(eef_pos)
    if action.shape != (limits.act_dim,):
        raise ValueError(f"action must have shape ({limits.act_dim},) ({', '.join(limits.action_names)}), got "
                         f"{action.shape}")
    if eef_pos.shape != (3,):
        raise ValueError(f"eef_pos must have shape (3,) (x, y, z in metres), got {eef_pos.shape}")
    report = FilterReport()
    if not np.isfinite(action).all():
        report.rejected, report.reason = True, f"action has NaN/Inf: {action.tolist()}"
    elif not np.isfinite(eef_pos).all():
        report.rejected, report.reason = True, f"end-effector position has NaN/Inf: {eef_pos.tolist()}"
    if report.rejected:
        report.changes.append(report.reason)
        return hold_action(limits.rotation), report

    safe = action.astype(np.float64, copy=True)
    if ((safe < limits.action_low) | (safe > limits.action_high)).any():
        safe = np.clip(safe, limits.action_low, limits.action_high)
        report.clipped = True
        report.changes.append(f"clipped to [{limits.action_low}, {limits.action_high}]")
    _limit_workspace(safe, eef_pos.astype(np.float64), limits, report)
    _limit_norm(safe, POS, limits.max_step_m / limits.pos_scale_m, report, "step_scaled",
                f"translation scaled to {limits.max_step_m} m")
    if limits.rotation == "axis_angle":
        _limit_norm(safe, limits.rot, limits.max_rotation_rad / limits.rot_scale_rad, report, "rotation_scaled",
                    f"rotation scaled to {limits.max_rotation_rad} rad")
    else:
        _limit_quaternion(safe, limits, report)
    return safe, report


def _limit_workspace(safe: np.ndarray, eef_pos: np.ndarray, limits: SafetyLimits, report: FilterReport) -> None:
    """Shorten, per axis, a translation that would end outside the box (or further outside than it starts)."""
    low = np.minimum(limits.workspace_min_m, eef_pos)
    high = np.maximum(limits.workspace_max_m, eef_pos)
    target = eef_pos + limits.pos_scale_m * safe[POS]
    outside = (target < low) | (target > high)
    if outside.any():
        clipped = (np.clip(target, low, high) - eef_pos) / limits.pos_scale_m
        safe[POS] = np.where(outside, clipped, safe[POS])
        report.workspace_clipped = True
        report.changes.append(f"translation clipped to the workspace on axes {np.flatnonzero(outside).tolist()}")


def _limit_norm(safe: np.ndarray, part: slice, max_norm: float, report: FilterReport, flag: str, note: str) -> None:
    """Scale ``safe[part]`` down to ``max_norm`` (in action units), keeping its direction."""
    norm = float(np.linalg.norm(safe[part]))
    if norm > max_norm:
        safe[part] *= max_norm / norm
        setattr(report, flag, True)
        report.changes.append(note)


def _limit_quaternion(safe: np.ndarray, limits: SafetyLimits, report: FilterReport) -> None:
    """Normalise the delta quaternion and shorten its rotation to ``max_rotation_rad`` about the same axis.

    A quaternion too short to have a direction (after clipping) asks for no defined rotation: the identity is
    sent, flagged as a rejected rotation rather than guessed."""
    quat = safe[limits.rot]
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        safe[limits.rot] = hold_action(limits.rotation)[limits.rot]
        report.rotation_scaled = True
        report.changes.append(f"delta quaternion {quat.tolist()} has no direction: no rotation sent")
        return
    quat = quat / norm
    if quat[3] < 0:
        quat = -quat  # the same rotation; w >= 0 gives the short way round
    angle = 2.0 * float(np.arctan2(np.linalg.norm(quat[:3]), quat[3]))
    if angle > limits.max_rotation_rad:
        half = limits.max_rotation_rad / 2
        quat = np.concatenate([quat[:3] / np.linalg.norm(quat[:3]) * np.sin(half), [np.cos(half)]])
        report.rotation_scaled = True
        report.changes.append(f"rotation scaled to {limits.max_rotation_rad} rad")
    safe[limits.rot] = quat


def load_limits(task: str, path: str | Path | None = None) -> SafetyLimits:
    """The limits of ``task`` (``lift``, ``can@robosuite``, ...) from ``path`` (default config/safety.yaml).

    A missing file, a task without a workspace box or a missing key raises ValueError naming the file and the fix.
    """
    if path is None:
        from inril_core.config import config_dir

        path = config_dir() / SAFETY_FILE
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"safety limits {path} cannot be read: {exc}") from exc
    name = task.partition("@")[0]  # another backend of a task shares its scene and so its box
    boxes = (data or {}).get("workspace", {})
    if name not in boxes:
        raise ValueError(f"{path} has no workspace box for task '{name}' (has {sorted(boxes)}): add "
                         f"workspace.{name}.min_m / max_m")
    entry = {**data, **boxes[name]}  # a task's entry may override any top-level limit (its action convention)
    try:
        return SafetyLimits(
            workspace_min_m=np.asarray(entry["min_m"], dtype=np.float64),
            workspace_max_m=np.asarray(entry["max_m"], dtype=np.float64),
            max_step_m=float(entry["max_step_m"]),
            max_rotation_rad=float(entry["max_rotation_rad"]),
            pos_scale_m=float(entry["pos_scale_m"]),
            rot_scale_rad=float(entry["rot_scale_rad"]),
            action_low=float(entry["action_low"]),
            action_high=float(entry["action_high"]),
            rotation=str(entry.get("rotation", "axis_angle")),
        )
    except KeyError as exc:
        raise ValueError(f"{path} lacks the key {exc.args[0]!r} (see the comments in config/safety.yaml)") from exc
