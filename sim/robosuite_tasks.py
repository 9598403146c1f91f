"""robosuite 1.5.2 versions of robomimic Lift / Can / Square behind the inril env contract (docs/contracts.md).

These are the fidelity reference for the fast direct-MuJoCo tasks: same flat observation layout, action
semantics, sparse reward and success test, but simulated by robosuite itself with the settings robomimic used
for its datasets (Panda, OSC_POSE delta control at 20 Hz, no cameras, sparse reward, ``ignore_done``).

The object features are computed here from the simulator state with robomimic's (robosuite <= 1.4) meaning,
not read from robosuite 1.5.2's observables, which differ in two ways: 1.5.2 flips ``gripper_to_cube_pos`` to
``cube - eef`` (robomimic's datasets hold ``eef - cube``), and it evaluates the object-to-eef sensors before the
object pose sensors, so they read zeros right after reset and a 2 ms old object pose afterwards.

robosuite is imported only when an env is constructed: importing it takes about a second and logs warnings,
and most inril runs never touch it. Keep this module free of module-level robosuite imports so that
``register_robosuite_envs()`` stays cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from inril_sim.layout import ROBOT_KEYS, obs_layout


@dataclass(frozen=True)
class TaskSpec:
    """What differs between the three tasks: the contract task name, the robosuite env and its object."""

    task: str
    env_name: str
    object_name: str
    horizon: int


LIFT = TaskSpec(task="lift", env_name="Lift", object_name="cube", horizon=300)
CAN = TaskSpec(task="can", env_name="PickPlaceCan", object_name="Can", horizon=300)
SQUARE = TaskSpec(task="square", env_name="NutAssemblySquare", object_name="SquareNut", horizon=400)


def _make_robosuite_env(spec: TaskSpec, seed: int | None) -> Any:
    """Build the robosuite env with robomimic's dataset settings.

    robosuite's own horizon is set far beyond the contract horizon and ``ignore_done`` is on, so gymnasium's
    TimeLimit alone decides truncation. ``hard_reset=False`` reuses the compiled model between episodes (a hard
    reset recompiles the MJCF, ~0.5 s); the scene and the reset distribution are the same either way.
    """
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    controller = load_composite_controller_config(controller="BASIC", robot="Panda")
    return robosuite.make(
        spec.env_name,
        robots="Panda",
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
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)

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
        obs, _, _, _ = self._env.step(np.asarray(action, dtype=np.float64))
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


ENV_IDS: dict[str, tuple[str, TaskSpec]] = {
    "inril/Lift-robosuite-v0": ("RobosuiteLift", LIFT),
    "inril/Can-robosuite-v0": ("RobosuiteCan", CAN),
    "inril/Square-robosuite-v0": ("RobosuiteSquare", SQUARE),
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
