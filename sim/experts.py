"""Scripted experts for Lift, Can and Square that read only the flat observation (docs/contracts.md); Transport's
two-arm expert is in ``transport_expert``, and ``make_expert`` makes either.

Each expert is a waypoint state machine over the observation layout (``layout.obs_layout``): approach above the
grasp point with the fingers across the object, descend, close, lift, then (Can) carry over the goal bin and
drop, or (Square) carry the nut over the peg, square it up and lower it. It re-plans from the observation every
step and goes back to the approach when the object is not in the hand, so it drives the fast tasks and the
robosuite versions alike, and recovers from slips.

``noise`` makes demos of mixed quality, like robomimic's multi-human sets: Gaussian noise of std ``noise`` on all
seven action dims, and, for noise > 0, a per-episode operator "skill" (``arm_operator``): a lower speed limit, a
grasp point off the ideal one, and occasional hesitations (the hand holds still for a few steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from inril_sim.arm_operator import (
    CLOSE,
    OPEN,
    XY_TOLERANCE,
    ArmOperator,
    Hand,
    OperatedExpert,
    align_yaw,
    down_at_yaw,
    draw_skill,
)
from inril_sim.layout import OBJECT_POS, OBJECT_QUAT, TASKS, obs_layout
from inril_sim.rotations import quat_to_mat, rotation_error, wrap_angle, xyzw_to_wxyz, yaw_of
from inril_sim.tasks import (
    BIN_WALL_TOP,
    CAN_GOAL_CENTER,
    CAN_HALF_HEIGHT,
    PEG_POS,
    PEG_TOP,
    SQUARE_TABLE_TOP,
)
from inril_sim.transport_expert import TransportExpert

LOWER_SPEED = 0.4  # translation cap while lowering the nut onto the peg
PEG_XY_TOLERANCE = 0.004  # nut centre to peg axis before lowering; the hole clears the peg by 6.75 mm a side
# Grasp the nut handle (x in [0.029, 0.079] of the nut frame) outboard of its centre (0.054): the Panda's fingers
# are ~2 cm wide and the ring's outer edge is at 0.044, so the centre leaves no room for a 1 cm error.
GRASP_ALONG_HANDLE = 0.062
SQUARE_HANDLE_HEADINGS = (np.pi / 2, np.pi, -np.pi / 2)  # nut yaws that put the handle toward the robot or aside


@dataclass(frozen=True)
class View:
    """The observation fields the experts use, with quaternions as wxyz."""

    obj_pos: np.ndarray
    obj_quat: np.ndarray
    hand: Hand


class Expert(OperatedExpert):
    """Waypoint state machine shared by the three tasks; subclasses define ``_plan``."""

    def reset(self) -> None:
        """Start a new episode: fresh phase and a freshly drawn operator skill."""
        self.op = ArmOperator(draw_skill(self._rng, self.noise), "approach")

    def _view(self, obs: np.ndarray) -> View:
        objects = obs[self.layout["object"]].astype(np.float64)
        return View(
            obj_pos=objects[OBJECT_POS],
            obj_quat=xyzw_to_wxyz(objects[OBJECT_QUAT]),
            hand=Hand(obs[self.layout["robot0_eef_pos"]].astype(np.float64),
                      xyzw_to_wxyz(obs[self.layout["robot0_eef_quat"]].astype(np.float64)),
                      obs[self.layout["robot0_gripper_qpos"]].astype(np.float64)),
        )

    def _plan(self, v: View) -> np.ndarray:
        raise NotImplementedError

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The 7-D action for ``obs``: the plan, then this episode's hesitations and the Gaussian noise."""
        v = self._view(obs)
        action = self._plan(v)
        self.op.record(v.hand, action, self._rng)
        return self._with_noise(action)


