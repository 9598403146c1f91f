"""Scripted two-arm expert for robomimic Transport that reads only the flat observation (docs/contracts.md).

Two scripted operators (``arm_operator``), one per arm as in two-arm teleoperation, share a plan; each has its own
phase, skill and hesitations. The task's order:

- robot0 lifts the lid off the start bin by its handle and puts it down on its table beside the bin, picks the
  hammer by the near half of its handle, carries it to the handover point between the tables with the handle
  pointing at robot1, holds it there until robot1 has it, lets go and rises;
- robot1 meanwhile picks the trash cube out of the target bin and drops it into the trash bin, waits above the
  handover point, grasps the far half of the handle once robot0 holds the hammer still there, and once robot0's
  open hand is clear above it carries it over the target bin (turning it along x), lowers it and lets go.

The plan was tuned on both backends: the waypoints keep each Panda away from full stretch and from its own base
(see ``HANDLE_GRIP``, the lift, the turn before the handover, and the placing along x).

Every grasp is approach-above, descend, close until the fingers settle; a pick that ends with nothing between the
fingers, or an object that slips out while carried, sends that arm back to the approach. Coordination goes
through the two operators' phases (what one operator would tell the other) and the observation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inril_sim.arm_operator import (
    CLOSE,
    OPEN,
    XY_TOLERANCE,
    ArmOperator,
    Hand,
    OperatedExpert,
    align_yaw,
    draw_skill,
)
from inril_sim.layout import TRANSPORT_OBJECT_LAYOUT, robot_keys
from inril_sim.rotations import quat_to_mat, rotation_error, xyzw_to_wxyz, yaw_of
from inril_sim.transport import BIN_FLOOR, BIN_WALL_TOP, HEAD_HALF, START_BIN_XY, TABLE_TOP

CARRY_Z = BIN_WALL_TOP + 0.1  # eef height for moving held objects over bin walls (held ones hang <= 3 cm below)
INSIDE_BIN_APPROACH = CARRY_Z - BIN_FLOOR  # approach objects in bins from above the walls, then descend straight
# Where each arm holds the hammer handle: distance from the handle's centre toward robot1 (+y), for (robot0, robot1),
# by which robot the head points at. The hands are 12 cm apart and the handover puts them either side of the middle
# between the robots: a Panda holding the hammer 0.75 m from its base is near full stretch, and a few centimetres
# further its arm sags and drops it. When the head points at robot1, robot1 holds near the hammer's centre of mass
# (~4 cm toward the head), which keeps the hammer from pivoting in its fingers, and robot0 nearer the middle, where
# its Panda picks more precisely than close to its base.
HANDLE_GRIP = {"head_at_robot1": (-0.045, 0.075), "head_at_robot0": (-0.06, 0.06)}
# Panda's fingertips reach ~1 cm below its grip site: grasp objects on a bin floor at least this high above it.
FINGERTIP_CLEARANCE = 0.022
HANDOVER_Z = CARRY_Z - 0.03  # grip height during the handover: the Panda's wrist about level with its shoulder
HANDOVER_TOLERANCE = 0.01  # handle centre to handover point (m) before robot0 calls the hammer ready
TURN_NEAR_HANDOVER = 0.15  # robot0 turns the handle along y within this distance (m) of the handover point
LID_DROP_XY = np.array([-START_BIN_XY[0], START_BIN_XY[1]])  # the free half of robot0's table
LID_RELEASE_Z = TABLE_TOP + 0.05  # lid handle height when robot0 lets go (plate ~1.5 cm above the table)
TRASH_RELEASE_Z = BIN_FLOOR + 0.1  # cube centre height over the trash bin when robot1 drops it
PAYLOAD_RELEASE_CLEARANCE = 0.02  # hammer lowered to this height above its resting height before release
# The hammer spans -0.1 (handle end) to 0.1 + 2 * HEAD_HALF (head) along its axis: centre that span in the bin.
PAYLOAD_SPAN_CENTRE = HEAD_HALF
OPEN_GAP = 0.07  # finger gap (m) that counts as fully open (the fingers open to 0.08)
HOLD_GAP = 0.01  # fingers closed on something rather than on nothing
REACHED = 0.015  # position error (m) at which a carry or lower phase is done
CLEAR_ABOVE = 0.08  # how far (m) robot0's open hand rises above the hammer before robot1 carries it away
HANG_REACH = 0.15  # a carried object hanging farther than this (m) from the closed fingers has been dropped
FUNNEL_SLOPE = 0.25  # extra horizontal error allowed while descending, per metre above the grasp point


@dataclass(frozen=True)
class TransportView:
    """The observation fields the expert uses, quaternions as wxyz."""

    payload_pos: np.ndarray
    payload_quat: np.ndarray
    trash_pos: np.ndarray
    trash_quat: np.ndarray
    lid_handle_pos: np.ndarray
    lid_handle_quat: np.ndarray
    target_bin_pos: np.ndarray
    trash_bin_pos: np.ndarray
    trash_in_trash_bin: bool
    hands: tuple[Hand, Hand]

    @property
    def handle_axis(self) -> np.ndarray:
        """Unit vector along the hammer handle, pointing to the head (the payload body's z axis)."""
        return quat_to_mat(self.payload_quat)[:, 2]


class _Operator(ArmOperator):
    """One arm's operator, with the pick every Transport stage starts with."""

    def pick(self, hand: Hand, grasp: np.ndarray, quat: np.ndarray, approach_height: float,
             then: str) -> np.ndarray:
        """Phases ``<stage>:approach`` / ``:descend`` / ``:grasp`` toward ``grasp``; goes to ``then`` holding it.

        Descends only while centred over the grasp point, more strictly the lower it gets (robosuite's arm drifts
        sideways on fast vertical moves), keeps steering to the grasp point while closing (under action noise
        the hand would otherwise wander off it), and starts over after a grasp that closed on nothing.
        """
        stage, step = self.phase.split(":")
        xy_error = np.linalg.norm(grasp[:2] - hand.pos[:2])
        if step == "approach":
            above = grasp + np.array([0.0, 0.0, approach_height])
            aligned = np.linalg.norm(rotation_error(quat, hand.quat)) < 0.1
            if xy_error < XY_TOLERANCE and abs(above[2] - hand.pos[2]) < 0.02 and aligned and hand.gap > OPEN_GAP:
                self.go(f"{stage}:descend")
            return self.move(hand, above, quat, OPEN)
        if step == "descend":
            if xy_error < XY_TOLERANCE and abs(grasp[2] - hand.pos[2]) < 0.008:
                self.go(f"{stage}:grasp")
            # a funnel: the higher above the grasp point, the further off centre the hand may still descend
            height = hand.pos[2] - grasp[2]
            z = grasp[2] if xy_error < 2 * XY_TOLERANCE + FUNNEL_SLOPE * max(0.0, height - 0.02) else hand.pos[2]
            if xy_error > 3 * XY_TOLERANCE and height < 0.04:
                z += 0.01  # off centre with the fingers at the object: back up rather than push it aside
            return self.move(hand, np.array([grasp[0], grasp[1], z]), quat, OPEN)
        if self.settled(hand):
            self.go(then if holding(hand, grasp) else f"{stage}:approach")
        # stay on the grasp point while the fingers close, turning nothing: on robosuite's arm a turn drags the grip
        # point along by centimetres
        return self.move(hand, grasp, hand.quat, CLOSE)


def holding(hand: Hand, grasp: np.ndarray) -> bool:
    """The object is between the fingers: its grasp point is near the eef and the fingers did not shut on nothing."""
    return bool(np.linalg.norm(grasp - hand.pos) < 0.03 and hand.gap > HOLD_GAP)


def handle_point(v: TransportView, arm: int) -> np.ndarray:
    """Where robot ``arm`` holds the handle (HANDLE_GRIP), kept clear of the bin floor while the hammer lies there."""
    axis = v.handle_axis
    head_at_robot1 = axis[1] > 0
    along = HANDLE_GRIP["head_at_robot1" if head_at_robot1 else "head_at_robot0"][arm]
    return clear_of_floor(v.payload_pos + axis * along * (1.0 if head_at_robot1 else -1.0))


def handover_point(v: TransportView) -> np.ndarray:
    """Where robot0 holds the handle's centre for the handover: the two grips either side of y = 0."""
    grips = HANDLE_GRIP["head_at_robot1" if v.handle_axis[1] > 0 else "head_at_robot0"]
    return np.array([0.0, -(grips[0] + grips[1]) / 2, HANDOVER_Z])


def clear_of_floor(grasp: np.ndarray) -> np.ndarray:
    """``grasp`` raised to FINGERTIP_CLEARANCE above the bins' floor (a no-op for objects out of the bins)."""
    return np.array([grasp[0], grasp[1], max(grasp[2], BIN_FLOOR + FINGERTIP_CLEARANCE)])


def approach_height(obj_pos: np.ndarray) -> float:
    """How far above its grasp point to approach an object: from above the walls when it lies in a bin."""
    return INSIDE_BIN_APPROACH if obj_pos[2] < BIN_WALL_TOP else 0.06


def rise_and_stay(op: _Operator, hand: Hand) -> np.ndarray:
    """An arm done with its part: fingers open, straight up (moving sideways, open fingers could catch the
    hammer's head) and stay there."""
    return op.move(hand, np.array([hand.pos[0], hand.pos[1], CARRY_Z + 0.1]), hand.quat, OPEN)


def handle_heading(v: TransportView) -> float:
    """Heading of the hammer handle (toward the head) in the horizontal plane."""
    return float(np.arctan2(v.handle_axis[1], v.handle_axis[0]))


def down_along(hand: Hand, heading: float) -> np.ndarray:
    """Down orientation with the eef x axis along ``heading`` or its opposite, whichever is closer."""
    return align_yaw(hand.quat, heading, np.pi)


class TransportExpert(OperatedExpert):
    """Two scripted operators doing robomimic Transport together; 14-D actions (robot0's 7, then robot1's).

    The single-arm experts' noise model (``arm_operator.OperatedExpert``): Gaussian noise of std
    ``noise`` on every action dim and, for noise > 0, a per-episode skill for each operator.
    """

    def reset(self) -> None:
        """Start a new episode: fresh phases and a freshly drawn skill for each operator (robot0's first)."""
        self._ops = (_Operator(draw_skill(self._rng, self.noise), "lid:approach"),
                     _Operator(draw_skill(self._rng, self.noise), "trash:approach"))

    @property
    def phases(self) -> tuple[str, str]:
        """Each arm's current phase, e.g. ("payload:carry", "handover:approach"): for logs and tests."""
        return self._ops[0].phase, self._ops[1].phase

    def _view(self, obs: np.ndarray) -> TransportView:
        objects = obs[self.layout["object"]].astype(np.float64)

        def field(key: str) -> np.ndarray:
            return objects[TRANSPORT_OBJECT_LAYOUT[key]]

        hands = []
        for arm in range(2):
            (pos, _), (quat, _), (gripper, _) = robot_keys(arm)
            hands.append(Hand(obs[self.layout[pos]].astype(np.float64),
                              xyzw_to_wxyz(obs[self.layout[quat]].astype(np.float64)),
                              obs[self.layout[gripper]].astype(np.float64)))
        return TransportView(
            payload_pos=field("payload_pos"), payload_quat=xyzw_to_wxyz(field("payload_quat")),
            trash_pos=field("trash_pos"), trash_quat=xyzw_to_wxyz(field("trash_quat")),
            lid_handle_pos=field("lid_handle_pos"), lid_handle_quat=xyzw_to_wxyz(field("lid_handle_quat")),
            target_bin_pos=field("target_bin_pos"), trash_bin_pos=field("trash_bin_pos"),
            trash_in_trash_bin=bool(field("trash_in_trash_bin")[0] > 0.5), hands=(hands[0], hands[1]))

    # -- shared phases -----------------------------------------------------------------------------------------

    def _held(self, op: _Operator, hand: Hand, stage: str, step: str, grasp: np.ndarray, quat: np.ndarray,
              approach: float, hanging: np.ndarray | None = None) -> np.ndarray | None:
        """Pick (``<stage>:approach/descend/grasp``), then ``:lift`` to CARRY_Z and on to ``:carry``. Returns None
        while the object is held past the lift: the caller's phases take over.

        Held means its grasp point stays at the hand; past the lift, given the object's position ``hanging``, it
        only has to hang within HANG_REACH of the closed fingers (a hammer that pivoted in the grip still goes
        into the bin). An object no longer held sends the arm back to the approach.
        """
        if step in ("approach", "descend", "grasp"):
            return op.pick(hand, grasp, quat, approach, then=f"{stage}:lift")
        if hanging is not None and step != "lift":
            held = hand.gap > HOLD_GAP and np.linalg.norm(hanging - hand.pos) < HANG_REACH
        else:
            held = holding(hand, grasp)
        if not held:
            op.go(f"{stage}:approach")
            return op.move(hand, hand.pos + np.array([0.0, 0.0, 0.05]), quat, OPEN)
        if step == "lift":  # straight up, turning nothing: a turn would scrape what is held along the bin walls
            if hand.pos[2] > CARRY_Z - 0.02:
                op.go(f"{stage}:carry")
            return op.move(hand, np.array([hand.pos[0], hand.pos[1], CARRY_Z]), hand.quat, CLOSE)
        return None

    def _pick_and_place(self, op: _Operator, hand: Hand, stage: str, step: str, obj_pos: np.ndarray,
                        grasp: np.ndarray, quat: np.ndarray, goal_xy: np.ndarray, release_z: float, then: str,
                        carry_quat: np.ndarray | None = None) -> np.ndarray:
        """Pick the object (hand orientation ``quat``), carry ``obj_pos`` over ``goal_xy`` at CARRY_Z turning the
        hand to ``carry_quat`` (default ``quat``), lower it to ``release_z``, let go, rise clear of the bin walls,
        then go to phase ``then``."""
        carry_quat = quat if carry_quat is None else carry_quat
        if step == "release":
            if hand.gap > OPEN_GAP and op.steps >= 3:
                op.go(f"{stage}:rise")
            return op.move(hand, hand.pos, carry_quat, OPEN)
        if step == "rise":
            if hand.pos[2] > CARRY_Z - 0.02:
                op.go(then)
            return op.move(hand, np.array([hand.pos[0], hand.pos[1], CARRY_Z]), carry_quat, OPEN)
        held = self._held(op, hand, stage, step, grasp, quat, approach_height(obj_pos), hanging=obj_pos)
        if held is not None:
            return held
        offset = hand.pos - obj_pos
        if step == "carry":
            turned = np.linalg.norm(rotation_error(carry_quat, hand.quat)) < 0.1
            if np.linalg.norm(goal_xy - obj_pos[:2]) < REACHED and turned:
                op.go(f"{stage}:lower")
            goal = np.array([goal_xy[0] + offset[0], goal_xy[1] + offset[1], CARRY_Z])
            return op.move(hand, goal, carry_quat, CLOSE)
        if obj_pos[2] < release_z + 0.01:
            op.go(f"{stage}:release")
        return op.move(hand, np.array([goal_xy[0], goal_xy[1], release_z]) + offset, carry_quat, CLOSE)

    # -- robot0: lid off, hammer out, hand it over --------------------------------------------------------------

    def _robot0(self, v: TransportView) -> np.ndarray:
        op, hand = self._ops[0], v.hands[0]
        stage, step = op.phase.split(":")
        if stage == "lid":
            if step == "approach" and np.linalg.norm(v.lid_handle_pos[:2] - v.payload_pos[:2]) > 0.2:
                op.go("payload:approach")  # the lid is off the start bin
                return self._robot0(v)
            # fingers close across the handle's 2 cm: the eef x axis along the handle's long side
            quat = down_along(hand, yaw_of(v.lid_handle_quat) + np.pi / 2)
            return self._pick_and_place(op, hand, stage, step, v.lid_handle_pos,
                                        v.lid_handle_pos + op.skill.grasp_offset, quat, LID_DROP_XY,
                                        LID_RELEASE_Z, then="lid:approach")
        if stage == "payload":
            return self._hand_over(op, hand, v, step)
        return rise_and_stay(op, hand)

    def _hand_over(self, op: _Operator, hand: Hand, v: TransportView, step: str) -> np.ndarray:
        """Hammer out of the start bin by the handle's robot0 half, to the handover point, held until robot1 has
        it, let go."""
        grasp = handle_point(v, arm=0) + op.skill.grasp_offset
        quat = down_along(hand, handle_heading(v))
        if step == "release":
            if hand.gap > OPEN_GAP and op.steps >= 3:
                op.go("done:")
            return op.move(hand, hand.pos, quat, OPEN)
        held = self._held(op, hand, "payload", step, grasp, quat, approach_height(v.payload_pos))
        if held is not None:
            return held
        # the handle's centre to the handover point, turned along y (pointing at robot1) only once nearly there: a
        # Panda turning its hand at the bin, close to its base, sags and catches the hammer on the bin's wall
        handover = handover_point(v)
        near = np.linalg.norm(handover[:2] - v.payload_pos[:2]) < TURN_NEAR_HANDOVER
        quat = down_along(hand, np.pi / 2) if near or step == "hold" else hand.quat
        target = handover + hand.pos - v.payload_pos
        if step == "carry":
            aligned = np.linalg.norm(rotation_error(quat, hand.quat)) < 0.05
            if np.linalg.norm(handover - v.payload_pos) < HANDOVER_TOLERANCE and aligned:
                op.go("payload:hold")
        elif self._ops[1].phase == "handover:hold":
            op.go("payload:release")
        return op.move(hand, target, quat, CLOSE)

    # -- robot1: trash out, take the hammer, put it in the target bin -----------------------------------------

    def _robot1(self, v: TransportView) -> np.ndarray:
        op, hand = self._ops[1], v.hands[1]
        stage, step = op.phase.split(":")
        if stage == "trash":
            if step == "approach" and v.trash_in_trash_bin:
                op.go("wait:")
                return self._robot1(v)
            quat = align_yaw(hand.quat, yaw_of(v.trash_quat), np.pi / 2)
            return self._pick_and_place(op, hand, stage, step, v.trash_pos, clear_of_floor(v.trash_pos) + op.skill.grasp_offset,
                                        quat, v.trash_bin_pos[:2], TRASH_RELEASE_Z, then="trash:approach")
        if stage == "wait":  # above the handover point, ready, until robot0 holds the hammer there
            if self._ops[0].phase == "payload:hold":
                op.go("handover:approach")
            wait = np.array([0.0, 0.05, HANDOVER_Z + 0.08])
            return op.move(hand, wait, down_along(hand, np.pi / 2), OPEN)
        grasp = handle_point(v, arm=1) + op.skill.grasp_offset
        quat = down_along(hand, handle_heading(v))
        if stage == "handover":
            if step in ("approach", "descend", "grasp"):
                return op.pick(hand, grasp, quat, 0.06, then="handover:hold")
            # hold: follow the handle (robot0 keeps it in place) until robot0 has let go and its open fingers are
            # clear above the hammer (turning, the hammer's head would catch on them)
            robot0_clear = v.hands[0].pos[2] > v.payload_pos[2] + CLEAR_ABOVE
            if not holding(hand, grasp):
                op.go("handover:approach")
            elif self._ops[0].phase == "done:" and robot0_clear:
                op.go("place:carry")
            return op.move(hand, grasp, quat, CLOSE)
        if stage == "place":
            # the hammer turned along x on the way and its span centred over the target bin, lowered to just above
            # the base: along y, robot1's hand would have to go down into the bin close to its own base, where a
            # Panda's grip point wanders
            centre = v.target_bin_pos[:2] - v.handle_axis[:2] * PAYLOAD_SPAN_CENTRE
            return self._pick_and_place(op, hand, stage, step, v.payload_pos, grasp, quat, centre,
                                        BIN_FLOOR + HEAD_HALF + PAYLOAD_RELEASE_CLEARANCE, then="done:",
                                        carry_quat=down_along(hand, 0.0))
        return rise_and_stay(op, hand)

    # -- both ---------------------------------------------------------------------------------------------------

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The 14-D action for ``obs``: each operator's plan with its hesitations, then the Gaussian noise."""
        v = self._view(obs)
        parts = [self._robot0(v), self._robot1(v)]
        for op, hand, action in zip(self._ops, v.hands, parts):
            op.record(hand, action, self._rng)
        return self._with_noise(np.concatenate(parts))
