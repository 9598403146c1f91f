"""Seeded evaluation of a policy, confidence intervals, and sample-efficiency summaries.

Evaluation episodes start from a fixed set of seeds, so two evaluations of the same policy see the same initial
states and differences between checkpoints are not sampling noise of the start states.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from inril_core.envs import make_vector_env, step_outcome

EVAL_SEED_OFFSET = 1_000_003  # evaluation seeds never coincide with training-rollout seeds


@dataclass
class EvalResult:
    success_rate: float
    success_ci95: tuple[float, float]
    mean_return: float
    mean_length: float
    n_episodes: int

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sensible at 0% and 100%, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_ci95(values: list[float]) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t 95% interval over seeds (few seeds: the normal interval would be too narrow)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), (float(x.mean()), float(x.mean()))
    half = T_975.get(len(x) - 1, 1.96) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), (float(x.mean() - half), float(x.mean() + half))


def evaluate(
    act: Callable[[np.ndarray], np.ndarray], env_id: str, max_episode_steps: int, act_steps: int,
    n_episodes: int, n_envs: int, seed: int = 0, on_ended: Callable[[np.ndarray], None] | None = None,
    vector: str = "sync",
) -> EvalResult:
    """Run `n_episodes` with the chunk policy `act(obs (B, obs_dim)) -> (B, act_steps, A)` on seeded envs;
    `on_ended(ended mask)` after every step tells a policy with per-episode state which episodes restarted;
    `vector` as `envs.eval_vector` picks it."""
    n_envs = min(n_envs, n_episodes)
    quota = [n_episodes // n_envs + (1 if i < n_episodes % n_envs else 0) for i in range(n_envs)]
    envs = make_vector_env(env_id, n_envs, max_episode_steps, act_steps, vector)
    try:
        obs, _ = envs.reset(seed=[EVAL_SEED_OFFSET + 1000 * seed + i for i in range(n_envs)])
        done_counts = [0] * n_envs
        returns, lengths, successes = [], [], []
        ep_return = np.zeros(n_envs)
        ep_length = np.zeros(n_envs, dtype=int)
        while any(d < q for d, q in zip(done_counts, quota)):
            obs, reward, terminated, truncated, info = envs.step(act(obs))
            ended = terminated | truncated
            if on_ended is not None:
                on_ended(ended)
            steps, success = step_outcome(info, ended)
            ep_return += reward
            ep_length += steps
            for i in np.nonzero(ended)[0]:
                if done_counts[i] < quota[i]:
                    returns.append(ep_return[i])
                    lengths.append(ep_length[i])
                    successes.append(bool(success[i]))
                    done_counts[i] += 1
                ep_return[i], ep_length[i] = 0.0, 0
    finally:
        envs.close()
    k = int(sum(successes))
    return EvalResult(k / len(successes), wilson_interval(k, len(successes)), float(np.mean(returns)),
                      float(np.mean(lengths)), len(successes))
