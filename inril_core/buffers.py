"""Data the learner trains on: the demo buffer (IL) and the on-policy rollout of one RL iteration.

Demos become (observation, action chunk) pairs: the chunk starting at each step, padded past the episode's end by
repeating the last action (as Diffusion Policy and DPPO do), so every recorded step is a training sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from inril_core.episodes.store import EpisodeStore


class EmptyDemoStoreError(RuntimeError):
    pass


def chunk_pairs(observations: np.ndarray, actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, obs_dim), (T, A) -> obs (T, obs_dim), chunks (T, horizon, A) with end padding."""
    t = np.arange(len(actions))[:, None] + np.arange(horizon)[None, :]
    return observations, actions[np.minimum(t, len(actions) - 1)]


@dataclass
class DemoSplit:
    obs: torch.Tensor      # (N, obs_dim) normalised
    chunks: torch.Tensor   # (N, H, A) normalised

    def __len__(self) -> int:
        return self.obs.shape[0]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self), (batch_size,), generator=generator)
        return self.obs[idx], self.chunks[idx]


class SuccessBuffer:
    """(observation, chunk) pairs of the policy's own successful episodes, newest ``capacity`` kept.

    Why: with a handful of demos the pre-trained policy fails where the demos never went (Lift with 6 demos closes
    its gripper beside the cube). Sparse-reward PPO finds the fix slowly; the successes the policy already has at
    those start states are direct evidence of what works there. Imitating them next to the demos (self-imitation,
    filtered to successes as in SERL's and LeRobot's "keep the good episodes" workflows) widens the data IL pulls
    towards. Stored normalised, as DemoSplit, so IL samples both alike.
    """

    def __init__(self, obs_dim: int, horizon: int, act_dim: int, capacity: int, device) -> None:
        if capacity < 0:
            raise ValueError(f"il.success_capacity must be >= 0 (0 = off); got {capacity}")
        self.capacity = capacity
        self.obs = torch.zeros(0, obs_dim, device=device)
        self.chunks = torch.zeros(0, horizon, act_dim, device=device)

    def __len__(self) -> int:
        return self.obs.shape[0]

    def add(self, obs: torch.Tensor, chunks: torch.Tensor) -> None:
        """Append one successful episode's pairs (normalised obs (n, obs_dim), chunks (n, H, A) in [-1, 1])."""
        if self.capacity == 0:
            return
        self.obs = torch.cat([self.obs, obs.to(self.obs)])[-self.capacity:]
        self.chunks = torch.cat([self.chunks, chunks.to(self.chunks).clamp(-1.0, 1.0)])[-self.capacity:]

    def state_dict(self) -> dict:
        return {"obs": self.obs.cpu(), "chunks": self.chunks.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.obs, self.chunks = state["obs"].to(self.obs), state["chunks"].to(self.chunks)


def sample_union(demos: DemoSplit, successes: SuccessBuffer, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn uniformly from the demos and the success pairs together (with no successes: exactly
    DemoSplit.sample, the same random draw)."""
    n_demos = len(demos)
    idx = torch.randint(0, n_demos + len(successes), (batch_size,))
    from_demos = idx < n_demos
    if from_demos.all():
        return demos.obs[idx], demos.chunks[idx]
    d, s = idx[from_demos], idx[~from_demos] - n_demos
    return (torch.cat([demos.obs[d], successes.obs[s]]), torch.cat([demos.chunks[d], successes.chunks[s]]))


@torch.no_grad()
def fixed_noise_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], split: DemoSplit,
                     max_samples: int = 2048) -> float:
    """``loss(obs, chunks)`` on (the first `max_samples` of) `split` at fixed noise draws, so that successive values
    are comparable; the training RNG streams (CPU and the split's CUDA device) are left exactly as they were."""
    n = min(len(split), max_samples)
    if n == 0:
        return float("nan")  # a run without demos
    with torch.random.fork_rng(devices=[split.obs.device] if split.obs.is_cuda else []):
        torch.manual_seed(12345)
        return loss(split.obs[:n], split.chunks[:n]).item()


def load_demo_episodes(path: str, obs_dim: int, act_dim: int):
    """The store's episodes, checked against the task's dimensions (bad files fail here, named)."""
    store = EpisodeStore(path, create=False)
    episodes = list(store)
    if not episodes:
        raise EmptyDemoStoreError(
            f"demo store {path} has no episodes: make some with 'inril demos make task=<task> demos.n=100'"
        )
    for i, ep in enumerate(episodes):
        if ep.obs_dim != obs_dim or ep.act_dim != act_dim:
            raise ValueError(
                f"demo store {path}, episode {i}: observations have {ep.obs_dim} dims and actions {ep.act_dim}, but "
                f"the task expects {obs_dim} and {act_dim} (env.obs_dim / env.act_dim): wrong task's demos?"
            )
    return episodes


def build_demo_splits(episodes, horizon: int, obs_norm, act_norm, holdout_fraction: float, seed: int,
                      device: torch.device | str = "cpu", obs_dim: int | None = None,
                      act_dim: int | None = None) -> tuple[DemoSplit, DemoSplit]:
    """Train / held-out splits by whole episodes (held-out IL loss then measures generalisation, not memory).
    No episodes (a run without demos, ``demos.use: false``) give two empty splits of (obs_dim, act_dim)."""
    if episodes:
        obs_dim, act_dim = episodes[0].obs_dim, episodes[0].act_dim
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_hold = (min(len(episodes) - 1, max(1, int(round(holdout_fraction * len(episodes)))))
              if holdout_fraction and episodes else 0)
    parts = []
    for chosen in (order[n_hold:], order[:n_hold]):
        pairs = [chunk_pairs(episodes[i].observations, episodes[i].actions, horizon) for i in chosen]
        obs = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros((0, obs_dim), np.float32)
        chunks = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros((0, horizon, act_dim), np.float32)
        parts.append(DemoSplit(
            obs_norm.normalize(torch.as_tensor(obs, dtype=torch.float32)).to(device),
            act_norm.normalize(torch.as_tensor(chunks, dtype=torch.float32)).to(device),
        ))
    return parts[0], parts[1]
