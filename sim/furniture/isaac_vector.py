"""FurnitureSim's own batching behind inril's vector-env contract: ``num_envs`` furniture in one IsaacGym sim.

``FurnitureSimTask`` (isaac.py) runs one FurnitureSim per env, so a vector of them is a vector of IsaacGym sims.
FurnitureSim steps all of its ``num_envs`` envs in one call on one GPU (ResiP trains with 1,024), and this class
exposes that as the vector env the learner already uses (``env.vector: native``; ``inril_core.envs``): chunked
actions (each env executes the first ``act_steps`` actions of its chunk), same-step autoreset with the ended
episode's last observation and info under ``final_obs`` / ``final_info``, as gymnasium's ``SyncVectorEnv`` over
``ChunkedActions`` gives them.

What batching changes, and how it is handled: all envs step together, so an env whose episode ends inside a
chunk is held (no translation, identity rotation, gripper kept) for the rest of that chunk and reset after it;
its reward and step count stop at its end. FurnitureSim resets one env with ``reset_env`` and makes the new state
visible with ``refresh``, which advances the whole sim one physics substep: the other envs see one extra substep
of their current command at that moment (FurnitureSim's own per-env reset has the same effect).

The simulator is injected (``sim_factory``) so the logic runs, and is tested, against a stand-in with
FurnitureSim's batched API where IsaacGym is missing (tests/unit/test_furniture_vector.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from inril_core.safety import hold_action
from inril_sim.furniture.contracts import (ACTION_DIM, flatten_observation, furniture_spec, own_reset_poses,
                                           to_furniture_action)

HOLD = hold_action("quaternion").astype(np.float32)  # no motion, identity rotation, gripper left as it is


def furniture_sim_factory(furniture: str, num_envs: int, randomness: str, compute_device_id: int,
                          graphics_device_id: int, max_env_steps: int) -> Callable[[], Any]:
    """Makes the real batched FurnitureSim (IsaacGym imported first, with the install hint where it is missing)."""
    def make() -> Any:
        from inril_sim.furniture.isaac import import_isaacgym

        import_isaacgym()
        from furniture_bench.envs.furniture_sim_env import FurnitureSimStateEnv

        sim = FurnitureSimStateEnv(furniture=furniture, num_envs=num_envs, headless=True, np_step_out=True,
                                   randomness=randomness, compute_device_id=compute_device_id,
                                   graphics_device_id=graphics_device_id, max_env_steps=max_env_steps)
        own_reset_poses(*sim.furnitures, sim.furniture)
        return sim
    return make


class FurnitureSimVectorEnv(VectorEnv):
    """``num_envs`` FurnitureSim envs as one chunked, same-step-autoreset vector env (module docstring)."""

    metadata: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, furniture: str = "one_leg", act_steps: int = 1, max_episode_steps: int = 700,
                 randomness: str = "low", compute_device_id: int = 0, graphics_device_id: int = 0,
                 max_env_steps: int | None = None, sim_factory: Callable[[], Any] | None = None) -> None:
        if num_envs < 1 or act_steps < 1 or max_episode_steps < 1:
            raise ValueError(f"num_envs, act_steps and max_episode_steps must be >= 1, got {num_envs}, {act_steps}, "
                             f"{max_episode_steps}")
        self.contract = furniture_spec(furniture)
        self.num_envs, self.act_steps, self.max_episode_steps = num_envs, act_steps, max_episode_steps
        # FurnitureSim's own timeout (max_env_steps) is left past ours: the episode limit is counted here, per env
        factory = sim_factory or furniture_sim_factory(furniture, num_envs, randomness, compute_device_id,
                                                       graphics_device_id, max(max_env_steps or 0,
                                                                               max_episode_steps + 1))
        self.sim = factory()
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.contract.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (act_steps, ACTION_DIM), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._steps = np.zeros(num_envs, dtype=int)

    def _observations(self, obs: dict[str, Any]) -> np.ndarray:
        return np.stack([flatten_observation(self.contract, {k: np.asarray(v)[i] for k, v in obs.items()})
                         for i in range(self.num_envs)])

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env. FurnitureSim draws part poses from numpy's and torch's global generators: a seed (the
        first of a list: one sim, one draw sequence) seeds both."""
        first = seed[0] if isinstance(seed, (list, tuple)) else seed
        if first is not None:
            import torch

            np.random.seed(first)
            torch.manual_seed(first)
        self._steps[:] = 0
        obs = self._observations(self.sim.reset())
        return obs, {"env_steps": np.zeros(self.num_envs, dtype=int), "success": np.zeros(self.num_envs, bool)}

    def step(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        chunks = np.asarray(chunks, dtype=np.float32)
        if chunks.shape != (self.num_envs, self.act_steps, ACTION_DIM):
            raise ValueError(f"chunks must have shape ({self.num_envs}, {self.act_steps}, {ACTION_DIM}), got "
                             f"{chunks.shape}")
        n = self.num_envs
        rewards, steps = np.zeros(n), np.zeros(n, dtype=int)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        last = None
        for k in range(self.act_steps):
            active = ~(terminated | truncated)
            actions = np.stack([to_furniture_action(chunks[i, k]) if active[i] else HOLD for i in range(n)])
            obs, _, _, _ = self.sim.step(actions.astype(np.float32))
            flat = self._observations(obs)
            last = flat if last is None else np.where(active[:, None], flat, last)  # an ended env keeps its end
            self._steps += active
            steps += active
            success = np.array([bool(self.sim.furnitures[i].all_assembled()) for i in range(n)])
            rewards += active * success
            terminated |= active & success
            truncated |= active & ~success & (self._steps >= self.max_episode_steps)
        infos: dict[str, Any] = {}
        obs_out = last.copy()
        ended = terminated | truncated
        for i in np.flatnonzero(ended):
            infos = self._add_info(infos, {"final_obs": last[i], "final_info": {
                "env_steps": int(steps[i]), "success": bool(terminated[i])}}, i)
            self.sim.reset_env(int(i))
        if ended.any():
            self.sim.refresh()
            # FurnitureSim's reset() returns this same private read-out after its reset_env calls and refresh
            obs_out[ended] = self._observations(self.sim._get_observation())[ended]
            self._steps[ended] = 0
        for i in range(n):
            infos = self._add_info(infos, {"env_steps": 0 if ended[i] else int(steps[i]),
                                           "success": False if ended[i] else bool(terminated[i])}, i)
        return obs_out, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        sim = getattr(self, "sim", None)  # none when making it failed (no IsaacGym): nothing to destroy
        if sim is not None:
            sim.isaac_gym.destroy_sim(sim.sim)
