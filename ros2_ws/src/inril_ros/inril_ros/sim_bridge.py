"""The simulated robot: runs an inril_sim task and publishes exactly what the real drivers publish, plus /clock.

Why it looks like hardware: the rest of the graph (policy server, executor, recorder) must not know whether it
talks to MuJoCo or to the Franka, so this node publishes the same topics, types and QoS as the robot's drivers
(docs/graph.md): joint states (the fast tasks' floating hand has finger joints only; FurnitureBench's Panda its
seven arm joints too), the end-effector pose (and, for FurnitureBench, its twist), the gripper's two finger
positions, the task's object poses (FurnitureBench: every part, in the AprilTag frame, as its real robot's
AprilTag node reports them) and, on request, rgb8 camera images. What each task publishes is ``inril_ros.task_io``'s
``env_state``, the numbers the policy server rebuilds the observation from. What the real robot lacks is added on
separate topics: ``/clock`` (the sim is the graph's clock) and ``/inril/sim/step_info`` (reward and episode end,
which on a robot come from a human label).

Time: every observation message of one env step carries the same stamp ``tick * control_dt`` (the env's simulated
seconds per step, 0.05 for every bridged task), where ``tick``
counts env steps *and resets* since the bridge started. Counting resets means a new episode's first observation
is one period after the previous episode's last one, so no two observations ever share a stamp and a node that
groups messages by stamp cannot mix two episodes. The clock is never reset.

Modes (param ``mode``):

- ``lockstep`` (default; deterministic): the env steps once when a command stamped with the current observation
  time arrives (within 1e-6 s); commands with another stamp are ignored and counted. The graph runs as fast as its
  slowest node. An observation no command answers within ``republish_s`` is published once more, same stamp:
  lock-step waits for the answer to one message, and a consumer whose subscription matched a moment too late (DDS
  matches each publisher on its own; measured up to 0.6 s after other nodes saw the subscription on a loaded
  machine) or that restarted would otherwise stall the graph. Consumers skip a stamp they already handled. Once
  only, so a graph that is really stuck still falls silent for the safety monitor.
- ``realtime``: a wall-clock timer at ``control_rate_hz`` steps the env with the newest command whatever its
  stamp, or with a hold action (no motion, gripper unchanged) when none arrived since the last step; holds are
  counted.

The bridge starts idle and publishes nothing until the first call of ``/inril/sim_bridge/reset``; after an
episode terminates or is truncated it ignores commands (and in real time does not step) until the next reset.
"""
from __future__ import annotations

import json
import math
from typing import Any

import gymnasium as gym
import inril_sim  # noqa: F401  (before mujoco: it picks MuJoCo's off-screen GL backend on a headless machine)
import mujoco
import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from inril_core.config import ConfigError, load_config
from inril_ros import interfaces
from inril_ros.convert import (
    MessageError,
    joint_state,
    json_msg,
    s_to_time,
    time_to_s,
    trajectory_to_actions,
)
from inril_ros.runtime import declare_heartbeat_hz, describe, run_node, start_heartbeat, steady_clock
from inril_ros.task_io import BRIDGED_TASKS, message_for, task_io

STAMP_TOLERANCE_S = 1e-6  # a command answers the current observation when their stamps differ by less than this
SEED_STRIDE = 100_000  # episode seeds are seed * SEED_STRIDE + episode index: runs with different seeds never overlap
MODES = ("lockstep", "realtime")


def rgb8_image(pixels: np.ndarray, stamp_s: float, frame: str) -> Image:
    """An (h, w, 3) uint8 array as a sensor_msgs/Image; ``tobytes`` because assigning the array is 60x slower."""
    height, width, _ = pixels.shape
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.data = pixels.tobytes()
    return msg


