"""What the graph carries for one task: its action's components and how robot messages become the policy's observation.

Two task families run on the graph (docs/graph.md, "Tasks"):

- the fast robomimic tasks (lift, can, square): robosuite's 7-D OSC_POSE action; the observation is built from the
  end-effector pose, the two finger positions and the first object pose, all in the world frame
  (``inril_sim.layout.flat_observation``);
- FurnitureBench (``furniture/one_leg``, ``furniture/round_table``, ``furniture/lamp``, the MuJoCo port): the 8-D delta-pose action;
  the observation is FurnitureBench's ``robot_state`` (end-effector pose in the robot-base frame, its twist, the
  gripper width) and ``parts_poses`` (every part in the AprilTag frame: 5 for one_leg, 3 for round_table and lamp), as
  FurnitureBench's real robot assembles it (``inril_sim.furniture.contracts.flatten_observation``).

One object per task answers, for every node, the same questions: which topics make an observation, what numbers a
message of each holds (checked: sizes, NaN), how those numbers become the observation vector, and, for the sim
bridge, the same numbers read off the simulator. Because the bridge publishes exactly ``env_state`` and the policy
server and recorder rebuild the observation from it with ``observation``, a test can pin that the graph's observation
is the environment's own (tests/unit/test_task_io.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
from sensor_msgs.msg import JointState

from inril_core.safety import ACTION_NAMES, hold_action
from inril_ros import interfaces
from inril_ros.convert import (MessageError, joint_state, pose_array, pose_stamped, pose_to_arrays, stamp_ns,
                               twist_stamped)

FURNITURE_PREFIX = "furniture/"
BRIDGED_FAST_TASKS = ("lift", "can", "square")  # one-arm fast tasks (transport has two arms: no ROS bridge)
BRIDGED_FURNITURE = ("one_leg", "round_table", "lamp")  # the MuJoCo port's tasks (FurnitureSim needs IsaacGym: no bridge)
BRIDGED_TASKS = (*BRIDGED_FAST_TASKS, *(FURNITURE_PREFIX + name for name in BRIDGED_FURNITURE))
POSE_SIZE = 7  # position (3) + quaternion (x, y, z, w)


class TaskIO(ABC):
    """The graph's view of one task; made with :func:`task_io`. Values are numpy arrays keyed by topic:
    EEF_POSE (7,) position + quaternion xyzw, EEF_TWIST (6,) linear + angular velocity, GRIPPER_STATE (2,) finger
    positions, OBJECT_POSES (n, 7) poses."""

    rotation: str                       # action convention of inril_core.safety: axis_angle | quaternion
    observation_topics: tuple[str, ...]
    n_objects: int                      # poses an OBJECT_POSES message must hold
    extra_objects_allowed: bool         # whether it may hold more (the fast tasks read their first object only)
    finger_joints: tuple[str, str]      # joint names of the GRIPPER_STATE message
    eef_frame: str
    objects_frame: str
    obs_dim: int

    def __init__(self, task: str) -> None:
        self.task = task

    @property
    def action_names(self) -> tuple[str, ...]:
        return ACTION_NAMES[self.rotation]

    @property
    def hold_action(self) -> np.ndarray:
        """No motion, gripper left as it is: what the sim steps with when a real-time tick has no command."""
        return hold_action(self.rotation)

    def read(self, topic: str, msg: Any) -> tuple[int, np.ndarray]:
        """(stamp ns, the numbers of ``msg``) for an observation topic; a malformed or non-finite message raises
        MessageError naming the field."""
        if topic not in self.observation_topics:
            raise MessageError(f"{topic} is not an observation topic of task {self.task}")
        if topic == interfaces.EEF_POSE:
            values = np.concatenate(pose_to_arrays(msg.pose))
        elif topic == interfaces.EEF_TWIST:
            lin, ang = msg.twist.linear, msg.twist.angular
            values = np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])
        elif topic == interfaces.GRIPPER_STATE:
            if len(msg.position) != 2:
                raise MessageError(f"{len(msg.position)} positions, expected the 2 finger positions")
            values = np.asarray(msg.position, dtype=np.float64)
        elif topic == interfaces.OBJECT_POSES:
            if len(msg.poses) < self.n_objects or (len(msg.poses) > self.n_objects and not self.extra_objects_allowed):
                raise MessageError(f"{len(msg.poses)} poses, task {self.task} has {self.n_objects} objects")
            values = np.stack([np.concatenate(pose_to_arrays(p)) for p in msg.poses[:self.n_objects]])
        if not np.isfinite(values).all():
            raise MessageError(f"NaN/Inf at {np.flatnonzero(~np.isfinite(values.reshape(-1))).tolist()}")
        return stamp_ns(msg.header.stamp), values

    def messages(self, parts: Mapping[str, np.ndarray], stamp_s: float) -> dict[str, Any]:
        """The inverse of ``read``: one message per observation topic, all stamped ``stamp_s``, in the task's frames
        (what the sim bridge publishes)."""
        eef, fingers = parts[interfaces.EEF_POSE], parts[interfaces.GRIPPER_STATE]
        messages = {
            interfaces.EEF_POSE: pose_stamped(eef[:3], eef[3:], stamp_s, self.eef_frame),
            interfaces.GRIPPER_STATE: joint_state(self.finger_joints, fingers, stamp_s),
            interfaces.OBJECT_POSES: pose_array([(p[:3], p[3:]) for p in parts[interfaces.OBJECT_POSES]], stamp_s,
                                                self.objects_frame),
        }
        if interfaces.EEF_TWIST in self.observation_topics:
            twist = parts[interfaces.EEF_TWIST]
            messages[interfaces.EEF_TWIST] = twist_stamped(twist[:3], twist[3:], stamp_s, self.eef_frame)
        return messages

    @abstractmethod
    def observation(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The policy's float32 observation from one stamp's values of every observation topic."""

    @abstractmethod
    def env_state(self, sim: Any) -> dict[str, np.ndarray]:
        """The values of every observation topic, read off the simulator ``sim`` (the env's ``unwrapped``)."""

    @abstractmethod
    def joint_state(self, sim: Any) -> tuple[tuple[str, ...], np.ndarray]:
        """(joint names, positions) for /joint_states: what the robot's joint-state broadcaster would publish."""


