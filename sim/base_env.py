"""Shared gymnasium envs for the fast tasks: action handling, observation, reset of the grippers, rendering.

``FloatingGrippersEnv`` drives one floating gripper per robosuite arm (one for Lift/Can/Square, two for Transport):
the action is 7 numbers per arm, in arm order. ``GripperTaskEnv`` is the single-arm, single-object case.

The action follows robosuite's OSC_POSE in delta mode (docs/contracts.md): every control step the goal pose is
re-anchored on the *measured* end-effector pose, goal = eef + 0.05 * a[:3] and R_goal = R(0.5 * a[3:6]) R_eef
(rotation vector in the world frame, its angle squashed as robosuite's arm saturates), plus the translation a
rotation drags along on robosuite's arm (``ROTATION_TO_TRANSLATION_HAND``), and the hand then tracks
it for one control period through the soft weld (``scene``). Re-anchoring on the measured pose rather than
accumulating a target is what robosuite does; it gives the same speed per unit action (about 1.2 cm per step at
a = 1 from rest to steady state) and means a blocked hand never winds up a far-away target. The goal position
is clipped to a per-arm workspace box.

The gripper command copies robosuite's PandaGripper: the sign of a[6] moves an internal state by 0.2 per step
within [-1, 1] (+1 closed), mapped linearly onto the finger position targets. So closing from fully open takes
about five steps, as on robosuite.

One control step is one ``mj_step(model, data, nstep=25)`` call: no Python runs per physics sub-step.
Observations are read from ``qpos`` (hand and object are free bodies of the world), which is exact after
``mj_step`` whereas ``xpos`` lags one sub-step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from inril_sim.layout import flat_observation, obs_layout
from inril_sim.rotations import axis_angle_to_quat, quat_mul, quat_to_mat, xyzw_to_wxyz
from inril_sim.scene import CONTROL_DT, TIMESTEP

POS_SCALE = 0.05  # metres per unit action, robosuite OSC_POSE output_max
ROT_SCALE = 0.5  # radians per unit action
# robosuite's Panda cannot turn as fast as large rotation goals ask (measured yaw per step: 0.031 rad at a = 0.3,
# 0.047 at 0.5, 0.060 at 0.7, 0.064 at 1.0, where a linear response would double from 0.5 to 1.0). Squashing the
# goal angle with ROT_SATURATION * tanh(angle / ROT_SATURATION) gives this hand the same yaw speeds within ~15%.
ROT_SATURATION = 0.28
# robosuite's arm also translates the grip point when asked only to rotate (its OSC re-anchors on the arm's achieved
# pose, and the wrist pivots above the fingers): 6-9 mm per step under rotation noise 0.3. A floating hand turns in
# place, which made noisy experts far more successful here than on robosuite (square 0.80 vs 0.15). The coupling is
# linear in the commanded rotation, expressed in the hand frame (x forward, z along the fingers, hand pointing down
# at home): rows are the grip point's translation, columns the rotation axis, in metres per radian of goal
# rotation. Fitted to robosuite's Panda in its home pose (parity.action_noise_response): a roll moves the grip point
# sideways 0.35 m/rad, a pitch forwards 0.24 m/rad and down 0.18 m/rad, a yaw sideways 0.14 m/rad.
ROTATION_TO_TRANSLATION_HAND = np.array([
    [0.0, 0.24, 0.0],
    [-0.35, 0.0, 0.14],
    [0.0, -0.18, 0.0],
])
GRIPPER_SPEED = 0.2  # PandaGripper.speed: change of the gripper state per step
GRIPPER_HALF_RANGE = 0.02  # finger targets span [0, 0.04] and [-0.04, 0]
GRIPPER_INIT_QPOS = 0.020833  # PandaGripper.init_qpos

# robosuite's Panda at its init_qpos: eef quat xyzw (0.998, 0.0002, 0.0636, 0), i.e. pointing down with ~7 deg
# pitch. Its joint noise (std 0.02 rad) moves the eef by about these standard deviations (measured, 30 resets).
_HOME_XYZW = np.array([0.998, 0.0002, 0.0636, 0.0])
HOME_QUAT = xyzw_to_wxyz(_HOME_XYZW / np.linalg.norm(_HOME_XYZW))
INIT_POS_STD = np.array([0.01, 0.015, 0.008])
INIT_ROT_STD = 0.03

# robosuite's Can and Square count an object as placed only once the gripper has let go:
# r_reach = 1 - tanh(10 d) < 0.6, i.e. eef-to-object distance d > atanh(0.4) / 10.
RELEASE_DISTANCE = float(np.arctanh(0.4) / 10)


def _saturate_rotation(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return rotvec
    return rotvec * (ROT_SATURATION * np.tanh(angle / ROT_SATURATION) / angle)


@dataclass(frozen=True)
class Arm:
    """The robosuite Panda one floating gripper stands in for: where its hand starts and where it may go."""

    prefix: str  # MJCF name prefix of the gripper (scene.build_model); "" in the single-arm scenes
    home_pos: np.ndarray  # nominal eef position at reset (robosuite's Panda init pose)
    base_yaw: float  # heading of the Panda's base: turns the home orientation and the reset noise with the robot
    workspace: tuple[np.ndarray, np.ndarray]  # bounds of the eef goal position


class _Hand:
    """One arm's gripper in the compiled model: qpos addresses, mocap target, finger actuators, gripper state."""

    def __init__(self, model: mujoco.MjModel, arm: Arm) -> None:
        def qpos_adr(joint: str) -> int:
            return int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, arm.prefix + joint)])

        self.arm = arm
        self.qpos = qpos_adr("hand_free")
        self.fingers = [qpos_adr("finger_joint1"), qpos_adr("finger_joint2")]
        self.mocap = int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY,
                                                              arm.prefix + "hand_target")])
        self.ctrl = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{arm.prefix}gripper_finger_joint{i}")
                     for i in (1, 2)]
        turn = axis_angle_to_quat(np.array([0.0, 0.0, arm.base_yaw]))
        self.home_quat = quat_mul(turn, HOME_QUAT)
        self.turn = quat_to_mat(turn)
        self.state = 0.0  # PandaGripper's internal state: -1 open, +1 closed


