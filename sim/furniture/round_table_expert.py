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
defines, and it grips a 4 cm feature the base does not have), and none is written here yet, so the expert stops
after the leg (``SCRIPTED_PAIRS``; docs/results/furniture-round_table/README.md says why a grasp of the base is
not simple).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inril_sim.furniture import round_table_scene as round_table, square_table_scene as square_table
from inril_sim.furniture.contracts import import_furniture_bench

# how far the twist aims below the hand beyond Leg.fsm_step's own 5 mm
EXTRA_PRESS = 0.015
SCRIPTED_PAIRS = ((0, 1),)

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


def take_over(furniture: Any) -> tuple[tuple[int, int], ...]:
    """Put our state machines into furniture_bench's ``RoundTable`` ``furniture`` in place of its own; the pairs
    the expert can assemble with them."""
    leg = furniture.parts[1]
    furniture.parts[1] = _leg_class()(leg.part_config, leg.part_idx)
    return SCRIPTED_PAIRS
