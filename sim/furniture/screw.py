"""The square table's threads as constraints: when a leg engages a hole, and when it lets go.

Each hole of the top has a carrier body that can only move along a helix (``mujoco_scene``: slide and hinge along
the hole axis tied by a tendon equality, pitch 9.6 mm, right-handed). A leg engages a hole when its peg is within
3 mm of the hole axis, tilted less than 10 degrees, and no higher than the thread start (24 mm above the seat):
the carrier is put on the helix turn nearest to the leg's height whose angle equals the leg's yaw about the axis
(at most half a pitch away), and a weld ties the leg to it. From then on the leg descends only when turned
clockwise, stops at the seat (the carrier slide's lower limit, where its rotation relative to the top is the
identity FurnitureBench's success test asks for), and unscrews in reverse; turned back past the thread start it is released. The checks run
every physics step, so a leg dropped into a hole cannot fall past the thread start unseen.
"""
from __future__ import annotations

import mujoco
import numpy as np

from inril_sim.furniture.mujoco_scene import THREAD_PITCH, THREAD_START, SceneIds, hole_positions

ENGAGE_LATERAL = 0.003
ENGAGE_TILT_COS = float(np.cos(np.radians(10.0)))
HINGE_PER_METRE = 2 * np.pi / THREAD_PITCH
RELEASE_ANGLE = HINGE_PER_METRE * THREAD_START


class ScrewThreads:
    """Engagement state of the four holes; ``update`` after every physics step keeps it in step with the sim."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, ids: SceneIds) -> None:
        self.model, self.data, self.ids = model, data, ids
        self.holes = hole_positions()
        self.engaged = np.full(len(self.holes), -1)  # leg index (0-3) per hole, -1 when free

    def reset(self) -> None:
        """Release every leg and park the carriers at the seat."""
        self.engaged[:] = -1
        self.data.eq_active[self.ids.screw_welds.reshape(-1)] = 0
        self.data.qpos[self.ids.carrier_qpos.reshape(-1)] = 0.0
        self.data.qvel[self.ids.carrier_dof.reshape(-1)] = 0.0

    def legs_in_seat_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Each leg's position (holes x legs x 3) and rotation (holes x legs x 3 x 3) in each hole's seat frame."""
        top_rot = self.data.xmat[self.ids.top_body].reshape(3, 3)
        seats = self.data.xpos[self.ids.top_body] + self.holes @ top_rot.T
        legs_pos = self.data.xpos[self.ids.leg_bodies]
        legs_rot = self.data.xmat[self.ids.leg_bodies].reshape(-1, 3, 3)
        rel_pos = np.einsum("ji,hlj->hli", top_rot, legs_pos[None] - seats[:, None])
        rel_rot = np.einsum("ji,ljk->lik", top_rot, legs_rot)
        return rel_pos, np.broadcast_to(rel_rot, (len(self.holes),) + rel_rot.shape)

    def update(self) -> None:
        """Engage legs that reached a thread start, release legs unscrewed past it."""
        hinge = self.data.qpos[self.ids.carrier_qpos[:, 1]]
        for hole in np.flatnonzero((self.engaged >= 0) & (hinge > RELEASE_ANGLE)):
            self.data.eq_active[self.ids.screw_welds[hole, self.engaged[hole]]] = 0
            self.engaged[hole] = -1
        rel_pos, rel_rot = self.legs_in_seat_frames()
        lateral = np.hypot(rel_pos[..., 0], rel_pos[..., 2])
        height = rel_pos[..., 1]
        candidates = ((lateral <= ENGAGE_LATERAL) & (height <= THREAD_START) & (height > -THREAD_PITCH)
                      & (rel_rot[..., 1, 1] >= ENGAGE_TILT_COS))
        candidates[self.engaged >= 0] = False
        candidates[:, self.engaged[self.engaged >= 0]] = False
        for hole, leg in zip(*np.nonzero(candidates)):
            if self.engaged[hole] < 0 and leg not in self.engaged:
                self._engage(hole, leg, height[hole, leg], rel_rot[hole, leg])

    def _engage(self, hole: int, leg: int, height: float, rel_rot: np.ndarray) -> None:
        yaw = np.arctan2(rel_rot[0, 2], rel_rot[0, 0])  # rotation about the hole axis
        turns = np.round((max(height, 0.0) * HINGE_PER_METRE - yaw) / (2 * np.pi))
        angle = float(yaw + 2 * np.pi * turns)
        angle += 2 * np.pi * ((angle < 0.0) - (angle > RELEASE_ANGLE))  # stay on the thread, same phase
        slide, hinge = self.ids.carrier_qpos[hole]
        self.data.qpos[slide], self.data.qpos[hinge] = angle / HINGE_PER_METRE, angle
        self.data.qvel[self.ids.carrier_dof[hole]] = 0.0
        self.data.eq_active[self.ids.screw_welds[hole, leg]] = 1
        self.engaged[hole] = leg
