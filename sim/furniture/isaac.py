"""The real FurnitureSim (furniture_bench on IsaacGym) behind the inril env contract: ``task=furniture/<name>@isaac``.

IsaacGym cannot be installed from a package registry and needs an NVIDIA GPU, so everything here imports it only
when an env is made; where it is missing, making one raises an error that says how to install it. IsaacGym also
refuses to load once torch is imported, and inril imports torch early, so ``inril`` imports IsaacGym first when its
arguments select an ``@isaac`` task (``preload_for_args``).
"""
from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np

from inril_sim.furniture.contracts import (ACTION_DIM, flatten_observation, furniture_spec, own_reset_poses,
                                           to_furniture_action)

INSTALL_HINT = ("FurnitureSim needs NVIDIA IsaacGym (Preview 4), which no package registry serves: download it from "
                "https://developer.nvidia.com/isaac-gym, 'pip install -e isaacgym/python' into .venv, and run on a "
                "machine with an NVIDIA GPU. Without it, use the MuJoCo port: task=furniture/<name> (no @isaac)")


def import_isaacgym() -> Any:
    """IsaacGym, or an ImportError that says how to get it (and when the cause is torch imported first)."""
    try:
        import isaacgym
    except ImportError as exc:
        order = (" torch was imported before isaacgym in this process; IsaacGym must come first (inril does this "
                 "when the command line names an @isaac task)." if "torch" in sys.modules else "")
        raise ImportError(f"cannot import isaacgym ({exc}).{order} {INSTALL_HINT}") from exc
    return isaacgym


def selects_isaac(args: list[str]) -> bool:
    """Whether command-line overrides select a FurnitureSim task (``task=furniture/one_leg@isaac``)."""
    return any(a.startswith("task=") and a.endswith("@isaac") for a in args)


def preload_for_args(args: list[str]) -> None:
    """Import IsaacGym before anything imports torch when ``args`` select an @isaac task; a missing IsaacGym is
    reported when the env is made, with the install hint, not here."""
    if selects_isaac(args) and "torch" not in sys.modules:
        try:
            import isaacgym  # noqa: F401  (import order is the point)
        except ImportError:
            pass


class FurnitureSimTask(gym.Env):
    """One FurnitureSim env (``FurnitureSimStateEnv``, ``num_envs=1``, headless) seen through the inril contract:
    the flat state observation of ``contracts.furniture_spec``, the 8-D action, reward 1 and termination when
    every pair that should be assembled is (FurnitureSim's own check), ``info["success"]``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, furniture: str = "one_leg", randomness: str = "low", compute_device_id: int = 0,
                 graphics_device_id: int = 0, max_env_steps: int = 3000) -> None:
        self.spec_furniture = furniture_spec(furniture)
        import_isaacgym()
        from furniture_bench.envs.furniture_sim_env import FurnitureSimStateEnv

        # Constructed directly: gym.make would wrap this 4-tuple-step env in gym 0.26's 5-tuple API checkers.
        self._env = FurnitureSimStateEnv(
            furniture=furniture, num_envs=1, headless=True, np_step_out=True, randomness=randomness,
            compute_device_id=compute_device_id, graphics_device_id=graphics_device_id, max_env_steps=max_env_steps)
        own_reset_poses(*self._env.furnitures, self._env.furniture)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.spec_furniture.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def _observe(self, obs: dict[str, Any]) -> np.ndarray:
        return flatten_observation(self.spec_furniture, {k: np.asarray(v)[0] for k, v in obs.items()})

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; FurnitureSim draws part poses from numpy's and torch's global generators, so a seed seeds both."""
        super().reset(seed=seed)
        if seed is not None:
            import torch

            np.random.seed(seed)
            torch.manual_seed(seed)
        return self._observe(self._env.reset()), {"success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, _, done, _ = self._env.step(to_furniture_action(action)[None].astype(np.float32))
        success = bool(self._env.furnitures[0].all_assembled())
        truncated = bool(np.asarray(done).reshape(-1)[0]) and not success  # FurnitureSim's own max_env_steps
        return self._observe(obs), float(success), success, truncated, {"success": success}

    def close(self) -> None:
        self._env.isaac_gym.destroy_sim(self._env.sim)
