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


@dataclass(frozen=True)
class Hand:
    """One arm's observed gripper: eef position, wxyz orientation and the two finger positions."""

    pos: np.ndarray
    quat: np.ndarray
    gripper: np.ndarray

    @property
    def gap(self) -> float:
        return float(self.gripper[0] - self.gripper[1])


class ArmOperator:
    """One arm's operator: the phase of its plan, its skill, and what it remembers between steps (how long it has
    been in the phase, the last finger positions, the pause left). Experts hold one per arm and write their plans
    as phases of it, so every expert moves, grasps and hesitates the same way."""

    def __init__(self, skill: Skill, phase: str) -> None:
        self.skill = skill
        self.phase = phase
        self.steps = 0
        self.pause = 0
        self.last_gripper: np.ndarray | None = None

    def go(self, phase: str) -> None:
        self.phase = phase
        self.steps = 0

    def move(self, hand: Hand, target_pos: np.ndarray, target_quat: np.ndarray, grip: float,
             speed: float = 1.0) -> np.ndarray:
        """7-D proportional step toward a pose; the translation keeps its direction under the skill's speed cap."""
        pos = POS_GAIN * (target_pos - hand.pos) / POS_SCALE
        cap = speed * self.skill.speed
        largest = np.max(np.abs(pos))
        if largest > cap:
            pos *= cap / largest
        rot = np.clip(ROT_GAIN * rotation_error(target_quat, hand.quat) / ROT_SCALE, -1.0, 1.0)
        return np.concatenate([pos, rot, [grip]])

    def settled(self, hand: Hand) -> bool:
        """Fingers stopped moving (on the object or fully closed) after at least CLOSE_STEPS of closing."""
        moving = self.last_gripper is not None and abs(hand.gripper[0] - self.last_gripper[0]) > 5e-4
        return self.steps >= CLOSE_STEPS and not moving

    def record(self, hand: Hand, action: np.ndarray, rng: np.random.Generator) -> None:
        """After planning ``action`` for ``hand``: count the step, remember the fingers, and hesitate.

        A pause (2-8 steps, started with the skill's probability) zeroes the motion in ``action`` in place.
        """
        self.steps += 1
        self.last_gripper = hand.gripper
        if self.pause == 0 and rng.random() < self.skill.hesitation_prob:
            self.pause = int(rng.integers(2, 9))
        if self.pause > 0:
            action[:6] = 0.0
            self.pause -= 1


class OperatedExpert:
    """What every scripted expert shares: the noise level, the observation layout and one seeded generator for the
    skills, the hesitations and the action noise. Subclasses make their operators in ``reset`` and act from the
    observation; ``_with_noise`` is their last step."""

    def __init__(self, noise: float, seed: int, layout: dict[str, slice]) -> None:
        self.noise = float(noise)
        self.layout = layout
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def _with_noise(self, action: np.ndarray) -> np.ndarray:
        """``action`` plus Gaussian noise of std ``noise`` on every dim, clipped to the action box."""
        if self.noise > 0:
            action = action + self._rng.normal(0.0, self.noise, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
