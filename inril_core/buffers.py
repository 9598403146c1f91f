"""Data the learner trains on: the demo buffer (IL) and the on-policy rollout of one RL iteration.

Demos become (observation, action chunk) pairs: the chunk starting at each step, padded past the episode's end by
repeating the last action (as Diffusion Policy and DPPO do), so every recorded step is a training sample.
"""

from __future__ import annotations

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


@torch.no_grad()
def fixed_noise_loss(policy, split: DemoSplit, k_max: int | None = None, max_samples: int = 2048) -> float:
    """Denoising loss on (the first `max_samples` of) `split` at fixed noise draws, so that successive values are
    comparable; the training RNG streams (CPU and the split's CUDA device) are left exactly as they were."""
    n = min(len(split), max_samples)
    with torch.random.fork_rng(devices=[split.obs.device] if split.obs.is_cuda else []):
        torch.manual_seed(12345)
        return policy.denoising_loss(split.obs[:n], split.chunks[:n], k_max=k_max).item()


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
                      device: torch.device | str = "cpu") -> tuple[DemoSplit, DemoSplit]:
    """Train / held-out splits by whole episodes (held-out IL loss then measures generalisation, not memory)."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_hold = min(len(episodes) - 1, max(1, int(round(holdout_fraction * len(episodes))))) if holdout_fraction else 0
    parts = []
    for chosen in (order[n_hold:], order[:n_hold]):
        pairs = [chunk_pairs(episodes[i].observations, episodes[i].actions, horizon) for i in chosen]
        obs = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros((0, episodes[0].obs_dim), np.float32)
        chunks = (np.concatenate([p[1] for p in pairs]) if pairs
                  else np.zeros((0, horizon, episodes[0].act_dim), np.float32))
        parts.append(DemoSplit(
            obs_norm.normalize(torch.as_tensor(obs, dtype=torch.float32)).to(device),
            act_norm.normalize(torch.as_tensor(chunks, dtype=torch.float32)).to(device),
        ))
    return parts[0], parts[1]