class FastTaskIO(TaskIO):
    rotation = "axis_angle"
    observation_topics = (interfaces.EEF_POSE, interfaces.GRIPPER_STATE, interfaces.OBJECT_POSES)
    n_objects = 1  # the flat observation describes the task's first object
    extra_objects_allowed = True
    eef_frame = objects_frame = "world"

    def __init__(self, task: str) -> None:
        from inril_sim.base_env import GripperTaskEnv
        from inril_sim.layout import obs_layout

        super().__init__(task)
        self.finger_joints = GripperTaskEnv.FINGER_JOINTS
        self.obs_dim = max(s.stop for s in obs_layout(task).values())

    def observation(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        from inril_sim.layout import flat_observation
        from inril_sim.rotations import xyzw_to_wxyz

        eef, obj = parts[interfaces.EEF_POSE], parts[interfaces.OBJECT_POSES][0]
        return flat_observation(self.task, obj[:3], xyzw_to_wxyz(obj[3:]), eef[:3], xyzw_to_wxyz(eef[3:]),
                                parts[interfaces.GRIPPER_STATE])

    def env_state(self, sim: Any) -> dict[str, np.ndarray]:
        from inril_sim.rotations import wxyz_to_xyzw

        return {interfaces.EEF_POSE: np.concatenate([sim.eef_pos, wxyz_to_xyzw(sim.eef_quat)]),
                interfaces.GRIPPER_STATE: np.asarray(sim.finger_qpos, dtype=np.float64),
                interfaces.OBJECT_POSES: np.concatenate([sim.object_pos, wxyz_to_xyzw(sim.object_quat)])[None]}

    def joint_state(self, sim: Any) -> tuple[tuple[str, ...], np.ndarray]:
        return self.finger_joints, np.asarray(sim.finger_qpos)  # a floating hand: no arm joints


class FurnitureTaskIO(TaskIO):
    rotation = "quaternion"
    observation_topics = (interfaces.EEF_POSE, interfaces.EEF_TWIST, interfaces.GRIPPER_STATE,
                          interfaces.OBJECT_POSES)
    eef_frame = "panda_link0"      # FurnitureBench's robot_state is in the robot-base frame
    objects_frame = "april_tag"    # and its parts_poses in the frame of the AprilTag on the base
    # every part's pose is in the observation, in furniture_bench's order: another furniture's poses must not pass
    extra_objects_allowed = False

    def __init__(self, task: str) -> None:
        from inril_sim.furniture.contracts import furniture_spec
        from inril_sim.furniture.mujoco_scene import FINGER_JOINTS

        super().__init__(task)
        self.finger_joints = FINGER_JOINTS
        self.spec = furniture_spec(task[len(FURNITURE_PREFIX):])
        self.n_objects = len(self.spec.part_names)
        self.obs_dim = self.spec.obs_dim

    def observation(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        from inril_sim.furniture.contracts import flatten_observation

        eef, twist, fingers = (parts[t] for t in (interfaces.EEF_POSE, interfaces.EEF_TWIST,
                                                   interfaces.GRIPPER_STATE))
        robot_state = {"ee_pos": eef[:3], "ee_quat": eef[3:], "ee_pos_vel": twist[:3], "ee_ori_vel": twist[3:],
                       "gripper_width": np.array([fingers.sum()])}
        return flatten_observation(self.spec, {"robot_state": robot_state,
                                               "parts_poses": parts[interfaces.OBJECT_POSES].reshape(-1)})

    def env_state(self, sim: Any) -> dict[str, np.ndarray]:
        robot = sim.robot_state()
        return {interfaces.EEF_POSE: np.concatenate([robot["ee_pos"], robot["ee_quat"]]),
                interfaces.EEF_TWIST: np.concatenate([robot["ee_pos_vel"], robot["ee_ori_vel"]]),
                interfaces.GRIPPER_STATE: sim.finger_qpos(),
                interfaces.OBJECT_POSES: sim.parts_poses().reshape(-1, POSE_SIZE)}

    def joint_state(self, sim: Any) -> tuple[tuple[str, ...], np.ndarray]:
        return sim.joint_names(), sim.joint_positions()


@lru_cache(maxsize=None)
def task_io(task: str) -> TaskIO:
    """The graph's view of ``task`` (``lift``, ``furniture/one_leg``, ...); a task without a ROS bridge raises
    ValueError naming the ones that have one."""
    if task not in BRIDGED_TASKS:
        raise ValueError(f"task {task!r} has no node-graph interface: use one of {', '.join(BRIDGED_TASKS)} "
                         "(robosuite and IsaacGym backends and two-arm tasks run with 'inril train', not the graph)")
    return FurnitureTaskIO(task) if task.startswith(FURNITURE_PREFIX) else FastTaskIO(task)


def message_for(topic: str) -> type:
    """The message type of an observation topic."""
    return {interfaces.EEF_POSE: PoseStamped, interfaces.EEF_TWIST: TwistStamped,
            interfaces.GRIPPER_STATE: JointState, interfaces.OBJECT_POSES: PoseArray}[topic]
