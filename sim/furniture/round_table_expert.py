"""round_table's state machines where furniture_bench 0.1's cannot be used as they are (``expert`` calls
``take_over``).

The leg is furniture_bench's ``RoundTableLeg`` (the square table's ``Leg.fsm_step``: grasp, lift, reorient, align
over the hole, let go, then grasp-twist-release until assembled) with two changes for the round table, each found
from failed expert episodes in the MuJoCo port:

- it inserts lower. ``Leg.fsm_step`` aligns and lets go of the leg at heights written for the square table (its
  centre at the top's AprilTag z + 0.09 / 0.084 in the robot frame): there the leg's tip is 2 mm above the hole's
  mouth while aligning and 4 mm into it when let go. The round top lies 15 mm lower and its boss is taller, so the
  same heights let go of the leg with its tip 2.4 cm above the mouth; it fell 4 cm to the thread start and bounced
  out of the hole in 3 of the 4 failed low-randomness episodes. The leg's state machine is shown the top
  ``let_go_drop()`` higher than it is, which puts the tip where the square table's is relative to the mouth.
- it presses down while it twists. The round top is free on the table (friction 0.15; furniture_bench has no
  ``pre_assemble`` for it, and a round top in the obstacle corner would still turn), and the thread's friction
  turned it with the leg: half of each twist went into spinning the top and the last 20 degrees to the seat never
  came. ``Leg``'s twist aims 5 mm down; aiming ``EXTRA_PRESS`` lower loads the top onto the table harder, and its
  friction then holds it.

The base has no working state machine in furniture_bench 0.1 (``RoundTableBase.fsm_step`` reads names it never
defines, and it grips a 4 cm feature the base does not have). The base stands on its bolt, a 13 cm disc whose
underside is 27.5 mm above the table: a pinch across its thickness needs the closing axis within 45 degrees of the
disc's normal (pad friction 1), which the hand's 20 cm body cannot reach that near the table, and a pinch along a
chord of the rim has its contact normals more than 50 degrees off the closing axis and squeezes the disc away
(docs/results/furniture-round_table/README.md). ``TipPinchScrewBase`` therefore tips the base first (presses its
near rim, so it leans on its rim with the far rim 6 cm up), pinches the raised rim across the thickness with the
hand leaning towards the robot (which the Panda's wrist reaches, leaning away it does not), lifts it, turns it bolt
down over the leg with the hand horizontal, lets go above the thread (the leg's counterbore guides the bolt, the
thread catches it), and screws it in grasp-twist-release cycles: once the bolt is on the thread the disc cannot be
squeezed away, so a chord pinch of the rim turned about the base's axis carries the disc along.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from inril_sim.furniture import round_table_scene as round_table, square_table_scene as square_table
from inril_sim.furniture.contracts import assembled_rel_pose, import_furniture_bench
from inril_sim.furniture.expert import part_pose_in_robot

# how far the twist aims below the hand beyond Leg.fsm_step's own 5 mm
EXTRA_PRESS = 0.015
SCRIPTED_PAIRS = ((0, 1), (1, 2))

# The base's script (TipPinchScrewBase), robot frame, metres. Each was tried in the port (README).
TIP_CLEAR = 0.011           # the hand's origin this far above the disc's top puts the fingertips 1.5 mm above it
TIP_PRESS_IN = 0.010        # the fingertips press the disc's top this far inside its near rim ...
TIP_PRESS_DEPTH = 0.030     # ... aiming this far down: the disc leans 26 degrees on its rim and bolt tip
PINCH_LEAN = np.radians(55.0)   # closing axis from vertical: 29 degrees off the leaning disc's normal
PINCH_IN = 0.012            # pinch this far inside the raised rim, at the disc's mid-plane
APPROACH = 0.06             # hover this far back along the approach before moving in, and retreat as far
LIFT = 0.10
CARRY_HEIGHTS = (0.08, 0.04)    # the base's height above its seat on the way down over the leg
ALIGN_HEIGHT = 0.030        # line the bolt up over the bore here (its tip 2.5 mm above the leg's face) ...
LET_GO_HEIGHT = 0.018       # ... then lower it and let go here: the tip 9.5 mm below the leg's face
ALIGN_BOOST = 0.005         # the most the alignment aims beyond its goal sideways
CHORD_OUT = 0.001           # the twist's chord pinch: fingers this far outside the rim's radius from the axis
TWIST = -np.pi / 2          # per cycle, about the base's axis (up): clockwise seen from above screws in
TWIST_STEPS = 6
TWIST_PRESS = 0.003         # aim this far below the thread's descent while twisting

if TYPE_CHECKING:
    from torch import Tensor


def let_go_drop() -> float:
    """How much higher than it is the leg's state machine must see the round top so that the leg's tip stands
    where ``Leg.fsm_step`` puts the square table leg's tip relative to the hole's mouth.

    ``Leg.fsm_step`` holds the leg's centre at (top's AprilTag z + h) in the robot frame, whose z is
    -(AprilTag z) - ROBOT_HEIGHT: h + ROBOT_HEIGHT + 2 x (top's AprilTag z) above the top's origin. The tops' reset
    heights (furniture_bench's config) and the leg centre's height above the top's origin with its tip at the mouth
    (the scenes' geometry) differ between the tables; a top seen d higher lowers the leg by d."""
    from furniture_bench.config import config

    furniture = config["furniture"]
    tops_z = {name: float(furniture[name][f"{name}_top"]["reset_pos"][0][2]) for name in ("round_table",
                                                                                      "square_table")}
    tip_at_mouth = {"round_table": round_table.BOSS_TOP_Z - round_table.LEG_TIP_Y,
                    "square_table": square_table.TOP_HALF_THICKNESS - square_table.PEG_BOTTOM_Y}
    return (2 * (tops_z["round_table"] - tops_z["square_table"])
            - tip_at_mouth["round_table"] + tip_at_mouth["square_table"])


def _leg_class() -> type:
    """``InsertLowPressingLeg``, made on first use: its base class comes from furniture_bench, imported lazily."""
    import_furniture_bench()
    from furniture_bench.furniture.parts.round_table_leg import RoundTableLeg

    class InsertLowPressingLeg(RoundTableLeg):
        """furniture_bench's round-table leg, inserted lower and pressing down while it twists (module
        docstring)."""

        def __init__(self, part_config: dict, part_idx: int) -> None:
            super().__init__(part_config, part_idx)
            self.top_shown_higher = let_go_drop()

        def fsm_step(self, ee_pos: Tensor, ee_quat: Tensor, gripper_width: Tensor, rb_states: Tensor,
                     part_idxs: dict[str, list[int]], sim_to_april: Tensor, april_to_robot: Tensor,
                     assemble_to: str) -> tuple[Tensor, Tensor, Tensor, int]:
            twisting = self._state == "screw"
            rb_states = rb_states.clone()
            rb_states[part_idxs[assemble_to][0], 2] += self.top_shown_higher  # FurnitureSim's world z is up
            pos, quat, gripper, skill_complete = super().fsm_step(
                ee_pos, ee_quat, gripper_width, rb_states, part_idxs, sim_to_april, april_to_robot, assemble_to)
            if twisting:
                pos = pos.clone()
                pos[2] -= EXTRA_PRESS
            return pos, quat, gripper, skill_complete

    return InsertLowPressingLeg


def _hand(approach: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """The hand's rotation (robot frame) whose z axis (towards the fingertips) is ``approach`` and whose y axis
    (the fingers' closing axis) is ``closing``."""
    return np.stack([np.cross(closing, approach), closing, approach], axis=1)


def _turn_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _base_class() -> type:
    """``TipPinchScrewBase``, made on first use: its base class comes from furniture_bench, imported lazily."""
    import_furniture_bench()
    import torch
    import furniture_bench.controllers.control_utils as C
    from furniture_bench.furniture.parts.round_table_base import RoundTableBase

    up = np.array([0.0, 0.0, 1.0])
    seat_in_leg = assembled_rel_pose("round_table", (1, 2))

    class TipPinchScrewBase(RoundTableBase):
        """The round table's base: tip it, pinch its raised rim, carry it bolt down over the leg, let go above the
        thread, then screw it in by chord pinches turned about its axis (module docstring). Everything is read
        from the poses the expert passes, in the robot frame (z up, the robot's base at the origin)."""

        def __init__(self, part_config: dict, part_idx: int) -> None:
            super().__init__(part_config, part_idx)
            self.skill_complete_next_states: list[str] = []
            self.reset()

        def reset(self) -> None:
            super().reset()
            self._state = "tip_above"
            self.prev_pose: np.ndarray | None = None
            self._axis = np.zeros(3)    # the base's origin where the twist's grasp was taken (it turns about it)
            self._twist_step = 0

        def fsm_step(self, ee_pos: Tensor, ee_quat: Tensor, gripper_width: Tensor, rb_states: Tensor,
                     part_idxs: dict[str, list[int]], sim_to_april: Tensor, april_to_robot: Tensor,
                     assemble_to: str) -> tuple[Tensor, Tensor, Tensor, int]:
            def robot_pose(name: str) -> np.ndarray:
                return part_pose_in_robot(rb_states, part_idxs[name][0], sim_to_april,
                                          april_to_robot).double().numpy()

            hand = C.to_homogeneous(ee_pos, C.quat2mat(ee_quat)).double().numpy()
            base, leg = robot_pose(self.name), robot_pose(assemble_to)
            width = float(gripper_width)
            target, next_state = self._step(hand, base, leg, width)
            target_t = torch.tensor(target, dtype=torch.float32)
            skill_complete = self.may_transit_state(next_state)
            return (target_t[:3, 3], C.mat2quat(target_t[:3, :3]), torch.tensor([self.gripper_action]),
                    skill_complete)

        def _reached(self, hand: np.ndarray, target: np.ndarray, pos: float = 0.01, ori: float = 0.2,
                     max_len: int = 25) -> bool:
            return self.satisfy(torch.from_numpy(hand), torch.from_numpy(target), pos_error_threshold=pos,
                                ori_error_threshold=ori, max_len=max_len)

        def _step(self, hand: np.ndarray, base: np.ndarray, leg: np.ndarray, width: float
                  ) -> tuple[np.ndarray, str]:
            """The hand's target (4x4, robot frame) and the next state."""
            state = self._state
            to_robot = -base[:2, 3] / np.linalg.norm(base[:2, 3])
            if state in ("tip_above", "tip_reach", "tip_press", "tip_up"):
                return self._tip(hand, base, to_robot, width)
            if state in ("pinch_above", "pinch_reach", "pinch_grasp", "lift"):
                return self._pinch(hand, base, width)
            if state in ("carry", "lower", "align", "insert", "let_go", "retreat", "rise"):
                return self._carry(hand, base, leg, width)
            return self._screw(hand, base, to_robot, width)

        def _tip(self, hand: np.ndarray, base: np.ndarray, to_robot: np.ndarray, width: float
                 ) -> tuple[np.ndarray, str]:
            """Press the near rim with the closed fingers, hand down, so the base leans with its far rim up."""
            state, next_state = self._state, self._state
            if state in ("tip_above", "tip_reach"):
                self.gripper_action = 1
                chord = np.r_[-to_robot[1], to_robot[0], 0.0]
                target = np.eye(4)
                target[:3, :3] = _hand(-up, chord)
                target[:2, 3] = base[:2, 3] + (round_table.BASE_RADIUS - TIP_PRESS_IN) * to_robot
                target[2, 3] = base[2, 3] + round_table.BASE_TOP_Z + TIP_CLEAR
                if state == "tip_above":
                    target[2, 3] += APPROACH
                if self._reached(hand, target, pos=0.01 if state == "tip_above" else 0.006):
                    self.prev_pose = target
                    next_state = "tip_reach" if state == "tip_above" else "tip_press"
            elif state == "tip_press":
                target = self.prev_pose.copy()
                target[2, 3] -= TIP_PRESS_DEPTH
                if self._reached(hand, target, pos=0.008, max_len=15):
                    next_state = "tip_up"
            else:
                self.gripper_action = -1
                target = self.prev_pose.copy()
                target[2, 3] += APPROACH
                if self._reached(hand, target, pos=0.015) and width > 0.075:
                    next_state = "pinch_above"
            return target, next_state

        def _pinch(self, hand: np.ndarray, base: np.ndarray, width: float) -> tuple[np.ndarray, str]:
            """Pinch the leaning base's raised rim across its thickness, the hand leaning towards the robot."""
            state, next_state = self._state, self._state
            if state in ("pinch_above", "pinch_reach"):
                self.gripper_action = -1
                normal = base[:3, 2]
                rim_up = up - (up @ normal) * normal
                rim_up /= np.linalg.norm(rim_up)
                outward = np.r_[rim_up[:2] / np.linalg.norm(rim_up[:2]), 0.0]
                closing = np.cos(PINCH_LEAN) * up - np.sin(PINCH_LEAN) * outward
                approach = -np.cos(PINCH_LEAN) * outward - np.sin(PINCH_LEAN) * up
                mid_plane = (round_table.BASE_TOP_Z + round_table.BASE_BOTTOM_Z) / 2
                target = np.eye(4)
                target[:3, :3] = _hand(approach, closing)
                target[:3, 3] = (base[:3, 3] + mid_plane * normal + (round_table.BASE_RADIUS - PINCH_IN) * rim_up
                                 - (APPROACH * approach if state == "pinch_above" else 0.0))
                if self._reached(hand, target, pos=0.01 if state == "pinch_above" else 0.005, ori=0.15):
                    self.prev_pose = target
                    next_state = "pinch_reach" if state == "pinch_above" else "pinch_grasp"
            elif state == "pinch_grasp":
                self.gripper_action = 1
                target = self.prev_pose
                if self.gripper_less(width, 0.02):
                    next_state = "lift"
            else:
                target = self.prev_pose.copy()
                target[2, 3] += LIFT
                if self._reached(hand, target, pos=0.02, ori=0.3):
                    next_state = "carry"
            return target, next_state

        def _carry(self, hand: np.ndarray, base: np.ndarray, leg: np.ndarray, width: float
                   ) -> tuple[np.ndarray, str]:
            """Carry the held base bolt down over the leg's hole, let go above the thread, back the hand out."""
            state, next_state = self._state, self._state
            if state in ("carry", "lower", "align", "insert"):
                height = {"carry": CARRY_HEIGHTS[0], "lower": CARRY_HEIGHTS[1], "align": ALIGN_HEIGHT,
                          "insert": LET_GO_HEIGHT}[state]
                goal = self._hand_for_base(hand, base, leg @ seat_in_leg, height)
                target = goal.copy()
                if state in ("align", "insert"):
                    # the hand settles 1-2 mm short of its goal (the controller's pull back to its start); the
                    # bolt must meet the 1 mm clearance of the leg's bore, so aim as far beyond it sideways
                    target[:2, 3] += np.clip(goal[:2, 3] - hand[:2, 3], -ALIGN_BOOST, ALIGN_BOOST)
                if state == "align":
                    done = self._reached(hand, goal, pos=0.003, ori=0.1, max_len=40)
                elif state == "insert":
                    done = self._reached(hand, goal, pos=0.004, ori=0.1, max_len=10)
                else:
                    done = self._reached(hand, goal, pos=0.015, ori=0.3)
                if done:
                    self.prev_pose = target
                    next_state = {"carry": "lower", "lower": "align", "align": "insert", "insert": "let_go"}[state]
            elif state == "let_go":
                self.gripper_action = -1
                target = self.prev_pose
                if self.gripper_greater(width, 0.075):
                    next_state = "retreat"
            else:
                target = self.prev_pose.copy()
                if state == "retreat":
                    target[:3, 3] -= APPROACH * target[:3, 2]
                else:
                    target[2, 3] += APPROACH
                if self._reached(hand, target, pos=0.015, ori=0.3):
                    self.prev_pose = target
                    next_state = "rise" if state == "retreat" else "screw_above"
            return target, next_state

        @staticmethod
        def _hand_for_base(hand: np.ndarray, base: np.ndarray, seat: np.ndarray, height: float) -> np.ndarray:
            """Where the hand holding ``base`` rigidly must go for the base to stand ``height`` above ``seat``, bolt
            down, turned about its axis so that the hand points sideways (along the robot frame's y, on the side
            it comes from): pointing at or away from the robot, the Panda's wrist cannot hold the hand level."""
            hold = np.linalg.inv(base) @ hand
            side = 1.0 if hand[1, 2] >= 0 else -1.0
            best, best_score = None, -np.inf
            for yaw in np.radians(np.arange(0.0, 360.0, 5.0)):
                want = seat.copy()
                want[:3, :3] = seat[:3, :3] @ _turn_z(yaw)
                want[:3, 3] += height * seat[:3, 2]
                candidate = want @ hold
                if side * candidate[1, 2] > best_score:
                    best, best_score = candidate, side * candidate[1, 2]
            return best

        def _screw(self, hand: np.ndarray, base: np.ndarray, to_robot: np.ndarray, width: float
                   ) -> tuple[np.ndarray, str]:
            """Grasp-twist-release: a chord pinch of the rim on the robot's side of the base, hand down, turned
            about the base's axis by ``TWIST``, following the thread down."""
            state, next_state = self._state, self._state
            if state in ("screw_above", "screw_reach"):
                self.gripper_action = -1
                chord = np.r_[-to_robot[1], to_robot[0], 0.0]
                options = (_hand(-up, chord), _hand(-up, -chord))
                target = np.eye(4)
                target[:3, :3] = max(options, key=lambda r: np.trace(hand[:3, :3].T @ r))
                target[:2, 3] = base[:2, 3] + (round_table.BASE_RADIUS + CHORD_OUT) * to_robot
                target[2, 3] = base[2, 3] + (round_table.BASE_TOP_Z + round_table.BASE_BOTTOM_Z) / 2
                if state == "screw_above":
                    target[2, 3] += APPROACH
                if self._reached(hand, target, pos=0.01 if state == "screw_above" else 0.006):
                    self.prev_pose, self._axis = target, base[:3, 3].copy()
                    next_state = "screw_reach" if state == "screw_above" else "screw_grasp"
            elif state == "screw_grasp":
                self.gripper_action = 1
                target = self.prev_pose
                if self.gripper_less(width, 0.001):
                    self._twist_step = 1
                    next_state = "screw"
            elif state == "screw":
                angle = TWIST * self._twist_step / TWIST_STEPS
                turn = _turn_z(angle)
                target = np.eye(4)
                target[:3, :3] = turn @ self.prev_pose[:3, :3]
                target[:3, 3] = self._axis + turn @ (self.prev_pose[:3, 3] - self._axis)
                target[2, 3] -= round_table.THREAD_PITCH * abs(angle) / (2 * np.pi) + TWIST_PRESS
                if self._reached(hand, target, pos=0.005, ori=0.05, max_len=3):
                    self._twist_step += 1
                    next_state = "screw_release" if self._twist_step > TWIST_STEPS else state
                    self.prev_cnt = self.curr_cnt
                    if next_state != state:
                        self.prev_pose = target
            elif state == "screw_release":
                self.gripper_action = -1
                target = self.prev_pose
                if self.gripper_greater(width, 0.075):
                    next_state = "screw_up"
            else:
                target = self.prev_pose.copy()
                target[2, 3] += APPROACH
                if self._reached(hand, target, pos=0.015, ori=0.3):
                    next_state = "screw_above"
            return target, next_state

    return TipPinchScrewBase


def take_over(furniture: Any) -> tuple[tuple[int, int], ...]:
    """Put our state machines into furniture_bench's ``RoundTable`` ``furniture`` in place of its own; the pairs
    the expert can assemble with them."""
    leg, base = furniture.parts[1], furniture.parts[2]
    furniture.parts[1] = _leg_class()(leg.part_config, leg.part_idx)
    furniture.parts[2] = _base_class()(base.part_config, base.part_idx)
    return SCRIPTED_PAIRS
