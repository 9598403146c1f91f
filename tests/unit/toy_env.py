"""A tiny 2-D reaching task for testing the learning core without a physics simulator.

Observation [x, y, goal_x, goal_y]; action a 2-D velocity in [-1, 1] moving 0.1 per step; sparse reward 1 and
termination when within 0.1 of the goal. Registered as `toy_env:PointReach-v0` (gymnasium imports this module).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class PointReach(gym.Env):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2)
        self.goal = self.np_random.uniform(-1, 1, 2)
        return self._obs(), {"success": False}

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def step(self, action):
        self.pos = np.clip(self.pos + 0.1 * np.clip(action, -1, 1), -1.5, 1.5)
        success = bool(np.linalg.norm(self.pos - self.goal) < 0.1)
        return self._obs(), float(success), success, False, {"success": success}


def expert_action(obs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    direction = obs[2:] - obs[:2]
    action = direction / max(np.linalg.norm(direction), 1e-6)
    return np.clip(action + noise * rng.standard_normal(2), -1, 1).astype(np.float32)


if "PointReach-v0" not in gym.registry:
    gym.register("PointReach-v0", entry_point=PointReach)
