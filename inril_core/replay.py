"""Off-policy data: a replay buffer of chunk transitions, demo transitions, and one iteration's update draw.

A transition is one decision of the chunked policy (inril_core.envs.ChunkedActions): the normalised observation,
the normalised chunk the policy chose (H x A, of which the first h were executed), the reward summed over the
executed steps, the normalised observation after them, and whether the episode *terminated* there. A time-out is
not a termination: its next observation is the real one (gymnasium's ``final_obs``) and the critic bootstraps
through it, so replay needs no special case for truncation.

Demos become transitions the same way (for RLPD's 50/50 demo/online batches, Ball et al. 2023); a demo step whose
next observation was not recorded (the end of a time-limited episode) is left out.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from inril_core.buffers import chunk_pairs
from inril_core.rl.base import TensorBatch


@dataclass
class Transitions(TensorBatch):
    obs: torch.Tensor        # (N, obs_dim) normalised
    chunks: torch.Tensor     # (N, H, A) normalised
    rewards: torch.Tensor    # (N,)
    next_obs: torch.Tensor   # (N, obs_dim) normalised
    dones: torch.Tensor      # (N,) 1.0 where the episode terminated (not a time-out)

    @staticmethod
    def cat(parts: list["Transitions"]) -> "Transitions":
        return Transitions(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Transitions)))


class ReplayBuffer:
    """A ring buffer of the newest ``capacity`` transitions, stored on ``device``; resumable (state_dict)."""

    def __init__(self, capacity: int, obs_dim: int, horizon: int, act_dim: int, device: torch.device | str) -> None:
        if capacity < 1:
            raise ValueError(f"rl.replay_capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = Transitions(torch.zeros(capacity, obs_dim, device=device),
                                torch.zeros(capacity, horizon, act_dim, device=device),
                                torch.zeros(capacity, device=device), torch.zeros(capacity, obs_dim, device=device),
                                torch.zeros(capacity, device=device))
        self.size = 0    # filled slots
        self.next = 0    # slot the next transition goes to

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Transitions) -> None:
        n = len(batch)
        slots = (self.next + torch.arange(n)) % self.capacity
        for f in fields(Transitions):
            getattr(self.data, f.name)[slots.to(getattr(self.data, f.name).device)] = getattr(batch, f.name).to(
                getattr(self.data, f.name))
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int) -> Transitions:
        if self.size == 0:
            raise RuntimeError("the replay buffer is empty: collect before updating")
        return self.data.index(torch.randint(0, self.size, (n,)).to(self.data.obs.device))

    def state_dict(self) -> dict:
        used = slice(0, self.size)
        return {"size": self.size, "next": self.next,
                **{f.name: getattr(self.data, f.name)[used].cpu() for f in fields(Transitions)}}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.next = state["size"], state["next"]
        for f in fields(Transitions):
            getattr(self.data, f.name)[: self.size] = state[f.name].to(getattr(self.data, f.name))


def demo_transitions(episodes, horizon: int, act_steps: int, obs_norm, act_norm,
                     device: torch.device | str = "cpu") -> Transitions:
    """Every demo step t as a chunk transition: chunk a[t:t+H] (end-padded, as for imitation), reward
    sum(r[t:t+h]), next observation o[t+h]. The chunk that reaches the end of an episode is terminal when the
    episode terminated (metadata 'terminated', or 'success' for the sparse manipulation tasks, whose success ends
    the episode); otherwise its next observation is unknown and it is dropped."""
    parts = []
    for ep in episodes:
        T = len(ep)
        obs, chunks = chunk_pairs(ep.observations, ep.actions, horizon)
        terminated = bool(ep.metadata.get("terminated", ep.metadata.get("success", False)))
        ends = np.arange(T) + act_steps                  # index after the executed part of each chunk
        keep = ends < T if not terminated else np.ones(T, dtype=bool)
        if not keep.any():
            continue
        cumulative = np.concatenate([[0.0], np.cumsum(ep.rewards, dtype=np.float64)])
        rewards = cumulative[np.minimum(ends, T)] - cumulative[np.arange(T)]
        next_obs = ep.observations[np.minimum(ends, T - 1)]  # terminal rows: any value, masked by done
        dones = (ends >= T).astype(np.float32)
        rows = np.nonzero(keep)[0]
        parts.append(Transitions(
            obs_norm.normalize(torch.as_tensor(obs[rows], dtype=torch.float32)),
            act_norm.normalize(torch.as_tensor(chunks[rows], dtype=torch.float32)),
            torch.as_tensor(rewards[rows], dtype=torch.float32),
            obs_norm.normalize(torch.as_tensor(next_obs[rows], dtype=torch.float32)),
            torch.as_tensor(dones[rows]),
        ))
    if not parts:
        raise ValueError("the demos hold no usable transition (every episode is shorter than one chunk)")
    batch = Transitions.cat(parts)
    return Transitions(*(getattr(batch, f.name).to(device) for f in fields(Transitions)))


@dataclass
class ReplayDraw:
    """One iteration's off-policy update: ``n_steps`` gradient steps on batches from the replay, a fraction
    ``demo_ratio`` of each batch from the demo transitions (RLPD's symmetric sampling at 0.5)."""
    replay: ReplayBuffer
    n_steps: int
    demos: Transitions | None = None
    demo_ratio: float = 0.0

    def sample(self, batch_size: int) -> Transitions:
        n_demo = int(round(batch_size * self.demo_ratio)) if self.demos is not None else 0
        online = self.replay.sample(batch_size - n_demo)
        if n_demo == 0:
            return online
        return Transitions.cat([online, self.demos.index(torch.randint(0, len(self.demos), (n_demo,)).to(
            self.demos.obs.device))])
