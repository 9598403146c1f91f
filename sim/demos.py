"""Scripted demonstrations on the fast tasks, written to the episode store (docs/contracts.md).

Only successful episodes are stored, like robomimic's curated sets; quality still varies because attempts cycle
through ``noise_levels`` and the noisy expert recovers from its own slips (longer, less direct episodes).

Every attempt is reproducible on its own: attempt ``i`` resets the env with ``episode_seed = seed * 1_000_000 + i``
and builds its expert with the same seed and its noise level, and both go into the metadata.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from inril_core.episodes.store import Episode, EpisodeStore
from inril_sim import fast_env_id
from inril_sim.experts import make_expert

SEEDS_PER_RUN = 1_000_000


def rollout_episode(env: gym.Env, act: Callable[[np.ndarray], np.ndarray],
                    episode_seed: int) -> dict[str, np.ndarray | bool]:
    """One episode of ``act(obs) -> action``; observations are those the actions were chosen from (the final one
    is dropped). ``terminated`` says whether the episode ended on its own rather than by the time limit."""
    obs, _ = env.reset(seed=episode_seed)
    observations, actions, rewards = [], [], []
    success, terminated, done = False, False, False
    while not done:
        action = act(obs)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        success = bool(info.get("success", False))
        done = terminated or truncated
    return {
        "observations": np.asarray(observations, dtype=np.float32),
        "actions": np.asarray(actions, dtype=np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "success": success,
        "terminated": bool(terminated),
    }


def rollout_expert(env: gym.Env, task: str, noise: float, episode_seed: int) -> dict[str, np.ndarray | bool]:
    """One scripted-expert episode."""
    return rollout_episode(env, make_expert(task, noise, episode_seed).act, episode_seed)


def make_demos(
    task: str,
    n: int,
    store: EpisodeStore,
    seed: int = 0,
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3),
    progress: Callable[[int, int], None] | None = None,
    max_attempts: int | None = None,
    env_id: str | None = None,
) -> dict:
    """Append ``n`` successful expert episodes of ``task`` to ``store``.

    ``progress(n_stored, n_attempted)`` is called after every attempt. Gives up after ``max_attempts``
    (default ``20 * n``) so a broken expert cannot loop forever. ``env_id`` defaults to the task's fast env (the
    config's ``env.id`` names it for the others, e.g. FurnitureBench's MuJoCo port). Returns
    ``{n_stored, n_attempted, success_rate, seconds, mean_length}`` (mean length of the stored episodes).
    """
    if not noise_levels:
        raise ValueError("noise_levels must name at least one noise level")
    limit = 20 * n if max_attempts is None else max_attempts
    env = gym.make(env_id or fast_env_id(task))
    start = time.perf_counter()
    stored_lengths: list[int] = []
    attempts = 0
    try:
        while len(stored_lengths) < n and attempts < limit:
            noise = float(noise_levels[attempts % len(noise_levels)])
            episode_seed = seed * SEEDS_PER_RUN + attempts
            result = rollout_expert(env, task, noise, episode_seed)
            attempts += 1
            if result["success"]:
                metadata = {"task": task, "source": "scripted", "success": True, "seed": episode_seed,
                            "noise": noise, "policy_version": None}
                store.append(Episode(result["observations"], result["actions"], result["rewards"], metadata))
                stored_lengths.append(len(result["actions"]))
            if progress is not None:
                progress(len(stored_lengths), attempts)
    finally:
        env.close()
    return {
        "n_stored": len(stored_lengths),
        "n_attempted": attempts,
        "success_rate": len(stored_lengths) / attempts if attempts else 0.0,
        "seconds": time.perf_counter() - start,
        "mean_length": float(np.mean(stored_lengths)) if stored_lengths else 0.0,
    }


def make_policy_demos(
    env_id: str,
    max_episode_steps: int,
    policy: Callable[[np.ndarray], np.ndarray],
    n: int,
    store: EpisodeStore,
    task: str,
    seed: int = 0,
    noise_levels: tuple[float, ...] = (0.1, 0.3),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Append ``n`` episodes of a learned ``policy(obs) -> action`` (an expert trained with 'inril expert train'),
    each with Gaussian action noise of a std cycling through ``noise_levels`` (clipped to the action bounds).

    For dense-reward tasks, where no episode "fails": every episode is stored, its return in the metadata, and the
    noise makes the set mixed-quality, like D4RL's "medium" data. Attempt ``i`` uses ``episode_seed = seed *
    1_000_000 + i`` for the env and the noise. Returns ``{n_stored, mean_return, min_return, max_return,
    mean_length, seconds}``.
    """
    if not noise_levels:
        raise ValueError("noise_levels must name at least one noise level")
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    low, high = env.action_space.low, env.action_space.high
    start = time.perf_counter()
    returns, lengths = [], []
    try:
        for i in range(n):
            noise = float(noise_levels[i % len(noise_levels)])
            episode_seed = seed * SEEDS_PER_RUN + i
            rng = np.random.default_rng(episode_seed)

            def act(obs: np.ndarray) -> np.ndarray:
                action = policy(obs)
                return np.clip(action + noise * rng.standard_normal(action.shape) * (high - low) / 2, low, high)

            result = rollout_episode(env, act, episode_seed)
            episode_return = float(result["rewards"].sum())
            metadata = {"task": task, "source": "policy", "success": result["success"], "seed": episode_seed,
                        "noise": noise, "return": episode_return, "terminated": result["terminated"],
                        "policy_version": None}
            store.append(Episode(result["observations"], result["actions"], result["rewards"], metadata))
            returns.append(episode_return)
            lengths.append(len(result["actions"]))
            if progress is not None:
                progress(i + 1, i + 1)
    finally:
        env.close()
    return {"n_stored": n, "mean_return": float(np.mean(returns)), "min_return": float(np.min(returns)),
            "max_return": float(np.max(returns)), "mean_length": float(np.mean(lengths)),
            "seconds": time.perf_counter() - start}
