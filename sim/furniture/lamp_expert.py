"""A scripted expert for the lamp, in FurnitureBench's style: furniture_bench 0.1 has no lamp state machine
(``LampBulb`` inherits the square-table ``Leg.fsm_step``, whose grasp widths and table heights do not fit a bulb),
so these subclasses of its lamp parts carry their own ``fsm_step``, shaped like ``Leg.fsm_step`` (a named state,
a target hand pose, FurnitureBench's ``satisfy`` tests and phase time-outs, first-target noise) and driven by
``expert.FurnitureExpert`` as FurnitureSim's ``get_assembly_action`` drives furniture_bench's own.

The bulb lies on its side: grasp it across its grip from above with the fingers across its axis, lift, turn the
hand about the vertical until the globe points straight ahead, then a quarter turn about the fingers' axis so that
the bulb stands globe up (with the globe pointing elsewhere the Panda's wrist runs into its joint limits and the
bulb ends up tilted), carry it high over the base's hole (its tilt corrected, its turn about its axis kept; lower,
it knocks the standing hood over), lower it onto the thread start, let go, then grasp the globe from above, turn the
hand clockwise by 95 degrees (``Leg``'s screw move, anchored where the hand grasped) and let go, until the pair is
assembled. The hood stands on its rim: grasp its top from above, lift it clear of the bulb, carry it over the lamp
turned about the vertical as the base is (furniture_bench's strict check also tests the hood's orientation) and let
it go 5 cm above its seat, onto the globe, whose cone centres it. Poses are in the robot-base frame, as the hand's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

import furniture_bench.controllers.control_utils as C
from furniture_bench.furniture.parts.lamp_bulb import LampBulb
from furniture_bench.furniture.parts.lamp_hood import LampHood
from furniture_bench.utils.pose import rot_mat

from inril_sim.furniture.contracts import assembled_rel_pose
from inril_sim.furniture.expert import part_pose_in_robot
from inril_sim.furniture.lamp_scene import GLOBE_CENTRE_Y, GLOBE_RADIUS, GRIP_RADIUS, HOOD_TOP_Y, THREAD_START

CARRY_Z = 0.17                 # hand height for carrying the bulb: it reaches 5.3 cm below the hand when standing,
                               # whose tip then clears the 10 cm hood standing on the table by 2 cm
HOOD_CARRY_Z = 0.27            # the hood's rim (9 cm below the hand) clears the standing bulb's globe
INTO_THREAD = 0.003            # bulb let go this far below the thread start, where the thread catches it
ABOVE_GLOBE = 0.05             # the hand turns down this far above the globe before it grasps it
HOOD_GRASP_DEPTH = 0.008       # below the hood's top edge, where it is 62.2 mm across (30 mm + 8 deg of taper)
HOOD_GRASP_WIDTH = 0.063
HOOD_ABOVE = 0.12              # hood carried over the lamp this far above its seat: its rim 2.4 cm over the globe
HOOD_DROP = 0.05               # hood let go this far above its seat: its cone clears the globe there by 7 mm, and
                               # lower, a hood held a few mm off the axis pushes the whole lamp along the table
OPEN_WIDTH = 0.065             # opened far enough to let a part go


def _rot(x: float, y: float, z: float) -> torch.Tensor:
    return torch.tensor(rot_mat([x, y, z], hom=True)).float()


def _upright(rotation: torch.Tensor, up_axis: torch.Tensor) -> torch.Tensor:
    """``rotation`` (3x3) turned by the smallest rotation that takes its ``up_axis`` (in its own frame) to the
    robot's +z: its tilt corrected, its turn about that axis kept."""
    a = rotation @ up_axis
    v, c = torch.linalg.cross(a, torch.tensor([0.0, 0.0, 1.0])), float(a[2])
    k = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return (torch.eye(3) + k + k @ k / (1.0 + c)) @ rotation


