"""The transition record that crosses a process boundary from the policy server to the learner: a versioned bytes layout.

One record per executed action chunk. It carries what on-policy diffusion RL needs to learn from the chunk
(the observation, the sampled denoising chain of the fine-tuned steps, the next observation for bootstrapping)
and what every consumer needs to trust it (the policy version that acted, the episode and chunk index). Rewards
are not in it: on a real robot they are known only when the episode is labelled, so the learner joins records with
the episode outcome (``/inril/episode``).

Layout version 1, little-endian: a fixed header ``HEADER`` then float32 arrays in this order:
``obs[obs_dim]``, ``next_obs[obs_dim]``, ``actions[act_steps, act_dim]`` (raw, as executed),
``chain[chain_len, horizon, act_dim]`` (normalised, x_K' ... x_0). The header says every size, so a reader needs
no config to parse a record, and a record from another layout version is refused with a clear error.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"INRT"
LAYOUT_VERSION = 1
# magic, layout version, flags, policy version, episode, chunk index, obs stamp (s), obs_dim, act_dim, act_steps,
# horizon, chain_len
HEADER = struct.Struct("<4sHHIIIdHHHHH")
FLAG_LAST = 1  # the last chunk of its episode: next_obs is the episode's final observation


class TransitionFormatError(ValueError):
    """Bytes that are not a transition record of a layout this code reads."""


@dataclass(frozen=True)
class Transition:
    policy_version: int
    episode: int
    chunk: int
    stamp: float           # time of the observation the chunk answered (s, node clock: sim time in sim)
    obs: np.ndarray        # (obs_dim,) raw observation
    next_obs: np.ndarray   # (obs_dim,) raw observation after the chunk ran
    actions: np.ndarray    # (act_steps, act_dim) raw actions as executed
    chain: np.ndarray      # (chain_len, horizon, act_dim) normalised fine-tuned chain, noisiest first
    last: bool = False     # the episode ended with this chunk

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.obs, self.next_obs, self.actions, self.chain)


def encode(t: Transition) -> bytes:
    """Pack a transition; shapes are checked so a malformed record never leaves the policy server."""
    obs_dim = int(np.shape(t.obs)[0])
    act_steps, act_dim = np.shape(t.actions)
    chain_len, horizon, chain_act_dim = np.shape(t.chain)
    if np.shape(t.next_obs) != (obs_dim,) or chain_act_dim != act_dim:
        raise TransitionFormatError(
            f"inconsistent shapes: obs {np.shape(t.obs)}, next_obs {np.shape(t.next_obs)}, actions "
            f"{np.shape(t.actions)}, chain {np.shape(t.chain)}"
        )
    header = HEADER.pack(MAGIC, LAYOUT_VERSION, FLAG_LAST if t.last else 0, t.policy_version, t.episode, t.chunk,
                         t.stamp, obs_dim, act_dim, act_steps, horizon, chain_len)
    return header + b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in t._arrays())


def decode(data: bytes | bytearray | memoryview) -> Transition:
    """Unpack a record; wrong magic, another layout version or a wrong length raise TransitionFormatError."""
    data = bytes(data)
    if len(data) < HEADER.size:
        raise TransitionFormatError(f"transition record too short: {len(data)} bytes < header {HEADER.size}")
    (magic, version, flags, policy_version, episode, chunk, stamp, obs_dim, act_dim, act_steps, horizon,
     chain_len) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise TransitionFormatError(f"not a transition record (magic {magic!r}, expected {MAGIC!r})")
    if version != LAYOUT_VERSION:
        raise TransitionFormatError(
            f"transition layout version {version}, this code reads {LAYOUT_VERSION}: run the policy server and the "
            "learner from the same inril version"
        )
    shapes = [(obs_dim,), (obs_dim,), (act_steps, act_dim), (chain_len, horizon, act_dim)]
    sizes = [int(np.prod(s)) for s in shapes]
    expected = HEADER.size + 4 * sum(sizes)
    if len(data) != expected:
        raise TransitionFormatError(f"transition record has {len(data)} bytes, its header implies {expected}")
    flat = np.frombuffer(data, dtype="<f4", offset=HEADER.size).astype(np.float32)
    arrays, start = [], 0
    for shape, size in zip(shapes, sizes):
        arrays.append(flat[start:start + size].reshape(shape))
        start += size
    return Transition(policy_version, episode, chunk, stamp, *arrays, last=bool(flags & FLAG_LAST))
