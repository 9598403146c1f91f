"""How a scripted operator moves one arm: shared by the single-arm experts and the two-arm Transport expert.

An operator steers the hand proportionally toward a waypoint pose under a speed cap, closes the gripper until the
fingers settle, and, when ``noise > 0``, has a per-episode skill (lower speed limit, a grasp point off the ideal
one, occasional hesitations). Keeping these here means every expert, one arm or two, has the same noise model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inril_sim.base_env import POS_SCALE, ROT_SCALE
from inril_sim.rotations import axis_angle_to_quat, quat_mul, rotation_error, wrap_angle, yaw_of

OPEN, CLOSE = -1.0, 1.0
DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # wxyz: eef z axis pointing down, x axis along world x (yaw 0)
POS_GAIN = 3.0  # action per (position error / POS_SCALE); the goal is re-anchored every step, so > 1 is stable
ROT_GAIN = 2.0
CLOSE_STEPS = 6  # the gripper state needs 5 steps from open to meet a 4 cm object, one more to squeeze
XY_TOLERANCE = 0.005  # metres between eef and grasp point in the horizontal plane before and while descending


@dataclass(frozen=True)
class Skill:
    """The per-episode operator: how fast, how precise, how hesitant."""

    speed: float  # cap on the translation action magnitude
    grasp_offset: np.ndarray  # error of the chosen grasp point (metres, world frame)
    hesitation_prob: float  # chance per step of starting a pause


def draw_skill(rng: np.random.Generator, noise: float) -> Skill:
    """A fresh operator for an episode; noise 0 is the ideal one, and the spread saturates at noise 0.5."""
    if noise <= 0:
        return Skill(speed=1.0, grasp_offset=np.zeros(3), hesitation_prob=0.0)
    spread = min(1.0, noise / 0.5)
    return Skill(
        speed=float(rng.uniform(1.0 - 0.5 * spread, 1.0)),
        grasp_offset=rng.normal(0.0, 0.004 * spread, 3) * np.array([1.0, 1.0, 0.5]),
        hesitation_prob=0.03 * spread,
    )


def down_at_yaw(yaw: float) -> np.ndarray:
    """wxyz orientation pointing the fingers down with the eef x axis at heading ``yaw``."""
    return quat_mul(axis_angle_to_quat(np.array([0.0, 0.0, yaw])), DOWN)


def align_yaw(eef_quat: np.ndarray, object_yaw: float, symmetry: float) -> np.ndarray:
    """Down orientation whose yaw is the object's modulo ``symmetry``, closest to the current yaw."""
    current = yaw_of(eef_quat)
    return down_at_yaw(current + wrap_angle(object_yaw - current, symmetry))


def step_toward(eef_pos: np.ndarray, eef_quat: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray,
                grip: float, cap: float) -> np.ndarray:
    """7-D proportional step toward a pose; the translation keeps its direction under the cap ``cap``."""
    pos = POS_GAIN * (target_pos - eef_pos) / POS_SCALE
    largest = np.max(np.abs(pos))
    if largest > cap:
        pos *= cap / largest
    rot = np.clip(ROT_GAIN * rotation_error(target_quat, eef_quat) / ROT_SCALE, -1.0, 1.0)
    return np.concatenate([pos, rot, [grip]])


def fingers_settled(gripper: np.ndarray, last_gripper: np.ndarray | None, steps_closing: int) -> bool:
    """Fingers stopped moving (on the object or fully closed) after at least CLOSE_STEPS of closing."""
    moving = last_gripper is not None and abs(gripper[0] - last_gripper[0]) > 5e-4
    return steps_closing >= CLOSE_STEPS and not moving


def hesitate(action: np.ndarray, pause: int, probability: float, rng: np.random.Generator) -> int:
    """An operator's pauses: may start one (2-8 steps), zeroes the motion in ``action`` in place while it lasts.

    Returns the steps of pause left after this one.
    """
    if pause == 0 and rng.random() < probability:
        pause = int(rng.integers(2, 9))
    if pause > 0:
        action[:6] = 0.0
        return pause - 1
    return 0