class ScriptedLampBulb(LampBulb):
    """``LampBulb`` with a state machine that fits it (see the module's docstring)."""

    def reset(self) -> None:
        super().reset()
        self._state = "reach_bulb_xy"
        self.prev_pose = None

    def state_no_noise(self) -> bool:
        return self._state in ("insert_wait", "insert_release")

    def fsm_step(self, ee_pos, ee_quat, gripper_width, rb_states, part_idxs, sim_to_april, april_to_robot,
                 assemble_to):
        ee = C.to_homogeneous(ee_pos, C.quat2mat(ee_quat))
        bulb = part_pose_in_robot(rb_states, part_idxs[self.name][0], sim_to_april, april_to_robot)
        base = part_pose_in_robot(rb_states, part_idxs[assemble_to][0], sim_to_april, april_to_robot)
        state, target = self._state, None
        if state == "reach_bulb_xy":
            axis = bulb[:3, 1]
            # hand down, fingers across the axis, its x axis pointing away from the globe
            target = _rot(np.pi, 0.0, float(torch.atan2(-axis[1], -axis[0])))
            target[:3, 3] = bulb[:3, 3]
            target[2, 3] = CARRY_Z
            target = self.add_noise_first_target(target)
            if self.satisfy(ee, target, pos_error_threshold=0.015):
                self.prev_pose, state = target.clone(), "reach_bulb_z"
        elif state == "reach_bulb_z":
            target = self.prev_pose.clone()
            target[2, 3] = bulb[2, 3]
            if self.satisfy(ee, target, pos_error_threshold=0.007):
                self.prev_pose, state = target, "pick_bulb"
        elif state == "pick_bulb":
            target = self.prev_pose
            self.gripper_action = 1
            if self.gripper_less(gripper_width, 2 * GRIP_RADIUS + 0.002):
                state = "lift_bulb"
        elif state == "lift_bulb":
            target = self.prev_pose.clone()
            target[2, 3] = CARRY_Z
            if self.satisfy(ee, target, pos_error_threshold=0.02, ori_error_threshold=0.3):
                self.prev_pose, state = target, "turn_bulb"
        elif state == "turn_bulb":  # globe straight ahead (+x), where the Panda's wrist can stand it up
            target = _rot(np.pi, 0.0, np.pi)
            target[:3, 3] = self.prev_pose[:3, 3]
            if self.satisfy(ee, target, pos_error_threshold=0.02, ori_error_threshold=0.2):
                self.prev_pose, state = target, "stand_bulb"
        elif state == "stand_bulb":  # a quarter turn about the fingers' axis: the globe, ahead of the hand, goes up
            target = self.prev_pose @ _rot(0.0, -np.pi / 2, 0.0)
            if self.satisfy(ee, target, pos_error_threshold=0.02, ori_error_threshold=0.3):
                self.prev_pose, state = target, "reach_hole_xy"
        elif state in ("reach_hole_xy", "insert_wait"):
            height = THREAD_START - INTO_THREAD
            seat = base @ torch.tensor(assembled_rel_pose("lamp", (0, 1))).float()
            goal = torch.eye(4)
            goal[:3, :3] = _upright(bulb[:3, :3], torch.tensor([0.0, 1.0, 0.0]))
            goal[:3, 3] = seat[:3, 3] + seat[:3, 1] * height
            target = goal @ torch.linalg.inv(bulb) @ ee
            if state == "reach_hole_xy":  # over the hole at the carrying height: lower, the bulb hits the hood
                target[2, 3] = CARRY_Z
            if state == "reach_hole_xy" and self.satisfy(ee, target, pos_error_threshold=0.015,
                                                         ori_error_threshold=0.3):
                state = "insert_wait"
            elif state == "insert_wait" and self.satisfy(ee, target, pos_error_threshold=0.006,
                                                         ori_error_threshold=0.15, max_len=30):
                self.prev_pose, state = target, "insert_release"
        elif state in ("insert_release", "screw_release"):
            target = self.prev_pose
            self.gripper_action = -1
            if self.gripper_greater(gripper_width, OPEN_WIDTH):
                state = "clear_up" if state == "insert_release" else "reach_globe"  # turns back, open, at the globe
        elif state == "clear_up":
            target = self.prev_pose.clone()
            target[2, 3] = CARRY_Z
            if self.satisfy(ee, target, pos_error_threshold=0.02, ori_error_threshold=0.3):
                state = "pre_grasp"
        elif state in ("pre_grasp", "reach_globe"):  # hand down, not turned, above the globe, then at its equator
            target = _rot(np.pi, 0.0, 0.0)
            target[:3, 3] = (bulb @ torch.tensor([0.0, GLOBE_CENTRE_Y, 0.0, 1.0]))[:3]
            if state == "pre_grasp":  # turning the hand here, not around the globe (it swept and twisted the lamp)
                target[2, 3] += ABOVE_GLOBE
                if self.satisfy(ee, target, max_len=50):
                    state = "reach_globe"
            elif self.satisfy(ee, target, pos_error_threshold=0.006):  # off the axis, the twist drags the lamp
                self.prev_pose, state = target, "screw_grasp"
        elif state == "screw_grasp":
            target = self.prev_pose
            self.gripper_action = 1
            if self.gripper_less(gripper_width, 2 * GLOBE_RADIUS + 0.001):
                state = "screw"
        elif state == "screw":  # Leg's screw move: turn the hand clockwise (seen from above) by 95 degrees, 5 mm
            # down; from where it grasped, not (as Leg) from wherever the hand is: the lamp stands free on the table,
            # and a target that follows the hand let the twist walk the lamp up to 17 cm away
            target = _rot(np.pi, 0.0, -np.pi / 2 - np.pi / 36)
            target[:3, 3] = self.prev_pose[:3, 3] - torch.tensor([0.0, 0.0, 0.005])
            if self.satisfy(ee, target, ori_error_threshold=0.3):
                self.prev_pose, state = target, "screw_release"
        self.may_transit_state(state)
        return target[:3, 3], C.mat2quat(target[:3, :3]), torch.tensor([self.gripper_action]), False