class PickExpert(Expert):
    """Approach, descend, close and lift, shared by all tasks; subclasses say where to grasp and what follows.

    ``_grasp_point`` is where the eef should be when the fingers close, ``_grasp_quat`` its orientation.
    After the lift, ``_after_lift`` takes over; a dropped object sends the machine back to ``approach``.
    """

    approach_height = 0.06  # above the grasp point
    lift_z: float  # eef height at the end of the lift

    def _grasp_point(self, v: View) -> np.ndarray:
        return v.obj_pos + self.op.skill.grasp_offset

    def _grasp_quat(self, v: View) -> np.ndarray:
        raise NotImplementedError

    def _holding(self, v: View) -> bool:
        """The object is between the fingers: close to the eef and the fingers are not shut on nothing."""
        near = np.linalg.norm(self._grasp_point(v) - v.hand.pos) < 0.03
        return bool(near and v.hand.gripper[0] - v.hand.gripper[1] > 0.01)

    def _after_lift(self, v: View) -> np.ndarray:
        raise NotImplementedError

    def _plan(self, v: View) -> np.ndarray:
        grasp = self._grasp_point(v)
        xy_error = np.linalg.norm(grasp[:2] - v.hand.pos[:2])
        if self.op.phase == "approach":
            above = grasp + np.array([0.0, 0.0, self.approach_height])
            quat = self._grasp_quat(v)
            aligned = np.linalg.norm(rotation_error(quat, v.hand.quat)) < 0.1
            if xy_error < XY_TOLERANCE and abs(above[2] - v.hand.pos[2]) < 0.02 and aligned and v.hand.gripper[0] > 0.035:
                self.op.go("descend")
            return self.op.move(v.hand, above, quat, OPEN)
        if self.op.phase == "descend":
            if xy_error < XY_TOLERANCE and abs(grasp[2] - v.hand.pos[2]) < 0.008:
                self.op.go("grasp")
            # Descend only while centred: robosuite's arm drifts sideways on fast vertical moves, and fingers
            # landing off-centre tilt the object instead of closing around it.
            z = grasp[2] if xy_error < 2 * XY_TOLERANCE else v.hand.pos[2]
            return self.op.move(v.hand, np.array([grasp[0], grasp[1], z]), self._grasp_quat(v), OPEN)
        if self.op.phase == "grasp":
            if self.op.settled(v.hand):
                self.op.go("lift" if self._holding(v) else "approach")
            return self.op.move(v.hand, v.hand.pos, v.hand.quat, CLOSE)
        if not self._holding(v):  # dropped or slipped: back off upwards and start over
            self.op.go("approach")
            return self.op.move(v.hand, v.hand.pos + np.array([0.0, 0.0, 0.05]), v.hand.quat, OPEN)
        if self.op.phase == "lift":
            if v.hand.pos[2] > self.lift_z - 0.02:
                self.op.go("transport")
            return self.op.move(v.hand, np.array([v.hand.pos[0], v.hand.pos[1], self.lift_z]), v.hand.quat, CLOSE)
        return self._after_lift(v)


class LiftExpert(PickExpert):
    """Grasp the cube across two faces and raise it; the env ends the episode once it is 4 cm up."""

    lift_z = 1.0

    def _grasp_quat(self, v: View) -> np.ndarray:
        return align_yaw(v.hand.quat, yaw_of(v.obj_quat), np.pi / 2)

    def _after_lift(self, v: View) -> np.ndarray:
        return self.op.move(v.hand, v.hand.pos + np.array([0.0, 0.0, 0.05]), v.hand.quat, CLOSE)


class CanExpert(PickExpert):
    """Grasp the can round its middle, carry it above the wall of bin2's goal quarter, drop it, back off."""

    approach_height = 0.08
    lift_z = BIN_WALL_TOP + CAN_HALF_HEIGHT + 0.08
    drop_z = BIN_WALL_TOP + CAN_HALF_HEIGHT + 0.01

    def _grasp_quat(self, v: View) -> np.ndarray:
        return down_at_yaw(yaw_of(v.hand.quat))

    def _after_lift(self, v: View) -> np.ndarray:
        goal = np.array([CAN_GOAL_CENTER[0], CAN_GOAL_CENTER[1], self.lift_z])
        if self.op.phase == "transport":
            if np.linalg.norm(goal[:2] - v.obj_pos[:2]) < 0.02:
                self.op.go("lower")
            return self.op.move(v.hand, goal + v.hand.pos - v.obj_pos, v.hand.quat, CLOSE)
        if v.hand.pos[2] > self.drop_z + 0.01:
            return self.op.move(v.hand, np.array([goal[0], goal[1], self.drop_z]) + v.hand.pos - v.obj_pos, v.hand.quat, CLOSE)
        return self.op.move(v.hand, v.hand.pos, v.hand.quat, OPEN)