def pinhole_camera_info(fovy_deg: float, width: int, height: int, stamp_s: float, frame: str) -> CameraInfo:
    """CameraInfo of an undistorted MuJoCo camera: square pixels, vertical field of view ``fovy_deg``."""
    focal = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    cx, cy = width / 2, height / 2
    msg = CameraInfo(height=height, width=width, distortion_model="plumb_bob")
    msg.header.stamp = s_to_time(stamp_s)
    msg.header.frame_id = frame
    msg.d = [0.0] * 5
    msg.k = [focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class SimBridge(Node):
    """One simulated task behind the robot's topics; see the module docstring for time, modes and reset."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("namespace", interfaces.NAMESPACE)
        super().__init__("sim_bridge", **kwargs)
        self.task = self.declare_parameter(
            "task", "lift", describe(f"inril_sim task to run: one of {', '.join(BRIDGED_TASKS)}")).value
        self.mode = self.declare_parameter(
            "mode", "lockstep", describe("'lockstep': step on each command stamped with the observation time; "
                                         "'realtime': step on a wall timer with the newest command")).value
        self._seed = self.declare_parameter(
            "seed", 0, describe("run seed; episode k is reset with seed * 100000 + k (kept below 2**31)",
                                int_range=(0, 20_000))).value
        max_steps = self.declare_parameter(
            "max_episode_steps", 0,
            describe("episode time limit in env steps; 0 = the task's env.max_episode_steps (config/tasks/)",
                     int_range=(0, 1_000_000))).value
        self.declare_parameter("cameras", Parameter.Type.STRING_ARRAY,
                               describe("MuJoCo cameras to publish as rgb8 images (e.g. [agentview]; "
                                        "furniture/one_leg: [wrist, front, rear]); empty = no images, fastest"))
        self.cameras: list[str] = list(self.get_parameter_or(
            "cameras", Parameter("cameras", Parameter.Type.STRING_ARRAY, [])).value)
        width = self.declare_parameter(
            "camera_width", 128, describe("camera image width (px)", int_range=(8, 640))).value
        height = self.declare_parameter(
            "camera_height", 128, describe("camera image height (px)", int_range=(8, 480))).value
        control_rate_hz = self.declare_parameter(
            "control_rate_hz", 20.0,
            describe("realtime mode: env steps per wall-clock second", float_range=(0.1, 1000.0))).value
        self._republish_s = self.declare_parameter(
            "republish_s", 1.0,
            describe("lockstep mode: publish an observation once more when no command answered it for this long "
                     "(wall s); 0 = never", float_range=(0.0, 60.0))).value
        heartbeat_hz = declare_heartbeat_hz(self)

        if self.mode not in MODES:
            raise ValueError(f"parameter mode={self.mode!r} is not a mode: use one of {', '.join(MODES)}")
        try:
            self._io = task_io(self.task)
            env_cfg = load_config([f"task={self.task}"]).env
        except (ConfigError, ValueError) as error:
            raise ValueError(f"parameter task={self.task!r}: {error}") from None
        self._env = gym.make(env_cfg.id, max_episode_steps=max_steps or int(env_cfg.max_episode_steps),
                             disable_env_checker=True)
        self._sim = self._env.unwrapped
        self._control_dt = float(self._sim.control_dt)
        self._fovy = {name: float(self._sim.model.cam_fovy[self._camera_id(name)]) for name in self.cameras}
        self._renderer = mujoco.Renderer(self._sim.model, height=height, width=width) if self.cameras else None

        # Episode state. `tick` counts steps and resets: the observation stamp is tick * control_dt.
        self._tick = 0
        self._episode = -1        # index of the current episode; -1 = never reset
        self._episode_step = 0
        self._running = False     # an episode is in progress (reset done, not yet terminated or truncated)
        self._newest_action: np.ndarray | None = None  # realtime: the newest command since the last step
        self.observation: np.ndarray | None = None     # the env's own observation at the published stamp
        # Counters, read by tests and logged at each episode end.
        self.steps = 0
        self.holds = 0
        self.commands_ignored = 0  # wrong stamp, or no episode running
        self.commands_refused = 0  # malformed or non-finite
        self.republished = 0       # lockstep: observations published a second time
        self._steady = steady_clock()
        self._published_s = 0.0    # steady time the current observation was published
        self._republish_due = False  # lockstep: the current observation has not been republished yet

        state, stream, sensor = interfaces.LATEST, interfaces.STREAM, interfaces.SENSOR
        self._pubs = {
            "joints": self.create_publisher(JointState, interfaces.JOINT_STATES, state),
            "step_info": self.create_publisher(String, interfaces.STEP_INFO, stream),
            "clock": self.create_publisher(ClockMsg, interfaces.CLOCK, 10),
        }
        # the task's observation topics (task_io), keyed by topic
        self._observation_pubs = {topic: self.create_publisher(message_for(topic), topic, state)
                                  for topic in self._io.observation_topics}
        self._camera_pubs = {
            name: (self.create_publisher(Image, interfaces.camera_image(name), sensor),
                   self.create_publisher(CameraInfo, interfaces.camera_info(name), sensor))
            for name in self.cameras
        }
        self.create_subscription(JointTrajectory, interfaces.COMMAND, self._on_command, interfaces.LATEST)
        self.create_service(Trigger, interfaces.SIM_RESET, self._on_reset)
        # Wall-clock timers: with use_sim_time the node clock only moves when this node steps, so a node-clock
        # timer would never fire while the sim is idle.
        self._heartbeat = start_heartbeat(self, heartbeat_hz)
        if self.mode == "realtime":
            self.create_timer(1.0 / control_rate_hz, self._on_control_tick, clock=self._steady)
        elif self._republish_s > 0:
            self.create_timer(self._republish_s / 4, self._republish_unanswered, clock=self._steady)
        self.get_logger().info(
            f"task {self.task} ({env_cfg.id}), mode {self.mode}, cameras {self.cameras or 'off'}; idle until "
            f"{interfaces.SIM_RESET} is called")

    # -- setup helpers ----------------------------------------------------------------------------------------

    def _camera_id(self, name: str) -> int:
        camera = mujoco.mj_name2id(self._sim.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if camera < 0:
            model = self._sim.model
            known = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"parameter cameras: task {self.task} has no camera {name!r}; its cameras are {known}")
        return camera

    # -- callbacks --------------------------------------------------------------------------------------------

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:  # noqa: ARG002
        self._episode += 1
        seed = self._seed * SEED_STRIDE + self._episode
        self.observation, _ = self._env.reset(seed=seed)
        self._tick += 1
        self._episode_step = 0
        self._running = True
        self._newest_action = None
        stamp = self._stamp_s()
        self._publish_observation(stamp)
        self._observation_published()
        response.success = True
        response.message = json.dumps({"episode": self._episode, "seed": seed, "stamp": stamp}, sort_keys=True)
        self.get_logger().info(f"episode {self._episode} reset with seed {seed} at t={stamp:.3f}")
        return response

    def _on_command(self, msg: JointTrajectory) -> None:
        action = self._command_action(msg)
        if action is None:
            return
        if not self._running:
            self.commands_ignored += 1
            self.get_logger().debug("command ignored: no episode is running (call the reset service)")
            return
        if self.mode == "realtime":
            self._newest_action = action
            return
        stamp = time_to_s(msg.header.stamp)
        if abs(stamp - self._stamp_s()) > STAMP_TOLERANCE_S:
            self.commands_ignored += 1
            self.get_logger().debug(f"command stamped {stamp:.6f} ignored: the observation is at {self._stamp_s():.6f}")
            return
        self._step(action)

    def _on_control_tick(self) -> None:
        if not self._running:
            return
        action = self._newest_action
        if action is None:
            action = self._io.hold_action
            self.holds += 1
        self._newest_action = None
        self._step(action)

    def _republish_unanswered(self) -> None:
        if not (self._running and self._republish_due):
            return
        if self._steady.now().nanoseconds * 1e-9 - self._published_s < self._republish_s:
            return
        self._republish_due = False
        self.republished += 1
        self.get_logger().info(f"observation at t={self._stamp_s():.3f} not answered for {self._republish_s:g} s: "
                               "published once more")
        self._publish_observation(self._stamp_s())

    # -- stepping and publishing ------------------------------------------------------------------------------

    def _command_action(self, msg: JointTrajectory) -> np.ndarray | None:
        """The command's one action, or None (logged, counted) when it cannot be executed."""
        try:
            actions, _ = trajectory_to_actions(msg, self._io.action_names)
            if len(actions) != 1:
                raise MessageError(f"a command has exactly 1 point, got {len(actions)}")
            if not np.all(np.isfinite(actions)):
                raise MessageError(f"non-finite action {actions[0].tolist()}")
        except MessageError as error:
            self.commands_refused += 1
            self.get_logger().error(f"command on {interfaces.COMMAND} refused, env not stepped: {error}",
                                    throttle_duration_sec=1.0)
            return None
        return actions[0]

    def _step(self, action: np.ndarray) -> None:
        self.observation, reward, terminated, truncated, info = self._env.step(action)
        self._tick += 1
        self._episode_step += 1
        self.steps += 1
        self._running = not (terminated or truncated)
        if not self._running:
            self.get_logger().info(
                f"episode {self._episode} {'terminated' if terminated else 'truncated'} after {self._episode_step} "
                f"steps; so far {self.holds} holds, {self.commands_ignored} commands ignored, "
                f"{self.commands_refused} refused")
        stamp = self._stamp_s()
        self._publish_observation(stamp)
        self._observation_published()
        self._pubs["step_info"].publish(json_msg({
            "stamp": stamp, "step": self._episode_step, "episode": self._episode, "reward": float(reward),
            "success": bool(info.get("success", False)), "terminated": bool(terminated),
            "truncated": bool(truncated),
        }))

    def _stamp_s(self) -> float:
        return round(self._tick * self._control_dt, 9)  # whole nanoseconds, as in the messages

    def _observation_published(self) -> None:
        """A new observation is out: the republish clock starts over."""
        self._published_s = self._steady.now().nanoseconds * 1e-9
        self._republish_due = True

    def _publish_observation(self, stamp: float) -> None:
        """Every observation topic with the same stamp; the eef pose last, as it is what triggers the executor."""
        sim, io = self._sim, self._io
        messages = io.messages(io.env_state(sim), stamp)
        self._pubs["clock"].publish(ClockMsg(clock=s_to_time(stamp)))
        self._pubs["joints"].publish(joint_state(*io.joint_state(sim), stamp))
        for topic, msg in messages.items():
            if topic != interfaces.EEF_POSE:
                self._observation_pubs[topic].publish(msg)
        for name, (image_pub, info_pub) in self._camera_pubs.items():
            self._renderer.update_scene(sim.data, camera=name)
            frame = f"{name}_color_optical_frame"
            image_pub.publish(rgb8_image(self._renderer.render(), stamp, frame))
            height, width = self._renderer.height, self._renderer.width
            info_pub.publish(pinhole_camera_info(self._fovy[name], width, height, stamp, frame))
        self._observation_pubs[interfaces.EEF_POSE].publish(messages[interfaces.EEF_POSE])

    def destroy_node(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._env.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: SimBridge(), args)


if __name__ == "__main__":
    raise SystemExit(main())