class ScriptedLampHood(LampHood):
    """``LampHood`` with a state machine that puts it over the bulb (see the module's docstring)."""

    skill_complete_next_states = ()  # FurnitureBench's skill segmentation; the lamp has none here

    def reset(self) -> None:
        super().reset()
        self._state = "reach_hood_xy"
        self.prev_pose = None

    def state_no_noise(self) -> bool:
        return self._state in ("lower_hood", "release_hood")

    def fsm_step(self, ee_pos, ee_quat, gripper_width, rb_states, part_idxs, sim_to_april, april_to_robot,
                 assemble_to):
        ee = C.to_homogeneous(ee_pos, C.quat2mat(ee_quat))
        hood = part_pose_in_robot(rb_states, part_idxs[self.name][0], sim_to_april, april_to_robot)
        base = part_pose_in_robot(rb_states, part_idxs[assemble_to][0], sim_to_april, april_to_robot)
        grasp = (hood @ torch.tensor([0.0, HOOD_TOP_Y + HOOD_GRASP_DEPTH, 0.0, 1.0]))[:3]
        state, target = self._state, None
        if state == "reach_hood_xy":
            target = _rot(np.pi, 0.0, 0.0)  # at the carrying height: lower, the fingers sweep the lamp's globe
            target[:3, 3] = grasp
            target[2, 3] = HOOD_CARRY_Z
            target = self.add_noise_first_target(target)
            if self.satisfy(ee, target, pos_error_threshold=0.015):
                self.prev_pose, state = target.clone(), "reach_hood_z"
        elif state == "reach_hood_z":
            target = self.prev_pose.clone()
            target[:3, 3] = grasp
            if self.satisfy(ee, target, pos_error_threshold=0.007):
                self.prev_pose, state = target, "pick_hood"
        elif state == "pick_hood":
            target = self.prev_pose
            self.gripper_action = 1
            if self.gripper_less(gripper_width, HOOD_GRASP_WIDTH):
                state = "lift_hood"
        elif state == "lift_hood":
            target = self.prev_pose.clone()
            target[2, 3] = HOOD_CARRY_Z
            if self.satisfy(ee, target, pos_error_threshold=0.02, ori_error_threshold=0.3):
                state = "reach_lamp_xy"
        elif state in ("reach_lamp_xy", "lower_hood"):
            seat = base @ torch.tensor(assembled_rel_pose("lamp", (0, 2))).float()
            above = seat[:3, 3] - seat[:3, 1] * (HOOD_ABOVE if state == "reach_lamp_xy" else HOOD_DROP)  # base's -y
            # the hood's place and its turn about the vertical (to the base's) only: righting a hood that swung in
            # the fingers by tilting the hand (as the bulb's tilt is) drove the wrist into its limits, the hood 4 cm off
            turn = torch.atan2(seat[1, 0], seat[0, 0]) - torch.atan2(hood[1, 0], hood[0, 0])
            target = _rot(0.0, 0.0, float(turn)) @ ee
            target[:3, 3] = ee[:3, 3] + above - hood[:3, 3]
            if state == "reach_lamp_xy" and self.satisfy(ee, target, pos_error_threshold=0.008,
                                                         ori_error_threshold=0.3, max_len=40):
                state = "lower_hood"
            elif state == "lower_hood" and self.satisfy(ee, target, pos_error_threshold=0.006,
                                                        ori_error_threshold=0.15, max_len=40):
                self.prev_pose, state = target, "release_hood"
        elif state == "release_hood":
            target = self.prev_pose
            self.gripper_action = -1
            if self.gripper_greater(gripper_width, OPEN_WIDTH):
                state = "hood_up"
        elif state == "hood_up":
            target = self.prev_pose.clone()
            target[2, 3] = HOOD_CARRY_Z
        self.may_transit_state(state)
        return target[:3, 3], C.mat2quat(target[:3, :3]), torch.tensor([self.gripper_action]), False


def take_over(furniture: Any) -> tuple[tuple[int, int], ...]:
    """Give furniture_bench's ``Lamp`` ``furniture`` the bulb's and the hood's state machines (its base has nothing
    to do); the expert assembles every pair with them."""
    for index, script in ((1, ScriptedLampBulb), (2, ScriptedLampHood)):
        part = furniture.parts[index]
        furniture.parts[index] = script(part.part_config, part.part_idx)
    return tuple(tuple(pair) for pair in furniture.should_be_assembled)
