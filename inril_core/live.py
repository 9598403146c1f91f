"""Live IN-RIL: on-policy updates from the transition records a policy server streams (the learner node's core).

Offline fine-tuning (``inril_core.training.FineTuneRun``) steps its own environments. Here the data come from
another process: one ``inril_core.transitions`` record per executed chunk, plus the episode's outcome from
``/inril/episode``, possibly out of order, each record tagged with the policy version that acted
(docs/graph.md, "Transitions and learning"). Three pieces, none of which knows ROS:

- ``EpisodeAssembler`` joins records and outcomes into whole episodes and keeps only those the learner can learn
  from on-policy: every chunk present, acted entirely by the current version, finite, not ended by an e-stop.
- ``episodes_to_rollout`` turns them into the ``Rollout`` DPPO learns from, with FineTuneRun's conventions.
- ``LiveLearner`` owns the learning stack (built by ``training.build_learner``, as FineTuneRun's), runs one update
  per batch of episodes (one update = one new policy version), and saves / restores versioned checkpoints.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.checkpoint import (
    Checkpoint,
    file_sha256,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_file,
)
from inril_core.config import resolve_device
from inril_core.rl.base import Rollout
from inril_core.rl.dppo import DPPO
from inril_core.training import build_learner, load_pretrained_agent, seed_everything
from inril_core.transitions import Transition

OUTCOMES = ("success", "timeout", "estop")
SUCCESS_REWARD = 1.0  # the sim tasks' sparse reward: 1 on the step that succeeds, which ends the episode
DROP_REASONS = ("dropped_estop", "dropped_off_policy", "dropped_invalid", "dropped_incomplete")


class EpisodeRecordError(ValueError):
    """A transition or /inril/episode record the learner cannot use (wrong sizes, unknown outcome, missing field)."""


@dataclass(frozen=True)
class LiveEpisode:
    """One complete, learnable episode: its records in chunk order and how it ended."""

    episode: int
    outcome: str                       # "success" | "timeout"
    length: int                        # env steps
    records: tuple[Transition, ...]    # chunks 0 .. n-1, the last one flagged ``last``


@dataclass
class _Pending:
    records: dict[int, Transition] = field(default_factory=dict)
    outcome: dict | None = None


class EpisodeAssembler:
    """Joins transition records and episode outcomes into complete episodes acted by one policy version.

    Records may arrive in any order. An episode is complete once it has its ``ended`` outcome and its records are
    chunks 0..n-1 with chunk n-1 flagged ``last``; one that never completes (a lost record) waits until more than
    ``max_pending`` episodes are waiting, then it is dropped as incomplete. Every episode that is not learned from
    is counted under one of ``DROP_REASONS``, and its later records are ignored (``ignored_records``): ids of
    finished episodes are remembered, the newest ``closed_memory`` of them. Not thread-safe (LiveLearner locks).
    """

    def __init__(self, obs_dim: int, chain_shape: tuple[int, int, int], version: int = 0, max_pending: int = 64,
                 closed_memory: int = 4096) -> None:
        self.obs_dim, self.chain_shape, self.version = obs_dim, tuple(chain_shape), version
        self.max_pending, self.closed_memory = max_pending, closed_memory
        self._pending: dict[int, _Pending] = {}   # insertion order = first heard of, oldest first
        self._ready: list[LiveEpisode] = []
        self._closed: dict[int, None] = {}        # an ordered set of finished episode ids, oldest first
        self.counts = {**{reason: 0 for reason in DROP_REASONS}, "ignored_records": 0}

    @property
    def n_ready(self) -> int:
        return len(self._ready)

    @property
    def ready_env_steps(self) -> int:
        """Env steps of the complete episodes waiting."""
        return sum(e.length for e in self._ready)

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    def add(self, t: Transition) -> None:
        """File one record. A malformed or non-finite one raises (EpisodeRecordError / NonFiniteError) after
        dropping its episode; one acted by another policy version drops its episode (off-policy)."""
        if t.episode in self._closed:
            self.counts["ignored_records"] += 1
            return
        try:
            self._check(t)
        except (EpisodeRecordError, NonFiniteError):
            self._drop(t.episode, "dropped_invalid")
            raise
        if t.policy_version != self.version:
            self._drop(t.episode, "dropped_off_policy")
            return
        pending = self._pending_for(t.episode)
        if t.chunk in pending.records:  # a repeated record: the first copy stands
            self.counts["ignored_records"] += 1
            return
        pending.records[t.chunk] = t
        self._complete(t.episode)

    def add_outcome(self, record: dict) -> None:
        """File an /inril/episode record; only ``state: ended`` ones matter here, the others are ignored."""
        if record.get("state") != "ended":
            return
        episode, outcome, length = record.get("episode"), record.get("outcome"), record.get("length")
        if not _is_count(episode) or not _is_count(length) or outcome not in OUTCOMES:
            raise EpisodeRecordError(
                f"ended episode record needs an integer episode >= 0, an integer length >= 0 and an outcome in "
                f"{OUTCOMES}; got episode={episode!r}, length={length!r}, outcome={outcome!r}"
            )
        if episode in self._closed:  # e.g. the latched record delivered again to a new subscription
            return
        if outcome == "estop":  # stopped by the safety chain: its end says nothing about the task
            self._drop(episode, "dropped_estop")
            return
        self._pending_for(episode).outcome = {"outcome": outcome, "length": length}
        self._complete(episode)

    def take(self) -> list[LiveEpisode]:
        """The complete episodes, oldest first; they leave the assembler."""
        ready, self._ready = self._ready, []
        return ready

    def set_version(self, version: int) -> None:
        """The learner now holds ``version``: every episode acted by another one is off-policy, dropped."""
        self.version = version
        for episode in [e for e, p in self._pending.items() if p.records]:  # records all carry the old version
            self._drop(episode, "dropped_off_policy")
        self.counts["dropped_off_policy"] += len(self._ready)
        self._ready = []

    # ------------------------------------------------------------------------------------------------ internals

    def _check(self, t: Transition) -> None:
        where = f"transition of episode {t.episode} chunk {t.chunk}"
        expected = {"obs": (self.obs_dim,), "next_obs": (self.obs_dim,), "chain": self.chain_shape}
        for name, shape in expected.items():
            if np.shape(getattr(t, name)) != shape:
                raise EpisodeRecordError(
                    f"{where}: {name} has shape {np.shape(getattr(t, name))}, this learner expects {shape} (obs_dim, "
                    "and rl.ft_denoising_steps + 1, policy.horizon, env.act_dim for the chain): run the policy "
                    "server and the learner with the same task and config overrides"
                )
        for name in ("obs", "next_obs", "actions", "chain"):
            if not np.isfinite(getattr(t, name)).all():
                raise NonFiniteError(f"{where} has NaN/Inf in {name}: the episode is dropped, not learned from")

    def _pending_for(self, episode: int) -> _Pending:
        if episode not in self._pending:
            self._pending[episode] = _Pending()
            while len(self._pending) > self.max_pending:
                self._drop(next(iter(self._pending)), "dropped_incomplete")
        return self._pending[episode]

    def _complete(self, episode: int) -> None:
        pending = self._pending[episode]
        n = len(pending.records)
        # chunk indices are distinct integers >= 0, so max == n - 1 means exactly 0 .. n-1 are present
        if pending.outcome is None or n == 0 or max(pending.records) != n - 1 or not pending.records[n - 1].last:
            return
        del self._pending[episode]
        self._close(episode)
        self._ready.append(LiveEpisode(episode, pending.outcome["outcome"], pending.outcome["length"],
                                       tuple(pending.records[c] for c in range(n))))

    def _drop(self, episode: int, reason: str) -> None:
        self._pending.pop(episode, None)
        self._close(episode)
        self.counts[reason] += 1

    def _close(self, episode: int) -> None:
        self._closed[episode] = None
        while len(self._closed) > self.closed_memory:
            del self._closed[next(iter(self._closed))]


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def episodes_to_rollout(episodes: Sequence[LiveEpisode], algo: DPPO) -> Rollout:
    """Complete episodes -> one DPPO rollout: one env column, the episodes one after another in time.

    FineTuneRun.collect's conventions: a chunk step's reward is what the env paid during it (sparse: 1 on the chunk
    in which the task succeeded, which ends the episode), done = 1 on the chunk step an episode ended in, and a
    time-out is bootstrapped by adding gamma V(final observation) to its last reward, as it did not really end.
    Concatenating episodes in one column is exact: done = 1 at every episode's end cuts GAE there, so nothing
    flows between episodes and ``last_obs`` (the final observation of the last episode) is never used.
    """
    if not episodes:
        raise ValueError("a rollout needs at least one complete episode")
    agent = algo.agent
    records = [t for e in episodes for t in e.records]
    obs = agent.obs_tensor(np.stack([t.obs for t in records]))
    chains = torch.as_tensor(np.stack([t.chain for t in records]), dtype=torch.float32, device=agent.device)
    rewards = torch.zeros(len(records))
    bootstrap = torch.zeros(len(records))
    dones = torch.zeros(len(records))
    ends = np.cumsum([len(e.records) for e in episodes]) - 1
    for end, episode in zip(ends, episodes):
        dones[end] = 1.0
        if episode.outcome == "success":
            rewards[end] = SUCCESS_REWARD
    timeouts = [(end, e.records[-1].next_obs) for end, e in zip(ends, episodes) if e.outcome == "timeout"]
    if timeouts:
        index, final = zip(*timeouts)
        values = algo.values(agent.obs_tensor(np.stack(final))).cpu()
        bootstrap[list(index)] = algo.cfg.gamma * values
    device = agent.device
    return Rollout(obs[:, None], chains[:, None], rewards[:, None].to(device), dones[:, None].to(device),
                   agent.obs_tensor(records[-1].next_obs[None]), bootstrap[:, None].to(device))


class LiveLearner:
    """The learning stack of a fine-tuning run, fed by live records; each update makes one new policy version.

    ``add`` / ``add_episode_outcome`` / ``ready`` may be called from another thread while ``update`` runs (a
    node keeps collecting during an update): they share only the assembler, under a lock. Records of the version
    being replaced that arrive meanwhile are dropped when the update ends (on-policy learning).
    """

    def __init__(self, cfg: DictConfig, agent: DiffusionAgent, episodes_per_update: int,
                 env_steps_per_update: int = 0) -> None:
        if episodes_per_update < 1:
            raise ValueError(f"episodes_per_update must be >= 1, got {episodes_per_update}")
        if env_steps_per_update < 0:
            raise ValueError(f"env_steps_per_update must be >= 0, got {env_steps_per_update}")
        if cfg.rl.name != DPPO.name:
            raise ValueError(f"the live learner runs DPPO (the graph streams DPPO's denoising chains as transitions); "
                             f"algo={cfg.algo} runs offline with 'inril train'")
        self.cfg, self.episodes_per_update = cfg, episodes_per_update
        self.env_steps_per_update = env_steps_per_update
        self.device = resolve_device(cfg.device, cfg.threads)
        seed_everything(cfg.seed)
        self.agent = agent.to(self.device)
        self.learner = build_learner(cfg, self.agent, self.device)
        self.algo = self.learner.algo
        self.version = 0       # updates done; the policy version the current weights are
        self.env_steps = 0     # env steps of the episodes learned from
        self.episodes = 0      # episodes learned from
        self.checkpoint: tuple[Path, str] | None = None  # (weights file, sha256) of the newest saved version
        spec = self.agent.spec
        self._assembler = EpisodeAssembler(spec["obs_dim"], (self.algo.K + 1, spec["horizon"], spec["act_dim"]))
        self._lock = threading.Lock()

    @classmethod
    def open(cls, cfg: DictConfig, run_dir: str | Path, policy_dir: str | Path,
             episodes_per_update: int, env_steps_per_update: int = 0) -> "LiveLearner":
        """Resume from the newest checkpoint in ``run_dir`` (same version, counters, optimiser state), or start
        from the policy in ``policy_dir`` (a pre-training run) when ``run_dir`` has none yet."""
        found = load_latest(run_dir)
        if found is None and not str(policy_dir):
            raise FileNotFoundError(f"{run_dir} has no learner checkpoint yet and no initial policy was given: set "
                                    "policy_dir to a pre-training run dir (inril pretrain)")
        agent = DiffusionAgent.from_tensors(found[1]) if found else load_pretrained_agent(policy_dir, cfg.task)
        live = cls(cfg, agent, episodes_per_update, env_steps_per_update)
        if found:
            live._restore(run_dir, found)
        return live

    # ------------------------------------------------------------------------------------------------ data

    def add(self, t: Transition) -> None:
        """File a decoded transition record; see EpisodeAssembler.add for what is refused and how."""
        with self._lock:
            self._assembler.add(t)

    def add_episode_outcome(self, record: dict) -> None:
        """File an /inril/episode JSON record; a malformed ``ended`` one raises EpisodeRecordError."""
        with self._lock:
            self._assembler.add_outcome(record)

    def ready(self) -> bool:
        """Enough complete on-policy episodes wait for an update: at least ``episodes_per_update`` of them, with at
        least ``env_steps_per_update`` env steps between them. The step floor keeps the batch the size of an offline
        iteration (16 envs x 300 steps on lift) when episodes get short: 16 successful lift episodes are only ~160
        chunks, below one PPO minibatch, and updating on them moved the policy on far less data than offline."""
        with self._lock:
            a = self._assembler
            return a.n_ready >= self.episodes_per_update and a.ready_env_steps >= self.env_steps_per_update

    def counts(self) -> dict[str, int]:
        """Episodes waiting (complete / pending) and dropped (by reason), records ignored."""
        with self._lock:
            a = self._assembler
            return {"complete": a.n_ready, "pending": a.n_pending, **a.counts}

    # ------------------------------------------------------------------------------------------------ learning

    def update(self) -> dict:
        """One Learner.update on every complete episode waiting, then version += 1; returns the metrics.

        A NaN/Inf loss or weight raises NonFiniteError and leaves the learner exactly as it was before the update
        (same version, weights and optimiser state; the episodes are consumed), so the last checkpoint stays good.
        """
        with self._lock:
            episodes = self._assembler.take()
        if not episodes:
            raise RuntimeError("update() with no complete episode waiting: call it when ready() is true")
        start = time.perf_counter()
        before = ({k: v.detach().clone() for k, v in self._tensors().items()},
                  copy.deepcopy(self.learner.state_dict()))
        c = self.cfg.rl
        train_actor = self.version >= c.critic_warmup_iters
        try:
            rollout = episodes_to_rollout(episodes, self.algo)
            self._add_successes(episodes)
            metrics, injections = self.learner.update(rollout, train_actor)
            self._check_finite_weights()
        except NonFiniteError:
            self._load(*before)
            raise
        with self._lock:
            self.version += 1
            self._assembler.set_version(self.version)
        self.env_steps += sum(e.length for e in episodes)
        self.episodes += len(episodes)
        rhos = [r["rho"] for r in injections if not math.isnan(r["rho"])]
        return {
            "version": self.version, "env_steps": self.env_steps, "episodes_used": len(episodes),
            "chunks": len(rollout.rewards), "success_rate": float(np.mean([e.outcome == "success" for e in episodes])),
            "train_actor": train_actor, **metrics, "injections": len(injections),
            "rho_mean": float(np.mean(rhos)) if rhos else float("nan"),
            "projected_fraction": (float(np.mean([r["projected"] for r in injections])) if injections
                                   else float("nan")),
            "heldout_il_loss": self.learner.imitation.heldout_loss(),
            "update_s": time.perf_counter() - start, "wall_time": time.time(), **self.counts(),
        }

    def _add_successes(self, episodes: Sequence[LiveEpisode]) -> None:
        """Successful episodes join the IL data (a no-op unless il.success_capacity > 0), as in FineTuneRun."""
        for e in episodes:
            if e.outcome == "success":
                obs = self.agent.obs_tensor(np.stack([t.obs for t in e.records]))
                chunks = torch.as_tensor(np.stack([t.chain[-1] for t in e.records]), dtype=torch.float32)
                self.learner.imitation.add_success(obs, chunks)

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Everything the checkpoint's weights file holds: the agent (deployable policy) and DPPO's frozen base
        denoiser (the first T - K' denoising steps) and critic."""
        return {**self.agent.tensors(), **self.algo.tensors()}

    def _check_finite_weights(self) -> None:
        bad = [name for name, t in self._tensors().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise NonFiniteError(f"the update left NaN/Inf in {', '.join(bad[:3])}: lower rl.actor_lr / il.lr; "
                                 "the previous version is kept")

    def _load(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        self.agent.load_tensors(tensors)
        self.algo.load_tensors(tensors)
        self.learner.load_state_dict(state)

    # ------------------------------------------------------------------------------------------------ state

    def save(self, run_dir: str | Path) -> tuple[Path, str]:
        """Checkpoint the current version (step = version) atomically; returns (weights file, its sha256)."""
        state = {"learner": self.learner.state_dict(), "version": self.version, "env_steps": self.env_steps,
                 "episodes": self.episodes, "dropped": self.counts(), "rng": rng_state()}
        save_checkpoint(run_dir, self.version, self._tensors(), state, keep=self.cfg.run.keep_checkpoints)
        self._set_checkpoint(run_dir, self.version)
        return self.checkpoint

    def restore(self, run_dir: str | Path) -> bool:
        """Continue from the newest checkpoint in ``run_dir``: its version, counters, weights, optimiser and RNG
        state. False (nothing changed) when there is none."""
        found = load_latest(run_dir, self.device)
        if found is None:
            return False
        self._restore(run_dir, found)
        return True

    def _restore(self, run_dir: str | Path, checkpoint: Checkpoint) -> None:
        step, tensors, state = checkpoint
        self._load({k: v.to(self.device) for k, v in tensors.items()}, state["learner"])
        self.env_steps, self.episodes = state["env_steps"], state["episodes"]
        with self._lock:
            self.version = state["version"]
            self._assembler.set_version(self.version)
            for reason in self._assembler.counts:
                self._assembler.counts[reason] = state["dropped"][reason]
        set_rng_state(state["rng"])
        self._set_checkpoint(run_dir, step)

    def _set_checkpoint(self, run_dir: str | Path, step: int) -> None:
        """Announce-ready (absolute weights file, its sha256) of checkpoint ``step``."""
        weights = weights_file(run_dir, step).resolve()
        self.checkpoint = (weights, file_sha256(weights))
