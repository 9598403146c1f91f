"""robosuite 1.5.2 versions of robomimic Lift / Can / Square / Transport behind the inril env contract
(docs/contracts.md).

These are the fidelity reference for the fast direct-MuJoCo tasks: same flat observation layout, action
semantics, sparse reward and success test, but simulated by robosuite itself with the settings robomimic used
for its datasets (Panda, OSC_POSE delta control at 20 Hz, no cameras, sparse reward, ``ignore_done``; Transport with
two Pandas in the "opposed" configuration, robomimic's "single-arm-opposed").

The object features are computed here from the simulator state with robomimic's (robosuite <= 1.4) meaning,
not read from robosuite 1.5.2's observables, which differ in two ways: 1.5.2 flips ``gripper_to_cube_pos`` to
``cube - eef`` (robomimic's datasets hold ``eef - cube``), and it evaluates the object-to-eef sensors before the
object pose sensors, so they read zeros right after reset and a 2 ms old object pose afterwards. Transport's
object vector is assembled the same way, in robomimic's order (``layout.TRANSPORT_OBJECT_KEYS``), which 1.5.2's
``object-state`` no longer follows.

robosuite is imported only when an env is constructed: importing it takes about a second and logs warnings,
and most inril runs never touch it. Keep this module free of module-level robosuite imports so that
``register_robosuite_envs()`` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from inril_sim.layout import ROBOT_KEYS, obs_layout, robot_keys, robots_observation, transport_object_features


@dataclass(frozen=True)
class TaskSpec:
    """What differs between the tasks: the contract task name, the robosuite env, its (first) object, the robots."""

    task: str
    env_name: str
    object_name: str
    horizon: int
    robots: tuple[str, ...] = ("Panda",)
    env_configuration: str = "default"


LIFT = TaskSpec(task="lift", env_name="Lift", object_name="cube", horizon=300)
CAN = TaskSpec(task="can", env_name="PickPlaceCan", object_name="Can", horizon=300)
SQUARE = TaskSpec(task="square", env_name="NutAssemblySquare", object_name="SquareNut", horizon=400)
TRANSPORT = TaskSpec(task="transport", env_name="TwoArmTransport", object_name="payload", horizon=800,
                     robots=("Panda", "Panda"), env_configuration="opposed")


def _make_robosuite_env(spec: TaskSpec, seed: int | None) -> Any:
    """Build the robosuite env with robomimic's dataset settings.

    robosuite's own horizon is set far beyond the contract horizon and ``ignore_done`` is on, so gymnasium's
    TimeLimit alone decides truncation. ``hard_reset=False`` reuses the compiled model between episodes (a hard
    reset recompiles the MJCF, ~0.5 s); the scene and the reset distribution are the same either way.

    Delta actions are read in the world frame, as robosuite <= 1.4 read them when robomimic recorded its datasets
    (and as the fast envs do). robosuite 1.5 defaults to each robot's base frame, the same thing for a single
    unrotated Panda but not for Transport's opposed Pandas, whose bases are turned by +-90 degrees.
    """
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    controller = load_composite_controller_config(controller="BASIC", robot="Panda")
    controller["body_parts"]["right"]["input_ref_frame"] = "world"
    return robosuite.make(
        spec.env_name,
        robots=list(spec.robots),
        env_configuration=spec.env_configuration,
        controller_configs=controller,
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        reward_shaping=False,
        control_freq=20,
        horizon=100 * spec.horizon,
        ignore_done=True,
        hard_reset=False,
        seed=seed,
    )


def _object_body_id(env: Any, spec: TaskSpec) -> int:
    return env.cube_body_id if spec.env_name == "Lift" else env.obj_body_id[spec.object_name]


def object_features(env: Any, spec: TaskSpec, eef_pos: np.ndarray, eef_quat: np.ndarray) -> np.ndarray:
    """robomimic's ``object`` vector for ``spec`` from the current sim state.

    Lift: ``cube_pos``, ``cube_quat`` (xyzw), ``gripper_to_cube_pos`` = eef - cube. Can and Square: ``{obj}_pos``,
    ``{obj}_quat``, ``{obj}_to_robot0_eef_pos`` and ``_quat``, the object's pose in the frame made of the eef site
    position and the hand body orientation (robosuite's ``robot0_eef_quat``), with ``obj`` Can or SquareNut.
    """
    from robosuite.utils import transform_utils as T

    body = _object_body_id(env, spec)
    pos = np.array(env.sim.data.body_xpos[body])
    quat = T.convert_quat(np.array(env.sim.data.body_xquat[body]), to="xyzw")
    if spec.env_name == "Lift":
        return np.concatenate([pos, quat, eef_pos - pos])
    world_in_eef = T.pose_inv(T.pose2mat((eef_pos, eef_quat)))
    rel_pos, rel_quat = T.mat2pose(T.pose_in_A_to_pose_in_B(T.pose2mat((pos, quat)), world_in_eef))
    return np.concatenate([pos, quat, rel_pos, rel_quat])


class RobosuiteTask(gym.Env):
    """A robosuite manipulation task seen through the inril contract (flat float32 obs, 7-D action, sparse reward)."""

    metadata: dict[str, Any] = {"render_modes": []}
    spec_task: TaskSpec

    def __init__(self) -> None:
        self._env = _make_robosuite_env(self.spec_task, seed=None)
        self.obs_layout = obs_layout(self.spec_task.task)
        obs_dim = max(s.stop for s in self.obs_layout.values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7 * len(self.spec_task.robots),), np.float32)

    @property
    def robosuite_env(self) -> Any:
        """The wrapped robosuite env, for diagnostics that need its sim (contacts, geom sizes)."""
        return self._env

    def _flatten(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        robot = [np.asarray(obs[key]) for key, _ in ROBOT_KEYS]
        objects = object_features(self._env, self.spec_task, obs["robot0_eef_pos"], obs["robot0_eef_quat"])
        return np.concatenate([objects, *robot]).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; with ``seed`` the episode is a pure function of it.

        robosuite draws the object placement and the arm's initial-joint noise from one ``numpy.random.Generator``
        (``env.rng``) that its placement samplers hold by reference, so the seed is written into that generator's
        state in place rather than by replacing the object.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        return self._flatten(self._env.reset()), {"success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One 20 Hz control step; success is robosuite's own ``_check_success``, rewarded 1 and terminal."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{self.spec_task.task}@robosuite: action has shape {action.shape}, expected "
                             f"{self.action_space.shape} (7 numbers per arm)")
        obs, _, _, _ = self._env.step(action)
        success = bool(self._env._check_success())
        return self._flatten(obs), float(success), success, False, {"success": success}

    def close(self) -> None:
        self._env.close()


class RobosuiteLift(RobosuiteTask):
    """robomimic Lift: raise the cube 4 cm above the table."""

    spec_task = LIFT


class RobosuiteCan(RobosuiteTask):
    """robomimic Can (robosuite PickPlaceCan, one can): put the can in its bin."""

    spec_task = CAN


class RobosuiteSquare(RobosuiteTask):
    """robomimic Square (robosuite NutAssemblySquare): put the square nut on its peg."""

    spec_task = SQUARE


class RobosuiteTransport(RobosuiteTask):
    """robomimic Transport (robosuite TwoArmTransport, two opposed Pandas): hammer to the target bin, trash out."""

    spec_task = TRANSPORT

    def _flatten(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """robomimic's 59-D observation: the 41-D object vector from the sim state, then both robots."""
        import mujoco
        from robosuite.utils import transform_utils as T

        group, data = self._env.transport, self._env.sim.data

        def body_quat(body: int) -> np.ndarray:
            return np.array(data.body_xquat[body])

        lid_quat = np.empty(4)
        mujoco.mju_mat2Quat(lid_quat, np.array(data.geom_xmat[group.lid_handle_geom_ids[0]], dtype=np.float64))
        arms = [tuple(key for key, _ in robot_keys(arm)) for arm in range(len(self.spec_task.robots))]
        eef_pos = tuple(np.asarray(obs[pos]) for pos, _, _ in arms)
        objects = transport_object_features(
            payload_pos=group.payload_pos, payload_quat=body_quat(group.payload_body_id),
            trash_pos=group.trash_pos, trash_quat=body_quat(group.trash_body_id),
            lid_handle_pos=group.lid_handle_pos, lid_handle_quat=lid_quat,
            target_bin_pos=group.target_bin_pos, trash_bin_pos=group.trash_bin_pos, eef_pos=eef_pos,
            payload_in_target_bin=group.payload_in_target_bin, trash_in_trash_bin=group.trash_in_trash_bin)
        eef_quat = tuple(T.convert_quat(np.asarray(obs[quat]), to="wxyz") for _, quat, _ in arms)
        robots = robots_observation(eef_pos, eef_quat, tuple(np.asarray(obs[gripper]) for _, _, gripper in arms))
        return np.concatenate([objects, robots]).astype(np.float32)


ENV_IDS: dict[str, tuple[str, TaskSpec]] = {
    "inril/Lift-robosuite-v0": ("RobosuiteLift", LIFT),
    "inril/Can-robosuite-v0": ("RobosuiteCan", CAN),
    "inril/Square-robosuite-v0": ("RobosuiteSquare", SQUARE),
    "inril/Transport-robosuite-v0": ("RobosuiteTransport", TRANSPORT),
}


def register_robosuite_envs() -> None:
    """Register the robosuite-backed ids with lazy entry points, so registering never imports robosuite."""
    for env_id, (class_name, spec) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=f"inril_sim.robosuite_tasks:{class_name}",
                max_episode_steps=spec.horizon,
            )
