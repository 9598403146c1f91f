"""Env throughput with uniform random actions, for ``inril bench sim``.

Random actions keep the object mostly untouched, so this measures the simulator and wrapper cost per control
step, not the expert; episodes that end are reset and the reset time is counted.
"""
from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import inril_sim  # noqa: F401  (registers the inril ids)


def measure_env_steps_per_s(env_id: str, n_steps: int, seed: int = 0) -> float:
    """Control steps per second of ``env_id`` over ``n_steps`` random-action steps in this process."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(n_steps, *env.action_space.shape)).astype(np.float32)
    try:
        env.reset(seed=seed)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        elapsed = time.perf_counter() - start
    finally:
        env.close()
    return n_steps / elapsed
