"""FurnitureBench's tasks in MuJoCo, behind the same contract as FurnitureSim: ``task=furniture/one_leg``,
``task=furniture/round_table``, ``task=furniture/lamp`` (each furniture's parts: ``square_table_scene``,
``round_table_scene``, ``lamp_scene``).

One env step is FurnitureSim's: the 8-D action (delta position in metres in the robot-base frame, delta quaternion
x, y, z, w multiplied onto the hand orientation, gripper toggled when its sign flips beyond 0.019) sets the OSC goal,
then 6 physics steps of 1/120 s (0.05 s, as FurnitureSim's three 1/60 s calls) with the controller's torques
recomputed and the screw threads checked before each, on that step's own kinematics. The observation is
FurnitureSim's state observation flattened by ``contracts.flatten_observation``: robot_state 14 (hand pose in the
robot-base frame, its velocities, gripper width) then each part's pose in the AprilTag base frame. Initial part poses come from
furniture_bench's own ``randomize_init_pose`` (low: +-1.5 cm and +-15 deg; med: +-5 cm and +-45 deg), seeded from the
env's generator. Success (reward 1, termination) is FurnitureBench's reward check on every pair that should be
assembled; ``info["success_strict"]`` is its stricter scripted-demo check.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import gymnasium as gym
import mujoco
import numpy as np

from inril_sim.furniture.contracts import (ACTION_DIM, assembled_pairs, flatten_observation, furniture_spec,
                                           import_furniture_bench, own_reset_poses, to_furniture_action)
from inril_sim.furniture.frames import furniture_frames, mat_to_pose_xyzw, pose_to_mat
from inril_sim.furniture.lamp_scene import LAMP
from inril_sim.furniture.mujoco_scene import (ARM_JOINTS, CAMERAS, FINGER_JOINTS, GRIPPER_FORCE, IMAGE_SIZE,
                                              PHYSICS_STEPS_PER_ENV_STEP, TIMESTEP, FurnitureParts, build_model)
from inril_sim.furniture.osc import OperationalSpaceController
from inril_sim.furniture.round_table_scene import ROUND_TABLE
from inril_sim.furniture.screw import ScrewThreads
from inril_sim.furniture.square_table_scene import SQUARE_TABLE
from inril_sim.rotations import canonical_xyzw, xyzw_to_wxyz

GRASP_MARGIN = 0.02 - 0.001          # FurnitureSimEnv.grasp_margin
# MuJoCo's checks that reset the state when the simulation diverges (mj_checkPos / mj_checkVel / mj_checkAcc)
_DIVERGENCE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                        mujoco.mjtWarning.mjWARN_BADQACC)
RANDOMNESS = {"low": ((-0.015, 0.015), 15.0), "med": ((-0.05, 0.05), 45.0)}
SQUARE_TABLE_FURNITURE = ("one_leg", "square_table")
# furniture -> the parts the scene holds (FurnitureSim loads every part of a furniture, also for one_leg)
SCENES: dict[str, FurnitureParts] = {**{name: SQUARE_TABLE for name in SQUARE_TABLE_FURNITURE},
                                     "round_table": ROUND_TABLE, "lamp": LAMP}


@contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """furniture_bench draws from numpy's global generator; seed it for one call and give the caller's state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class FurnitureMujocoEnv(gym.Env):
    """One FurnitureBench task (``one_leg``, ``square_table``, ``round_table``, ``lamp``) simulated in MuJoCo."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_dt = TIMESTEP * PHYSICS_STEPS_PER_ENV_STEP  # simulated seconds per env step (0.05, as FurnitureSim)

    def __init__(self, furniture: str = "one_leg", randomness: str = "low", render_mode: str | None = None) -> None:
        if furniture not in SCENES:
            raise ValueError(f"the MuJoCo port has {', '.join(SCENES)}, not '{furniture}'; "
                             f"FurnitureSim itself runs it: task=furniture/{furniture}@isaac")
        if randomness not in RANDOMNESS:
            raise ValueError(f"randomness '{randomness}' is not one of {', '.join(RANDOMNESS)} (FurnitureBench's "
                             "'high' uses three fixed poses per part that the port does not have yet)")
        furniture_modules, _ = import_furniture_bench()
        from furniture_bench.config import config

        self.furniture_name, self.randomness, self.render_mode = furniture, randomness, render_mode
        self.contract = furniture_spec(furniture)
        self.furniture = furniture_modules.furniture_factory(furniture)  # this env's own: reset poses live here
        own_reset_poses(self.furniture)
        self.max_gripper_width = float(config["robot"]["max_gripper_width"][furniture])
        self.frames = furniture_frames()
        self.model, self.ids = build_model(SCENES[furniture])
        self.data = mujoco.MjData(self.model)
        self.threads = ScrewThreads(self.model, self.data, self.ids)
        self.controller = OperationalSpaceController(self.frames.reset_joints, self.frames.ee_position_limits)
        self._sim_to_april = self.frames.sim_to_april
        self._base_pos = self.frames.robot_base_in_sim[:3, 3]
        self._jac = np.zeros((6, self.model.nv))
        self._mass = np.zeros((self.model.nv, self.model.nv))
        self._finger_ctrl = np.array([self.model.actuator(n).id for n in ("panda_finger_joint1",
                                                                         "panda_finger_joint2")])
        self._arm_ctrl = np.array([self.model.actuator(f"panda_joint{i}").id for i in range(1, 8)])
        self._last_grasp = -1.0
        self._renderer: mujoco.Renderer | None = None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.contract.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    # -- state read-out, in FurnitureSim's frames -------------------------------------------------------------------

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Hand (``k_ee_link``) position in the robot-base frame and its world (x, y, z, w) quaternion, w >= 0."""
        return self.data.xpos[self.ids.ee_body] - self._base_pos, canonical_xyzw(self.data.xquat[self.ids.ee_body])

    def gripper_width(self) -> float:
        return float(self.data.qpos[self.ids.finger_qpos].sum())

    def finger_qpos(self) -> np.ndarray:
        """The two finger positions (m); their sum is ``gripper_width``."""
        return self.data.qpos[self.ids.finger_qpos].copy()

    @staticmethod
    def joint_names() -> tuple[str, ...]:
        """The Panda's seven arm joints and two fingers, as franka_ros2 names them on /joint_states."""
        return (*ARM_JOINTS, *FINGER_JOINTS)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[np.concatenate([self.ids.arm_qpos, self.ids.finger_qpos])].copy()

    def part_poses_sim(self) -> np.ndarray:
        """(parts, 4, 4) world poses of the parts in furniture_bench's order (square table: top, legs 1-4)."""
        return np.stack([pose_to_mat(self.data.xpos[b], self.data.xquat[b]) for b in self.ids.part_bodies])

    def parts_poses(self) -> np.ndarray:
        """FurnitureSim's ``parts_poses``: each part's position and (x, y, z, w) quaternion in the AprilTag frame."""
        return np.concatenate([mat_to_pose_xyzw(self._sim_to_april @ m) for m in self.part_poses_sim()])

    def robot_state(self) -> dict[str, np.ndarray]:
        ee_pos, ee_quat = self.ee_pose()
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, self.ids.ee_body, vel, 0)
        return {"ee_pos": ee_pos, "ee_quat": ee_quat, "ee_pos_vel": vel[3:], "ee_ori_vel": vel[:3],
                "gripper_width": np.array([self.gripper_width()])}

    def _observation(self, parts_poses: np.ndarray) -> np.ndarray:
        return flatten_observation(self.contract, {"robot_state": self.robot_state(), "parts_poses": parts_poses})

    # -- gymnasium API ----------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.furniture.reset()
        pos_range, rot_range = RANDOMNESS[self.randomness]
        with _numpy_global_seed(int(self.np_random.integers(2 ** 31))):
            self.furniture.randomize_init_pose(0, pos_range=list(pos_range), rot_range=rot_range)
        april_in_sim = self.frames.april_in_sim
        for part, qpos in zip(self.furniture.parts, self.ids.part_qpos):
            pose = np.array(part.reset_ori[0], dtype=float)
            pose[:3, 3] = part.reset_pos[0]
            world = mat_to_pose_xyzw(april_in_sim @ pose)
            self.data.qpos[qpos[:3]], self.data.qpos[qpos[3:]] = world[:3], xyzw_to_wxyz(world[3:])
        self.data.qpos[self.ids.arm_qpos] = self.frames.reset_joints
        self.data.qpos[self.ids.finger_qpos] = self.max_gripper_width / 2
        self.threads.reset()
        self._last_grasp = -1.0
        self.data.ctrl[self._finger_ctrl] = GRIPPER_FORCE
        mujoco.mj_forward(self.model, self.data)
        ee_pos, ee_quat = self.ee_pose()
        self.controller.start(ee_pos, xyzw_to_wxyz(ee_quat))
        return self._observation(self.parts_poses()), {"success": False, "success_strict": False}

    def _unstable_count(self) -> int:
        """How often MuJoCo has found the simulation diverging (and reset its state) so far."""
        return sum(int(self.data.warning[w].number) for w in _DIVERGENCE_WARNINGS)

    def _refresh_kinematics(self) -> None:
        """Poses and velocities of the state the last physics step reached (what the observation must show)."""
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_comVel(self.model, self.data)

    def _apply_gripper(self, command: float) -> None:
        """FurnitureSim's toggle: the gripper changes only when the command's sign flips beyond the margin."""
        if np.sign(command) != np.sign(self._last_grasp) and abs(command) > GRASP_MARGIN:
            self._last_grasp = command
        self.data.ctrl[self._finger_ctrl] = GRIPPER_FORCE if self._last_grasp < 0 else -GRIPPER_FORCE

    def _control_torques(self) -> np.ndarray:
        arm_dof = self.ids.arm_dof
        mujoco.mj_jacBody(self.model, self.data, self._jac[:3], self._jac[3:], self.ids.ee_body)
        mujoco.mj_fullM(self.model, self._mass, self.data.qM)
        return self.controller.torques(
            self.data.xpos[self.ids.ee_body] - self._base_pos, self.data.xmat[self.ids.ee_body].reshape(3, 3),
            self._jac[:, arm_dof], self._mass[np.ix_(arm_dof, arm_dof)], self.data.qpos[self.ids.arm_qpos],
            self.data.qvel[arm_dof])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = to_furniture_action(action)
        ee_pos, ee_quat = self.ee_pose()
        self.controller.set_action(ee_pos, xyzw_to_wxyz(ee_quat), a[:3], xyzw_to_wxyz(a[3:7]))
        self._apply_gripper(float(a[7]))
        unstable_before = self._unstable_count()
        for _ in range(PHYSICS_STEPS_PER_ENV_STEP):
            # step1 computes kinematics, Jacobian and mass matrix for the current state, so the controller and the
            # thread checks see it as IsaacGym's refreshed tensors do (after a plain mj_step they lag one step)
            mujoco.mj_step1(self.model, self.data)
            self.threads.update()
            self.data.ctrl[self._arm_ctrl] = self._control_torques()
            mujoco.mj_step2(self.model, self.data)
        self._refresh_kinematics()
        poses = self.parts_poses()
        done = assembled_pairs(self.contract, poses)
        success = len(done) == len(self.contract.should_be_assembled)
        strict = success and len(assembled_pairs(self.contract, poses, strict=True)) == len(done)
        obs = self._observation(poses)  # the poses the success checks read, computed once
        info = {"success": success, "success_strict": strict}
        if self._unstable_count() > unstable_before:
            # MuJoCo reset the state to the model's defaults mid-step: the episode cannot go on from there
            gym.logger.warn("FurnitureMujocoEnv: the simulation became unstable (NaN/huge accelerations, e.g. a "
                            "violent collision); episode truncated")
            return obs, 0.0, False, True, {**info, "success": False, "success_strict": False, "sim_unstable": True}
        return obs, float(success), success, False, info

    def camera_image(self, camera: str) -> np.ndarray:
        """224 x 224 RGB image of FurnitureBench's ``wrist``, ``front`` or ``rear`` camera."""
        if camera not in CAMERAS:
            raise ValueError(f"FurnitureBench has cameras {', '.join(CAMERAS)}, not '{camera}'")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, IMAGE_SIZE, IMAGE_SIZE)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def render(self) -> np.ndarray | None:
        """The front camera's image with ``render_mode="rgb_array"`` (what a video of an episode shows)."""
        return self.camera_image("front") if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

