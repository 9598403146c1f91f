"""The one small interface every RL algorithm implements, so the IN-RIL learner can drive any of them.

The learner (inril_core.learner) knows nothing of PPO, Q-learning or diffusion chains. From an algorithm it needs:

- acting: an ``Actor`` that maps normalised observations to normalised action chunks, plus the per-decision record
  the algorithm learns from (DPPO: the denoising chain; residual PPO: base action and residual sample); off-policy
  algorithms learn from the chunk itself and record nothing;
- learning: ``rl_steps(data, train_actor, aux_actor_loss)``, a generator that takes ONE actor optimiser step per
  item it yields (the unit ``interleave.m`` counts, DESIGN.md §3) and the algorithm's own critic steps in between;
- imitation: ``bc_loss`` (a demo loss on the parameters RL trains: BC-regularisation and IN-RIL without network
  separation) and ``il_parameters`` / ``il_loss`` (what an IN-RIL injection trains: the same, or with
  ``separation: network`` a separate base network that RL never touches);
- state: ``tensors`` (weights, safetensors-ready) and ``state_dict`` (optimisers), for exact resume.

An algorithm never knows it is being interleaved (DESIGN.md §7): the learner reads ``last_actor_grad`` when an
injection wants the RL direction it should not undo.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from inril_core.agent import DiffusionAgent
from inril_core.distributed import GradSync
from inril_core.separation import flat_grad

AuxLoss = Callable[[], torch.Tensor]


class TensorBatch:
    """Mixin of dataclasses whose fields are tensors with one row per sample: len() and row selection."""

    def __len__(self) -> int:
        return getattr(self, fields(self)[0].name).shape[0]

    def index(self, idx: torch.Tensor):
        return type(self)(*(getattr(self, f.name)[idx] for f in fields(self)))


@dataclass
class Rollout:
    """One iteration of on-policy data, (S decision steps, E envs), observations normalised."""
    obs: torch.Tensor        # (S, E, obs_dim)
    samples: torch.Tensor    # (S, E, ...): the record explore() returned with each decision (DPPO: the chain)
    rewards: torch.Tensor    # (S, E) env rewards of each decision
    dones: torch.Tensor      # (S, E) 1 where an episode ended in that decision step
    last_obs: torch.Tensor   # (E, obs_dim) observation after the last step (bootstrap)
    bootstrap: torch.Tensor  # (S, E) gamma V(final obs) where an episode was truncated (a time-out), else 0

    def returns_input(self, reward_scale: float) -> torch.Tensor:
        """What GAE adds up per step: the scaled reward, plus the critic's value of a time-out's final state (in
        the critic's, i.e. scaled, units), so a time-out is not mistaken for the end of the task."""
        return reward_scale * self.rewards + self.bootstrap


class Actor:
    """Acts for a batch of parallel episodes. Stateless algorithms act from the observation alone; an algorithm
    that holds per-episode state between decisions (residual PPO's base chunk) forgets an episode's state in
    ``episodes_ended``, which the caller invokes after every vector-env step."""

    def __init__(self, act: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        self._act = act

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised obs (B, obs_dim) -> (normalised chunk (B, h, A) to execute, learning record or None)."""
        return self._act(obs)

    def episodes_ended(self, ended: np.ndarray) -> None:
        """Episodes of the rows flagged in ``ended`` are over (their next observation starts a new one)."""


class RLAlgorithm(ABC):
    """Base of DPPO, residual PPO, IDQL and RLPD; see the module docstring for the contract."""

    name: ClassVar[str]
    on_policy: ClassVar[bool]
    separations: ClassVar[tuple[str, ...]] = ("none", "pcgrad")  # the ``separation`` values it supports
    default_separation: ClassVar[str] = "pcgrad"  # what ``separation: auto`` (the in-ril preset) means for it

    def __init__(self, agent: DiffusionAgent, cfg: Any, separation: str = "none",
                 il_k_max: int | None = None) -> None:
        """``cfg`` is the config's ``rl`` section; ``il_k_max`` < T restricts denoising losses on demos to the
        low-noise steps k < il_k_max (``il.denoising_steps: finetuned``)."""
        if separation not in self.separations:
            raise ValueError(f"separation={separation} does not apply to algo={self.name}: choose one of "
                             f"{', '.join(self.separations)} (network separation needs algo=residual_ppo)")
        self.agent, self.cfg, self.separation, self.il_k_max = agent, cfg, separation, il_k_max
        self.policy = agent.policy
        self.last_actor_grad: torch.Tensor | None = None  # flat, over actor_parameters(), of the last RL actor step
        self._syncs: dict[str, GradSync] = {}

    # ------------------------------------------------------------------------------------------------ acting

    @property
    def env_act_steps(self) -> int:
        """Env steps one decision executes (the chunk's executed part; residual PPO decides every step)."""
        return self.agent.act_steps

    @abstractmethod
    def actor(self, explore: bool) -> Actor:
        """An actor for a batch of episodes: exploring (data collection) or deterministic (evaluation)."""

    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) for bootstrapping a time-out in on-policy rollouts; only on-policy algorithms need it."""
        raise NotImplementedError(f"{self.name} has no state-value critic for on-policy bootstrapping")

    # ------------------------------------------------------------------------------------------------ learning

    @abstractmethod
    def actor_parameters(self) -> list[nn.Parameter]:
        """The parameters RL steps train (the actor); ``last_actor_grad`` is flattened over them."""

    def has_policy_signal(self, data: Any) -> bool:
        """Whether ``data`` can tell the actor which way to move; when not, the iteration's RL steps train the critic
        only (and so inject no IL: IN-RIL counts actor steps). Off-policy draws mix in demos and always can."""
        return True

    @abstractmethod
    def rl_steps(self, data: Any, train_actor: bool, aux_actor_loss: AuxLoss | None = None) -> Iterator[dict]:
        """All RL optimiser steps one iteration's ``data`` calls for; yields metrics after each actor step
        (with ``train_actor`` False: after each critic-only step). ``aux_actor_loss()`` (BC-reg) is added to every
        actor loss."""

    def synced(self, kind: str, params: Callable[[], Iterable[nn.Parameter]]) -> GradSync:
        """The gradient averaging (DDP over the ranks; nothing in a single process) of one kind of step, built on
        first use, when every network exists on its device."""
        if kind not in self._syncs:
            self._syncs[kind] = GradSync(params())
        return self._syncs[kind]

    def record_actor_grad(self) -> None:
        """Keep the RL actor gradient just computed (before clipping), the reference of PCGrad and of rho."""
        self.last_actor_grad = flat_grad(self.actor_parameters()).detach().clone()

    # ------------------------------------------------------------------------------------------------ imitation

    @abstractmethod
    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """An imitation loss on demo (obs, chunk) pairs through the parameters RL trains."""

    def il_parameters(self) -> list[nn.Parameter]:
        """The parameters an IN-RIL injection trains: the RL actor, unless network separation gives IL its own."""
        return self.actor_parameters()

    def il_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        return self.bc_loss(obs, chunks)

    @property
    def il_shares_actor(self) -> bool:
        """Whether IL and RL train the same parameters (then rho and PCGrad are defined)."""
        return True

    # ------------------------------------------------------------------------------------------------ state

    @abstractmethod
    def _modules(self) -> dict[str, nn.Module]:
        """The networks a checkpoint holds beyond the agent's (critics, frozen copies, residual), by name."""

    @abstractmethod
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        ...

    def tensors(self) -> dict[str, torch.Tensor]:
        """Weights of ``_modules()``, prefixed by the algorithm's name (safetensors-ready)."""
        return prefixed(self.name, self._modules())

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_prefixed(self.name, self._modules(), tensors)

    def state_dict(self) -> dict:
        """Optimiser states and the PCGrad reference: what an exact resume needs beyond the weights."""
        return {**{name: opt.state_dict() for name, opt in self._optimizers().items()},
                "last_actor_grad": self.last_actor_grad}

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self._optimizers().items():
            opt.load_state_dict(state[name])
        self.last_actor_grad = state["last_actor_grad"]


def prefixed(prefix: str, modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """{'<prefix>.<module>.<param>': tensor} for checkpointing several modules in one flat dict."""
    return {f"{prefix}.{name}.{k}": v for name, module in modules.items() for k, v in module.state_dict().items()}


def load_prefixed(prefix: str, modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of ``prefixed``: each module gets the entries under '<prefix>.<module>.'."""
    for name, module in modules.items():
        start = f"{prefix}.{name}."
        module.load_state_dict({k[len(start):]: v for k, v in tensors.items() if k.startswith(start)})


def mlp(sizes: list[int], activation: type[nn.Module] = nn.Mish, layernorm: bool = False) -> nn.Sequential:
    """Linear layers with ``activation`` between them (and LayerNorm before it, as RLPD's critics)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if layernorm:
                layers.append(nn.LayerNorm(b))
            layers.append(activation())
    return nn.Sequential(*layers)


def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source, parameter by parameter."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)
