"""Environments as the learner sees them: gymnasium ids from the config, chunked actions, vectorised.

The core names no simulator: `env.id` is "module:id" (e.g. "inril_sim:inril/Lift-v0"), and gymnasium imports the
module that registers the id. A policy emits action chunks; `ChunkedActions` executes the first h actions of a
chunk as one decision step (DPPO's MultiStep), summing rewards and stopping at the episode's end, so an episode
never runs on with the rest of a chunk meant for the previous one.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv


class ChunkedActions(gym.Wrapper):
    def __init__(self, env: gym.Env, act_steps: int) -> None:
        super().__init__(env)
        self.act_steps = act_steps
        inner = env.action_space
        self.action_space = gym.spaces.Box(
            np.repeat(inner.low[None], act_steps, 0), np.repeat(inner.high[None], act_steps, 0), dtype=np.float32
        )

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, dict(info, env_steps=0, success=False)

    def step(self, chunk: np.ndarray):
        total, steps, info = 0.0, 0, {}
        terminated = truncated = False
        obs = None
        for action in np.asarray(chunk, dtype=np.float32)[: self.act_steps]:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated:
                break
        info = dict(info, env_steps=steps, success=bool(info.get("success", False)))
        return obs, total, terminated, truncated, info


def step_outcome(info: dict, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Env steps executed and success flags of one vector step, per env.

    With same-step autoreset, an env whose episode ended reports its reset info; the step's own info (with the
    env-step count and the success flag of the episode that ended) is under `final_info`.
    """
    n = len(ended)
    steps = np.array(info.get("env_steps", np.zeros(n, int)), dtype=int)
    success = np.array(info.get("success", np.zeros(n, bool)), dtype=bool)
    final = info.get("final_info", {})
    if ended.any() and final:
        steps = np.where(ended, final["env_steps"], steps)
        success = np.where(ended, final["success"], success)
    return steps, success


def make_env(env_id: str, max_episode_steps: int, act_steps: int) -> gym.Env:
    try:
        env = gym.make(env_id, max_episode_steps=max_episode_steps)
    except gym.error.Error as exc:
        raise gym.error.Error(f"cannot make env '{env_id}' (env.id in config/tasks/): {exc}") from exc
    return ChunkedActions(env, act_steps)


def make_vector_env(env_id: str, n_envs: int, max_episode_steps: int, act_steps: int, vector: str = "sync", *,
                    workers: int = 1, ray_address: str | None = None) -> gym.vector.VectorEnv:
    """n copies; an env that ends an episode is reset in the same step, its last observation in info["final_obs"].

    vector: "sync" (one process), "async" (a subprocess per env), "ray" (`workers` Ray actors, each running a
    "sync" vector env over its slice of the n envs, on the cluster at `ray_address` or on a local Ray session) or
    "native" (the simulator's own batched env, registered as the id's gymnasium `vector_entry_point`, which takes
    `act_steps` and keeps these same conventions: e.g. FurnitureSim's num_envs in one IsaacGym sim).
    """
    if vector == "native":
        module, _, name = env_id.rpartition(":")  # "module:id" as gym.make takes it; gym.spec does not
        if module:
            importlib.import_module(module)
        if gym.spec(name).vector_entry_point is None:
            raise ValueError(f"env.vector=native: '{env_id}' has no batched implementation (no vector_entry_point); "
                             "use env.vector=sync")
        return gym.make_vec(name, num_envs=n_envs, vectorization_mode="vector_entry_point",
                            max_episode_steps=max_episode_steps, act_steps=act_steps)
    if vector == "ray":
        from inril_core.ray_envs import RayVectorEnv  # Ray is optional: imported only when asked for

        return RayVectorEnv(env_id, n_envs, max_episode_steps, act_steps, workers, ray_address)
    if vector not in ("sync", "async"):
        raise ValueError(f"env.vector must be sync, async, ray or native, got '{vector}'")
    fns = [lambda: make_env(env_id, max_episode_steps, act_steps) for _ in range(n_envs)]
    cls = SyncVectorEnv if vector == "sync" else AsyncVectorEnv
    return cls(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def eval_vector(vector: str) -> str:
    """The vector kind evaluation uses: its few envs run in one process ("sync"), except where the simulator batches
    them itself ("native": a second FurnitureSim per eval env would be a second IsaacGym sim each)."""
    return "native" if vector == "native" else "sync"