class FloatingGrippersEnv(gym.Env):
    """Floating Panda-like grippers, one per arm of the robosuite task; subclasses add the scene and the task."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": round(1 / CONTROL_DT)}
    control_dt: ClassVar[float] = CONTROL_DT  # simulated seconds per env step (the ROS bridge's stamp period)

    task: ClassVar[str]

    def __init__(self, render_mode: str | None = None, width: int = 256, height: int = 256) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None or 'rgb_array'")
        self.render_mode = render_mode
        self.model = self._build_model()
        self.data = mujoco.MjData(self.model)
        self._n_substeps = round(CONTROL_DT / TIMESTEP)
        self._hands = [_Hand(self.model, arm) for arm in self._arms()]
        self.obs_layout = obs_layout(self.task)
        obs_dim = max(s.stop for s in self.obs_layout.values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7 * len(self._hands),), np.float32)
        self._render_size = (height, width)
        self._renderer: mujoco.Renderer | None = None

    # -- task hooks ---------------------------------------------------------------------------------------------

    def _arms(self) -> tuple[Arm, ...]:
        raise NotImplementedError

    def _build_model(self) -> mujoco.MjModel:
        raise NotImplementedError

    def _place_objects(self, rng: np.random.Generator) -> None:
        """Write the objects' initial poses into ``self.data.qpos`` (and resize them if the task randomises size)."""
        raise NotImplementedError

    def _is_success(self) -> bool:
        raise NotImplementedError

    def _get_obs(self) -> np.ndarray:
        raise NotImplementedError

    # -- state accessors ----------------------------------------------------------------------------------------

    def _joint_qpos_adr(self, name: str) -> int:
        return int(self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)])

    def hand_pos(self, arm: int) -> np.ndarray:
        """eef position of arm ``arm`` (robosuite's ``robot{arm}_eef_pos``)."""
        adr = self._hands[arm].qpos
        return self.data.qpos[adr:adr + 3]

    def hand_quat(self, arm: int) -> np.ndarray:
        """eef orientation of arm ``arm``, wxyz."""
        adr = self._hands[arm].qpos
        return self.data.qpos[adr + 3:adr + 7]

    def hand_fingers(self, arm: int) -> np.ndarray:
        """The two finger positions (m) of arm ``arm``: its ``robot{arm}_gripper_qpos``."""
        return self.data.qpos[self._hands[arm].fingers]

    # -- gymnasium API ------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        for hand in self._hands:
            pos = hand.arm.home_pos + hand.turn @ rng.normal(0.0, INIT_POS_STD)
            quat = quat_mul(axis_angle_to_quat(rng.normal(0.0, INIT_ROT_STD, 3)), hand.home_quat)
            self.data.qpos[hand.qpos:hand.qpos + 3] = pos
            self.data.qpos[hand.qpos + 3:hand.qpos + 7] = quat
            self.data.mocap_pos[hand.mocap] = pos
            self.data.mocap_quat[hand.mocap] = quat
            self.data.qpos[hand.fingers] = [GRIPPER_INIT_QPOS, -GRIPPER_INIT_QPOS]
            hand.state = 0.0
            self._apply_gripper(hand, 0.0)
        self._place_objects(rng)
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), {"success": False}

    def _apply_gripper(self, hand: _Hand, command: float) -> None:
        hand.state = float(np.clip(hand.state + GRIPPER_SPEED * np.sign(command), -1.0, 1.0))
        opening = GRIPPER_HALF_RANGE * (1.0 - hand.state)
        self.data.ctrl[hand.ctrl[0]] = opening
        self.data.ctrl[hand.ctrl[1]] = -opening

    def _drive(self, hand: _Hand, a: np.ndarray) -> None:
        """Set one hand's mocap goal and gripper target from its 7 action numbers (already clipped)."""
        low, high = hand.arm.workspace
        adr = hand.qpos
        pos, quat = self.data.qpos[adr:adr + 3], self.data.qpos[adr + 3:adr + 7]
        rotvec = _saturate_rotation(ROT_SCALE * a[3:6])
        rot = quat_to_mat(quat)
        coupled = rot @ ROTATION_TO_TRANSLATION_HAND @ rot.T @ rotvec
        self.data.mocap_pos[hand.mocap] = np.clip(pos + POS_SCALE * a[:3] + coupled, low, high)
        self.data.mocap_quat[hand.mocap] = quat_mul(axis_angle_to_quat(rotvec), quat)
        self._apply_gripper(hand, a[6])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if a.shape != self.action_space.shape:
            raise ValueError(f"{self.task}: action has shape {a.shape}, expected {self.action_space.shape} "
                             "(7 numbers per arm: delta position, delta rotation, gripper)")
        for i, hand in enumerate(self._hands):
            self._drive(hand, a[7 * i:7 * i + 7])
        mujoco.mj_step(self.model, self.data, nstep=self._n_substeps)
        success = self._is_success()
        return self._get_obs(), float(success), success, False, {"success": success}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self._render_size)
        self._renderer.update_scene(self.data, camera="agentview")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class GripperTaskEnv(FloatingGrippersEnv):
    """One floating Panda-like gripper and one free object; subclasses add fixtures, reset ranges and success."""

    home_pos: ClassVar[np.ndarray]  # nominal eef position at reset (robosuite's Panda init pose for this task)
    workspace: ClassVar[tuple[np.ndarray, np.ndarray]]  # bounds of the eef goal position
    # The finger slide joints, whose positions are robot0_gripper_qpos; public so a ROS bridge can name them.
    FINGER_JOINTS: ClassVar[tuple[str, str]] = ("finger_joint1", "finger_joint2")

    def __init__(self, render_mode: str | None = None, width: int = 256, height: int = 256) -> None:
        super().__init__(render_mode, width, height)
        self._hand_qpos = self._hands[0].qpos
        self._finger_qpos = self._hands[0].fingers
        self._object_qpos = self._joint_qpos_adr("object_free")

    def _arms(self) -> tuple[Arm, ...]:
        return (Arm(prefix="", home_pos=self.home_pos, base_yaw=0.0, workspace=self.workspace),)

    @property
    def eef_pos(self) -> np.ndarray:
        return self.data.qpos[self._hand_qpos:self._hand_qpos + 3]

    @property
    def eef_quat(self) -> np.ndarray:
        """wxyz."""
        return self.data.qpos[self._hand_qpos + 3:self._hand_qpos + 7]

    @property
    def object_pos(self) -> np.ndarray:
        return self.data.qpos[self._object_qpos:self._object_qpos + 3]

    @property
    def object_quat(self) -> np.ndarray:
        """wxyz."""
        return self.data.qpos[self._object_qpos + 3:self._object_qpos + 7]

    @property
    def finger_qpos(self) -> np.ndarray:
        """The two finger positions (m), in FINGER_JOINTS order: the observation's robot0_gripper_qpos."""
        return self.data.qpos[self._finger_qpos]

    def _object_released(self) -> bool:
        return bool(np.linalg.norm(self.eef_pos - self.object_pos) > RELEASE_DISTANCE)

    def _set_object_pose(self, pos: np.ndarray, yaw: float) -> None:
        adr = self._object_qpos
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]

    def _get_obs(self) -> np.ndarray:
        return flat_observation(self.task, self.object_pos, self.object_quat, self.eef_pos, self.eef_quat,
                                self.finger_qpos)