class SquareExpert(PickExpert):
    """Grasp the nut's handle, carry the nut over the peg, turn it square to the peg and lower it on."""

    lift_z = PEG_TOP + 0.06  # nut bottom 5 cm above the peg top while carried: the arm sags on fast moves
    seat_z = SQUARE_TABLE_TOP + 0.01  # nut centre resting on the table around the peg
    max_lower_steps = 40  # lowering this long without seating means the nut is stuck on the peg top

    def _grasp_point(self, v: View) -> np.ndarray:
        handle = quat_to_mat(v.obj_quat) @ np.array([GRASP_ALONG_HANDLE, 0.0, 0.0])
        return v.obj_pos + handle + self.op.skill.grasp_offset

    def _grasp_quat(self, v: View) -> np.ndarray:
        return align_yaw(v.hand.quat, yaw_of(v.obj_quat), np.pi)

    def _squared_quat(self, v: View) -> np.ndarray:
        """Hand orientation that turns the held nut square to the peg, its handle not pointing away (+x).

        The peg's symmetry allows any multiple of 90 degrees, but with the handle on the far side the hand would
        have to be 5 cm beyond the peg, out of robosuite's Panda's reach at that height.
        """
        nut_yaw = yaw_of(v.obj_quat)
        turn = min((wrap_angle(heading - nut_yaw) for heading in SQUARE_HANDLE_HEADINGS), key=abs)
        return down_at_yaw(yaw_of(v.hand.quat) + turn)

    def _after_lift(self, v: View) -> np.ndarray:
        offset = np.array([PEG_POS[0], PEG_POS[1], 0.0]) - np.array([v.obj_pos[0], v.obj_pos[1], 0.0])
        quat = self._squared_quat(v)
        xy_error = np.linalg.norm(offset)
        if self.op.phase == "transport":
            aligned = np.linalg.norm(rotation_error(quat, v.hand.quat)) < 0.05
            if xy_error < PEG_XY_TOLERANCE and aligned:
                self.op.go("lower")
            return self.op.move(v.hand, np.array([v.hand.pos[0], v.hand.pos[1], self.lift_z]) + offset, quat, CLOSE)
        if self.op.steps > self.max_lower_steps:
            self.op.go("transport")
        # Lower slowly (robosuite's arm drifts sideways on fast vertical moves) and only while centred; off
        # centre, back up a little so the nut is not dragged across the peg top.
        if xy_error > 2 * XY_TOLERANCE:
            target_z = v.hand.pos[2] + 0.01
        else:
            target_z = v.hand.pos[2] + (self.seat_z - v.obj_pos[2])
        target = np.array([v.hand.pos[0], v.hand.pos[1], target_z]) + offset
        return self.op.move(v.hand, target, quat, CLOSE, speed=LOWER_SPEED)


class ScriptedExpert(Protocol):
    """What demos and parity runs need of an expert, one arm or two."""

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


_EXPERTS: dict[str, type[PickExpert] | type[TransportExpert]] = {
    "lift": LiftExpert, "can": CanExpert, "square": SquareExpert, "transport": TransportExpert,
}


def make_expert(task: str, noise: float, seed: int, layout: dict[str, slice] | None = None) -> ScriptedExpert:
    """The scripted expert for ``task``; ``layout`` defaults to the contract layout shared by both backends.
    FurnitureBench tasks (``furniture/<name>``) get furniture_bench's own state machines (``furniture.expert``)."""
    if task.startswith("furniture/"):
        from inril_sim.furniture.expert import FurnitureExpert

        return FurnitureExpert(task.split("/", 1)[1], seed=seed, noise=noise)
    if task not in _EXPERTS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return _EXPERTS[task](noise, seed, layout if layout is not None else obs_layout(task))
