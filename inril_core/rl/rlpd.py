"""RLPD (Ball et al. 2023): the demo-using off-policy baseline the reviewers asked for (paper-notes §8.2).

Soft actor-critic with RLPD's three changes: every batch is half demo transitions and half online ones ("symmetric
sampling", ``rl.demo_ratio`` 0.5), the critics are an ensemble with LayerNorm (which keeps Q from extrapolating on
actions the data never had), and the target takes the minimum over a random subset of ``rl.target_subset`` of them.
Actions are whole chunks here, as for every algorithm of this project: the Gaussian (tanh-squashed) actor outputs a
normalised H x A chunk, and the critics score (observation, chunk) — action-chunked Q-learning, so RLPD decides at
the same rate as the diffusion policies it is compared with.

    critic:  L_Q = sum_i E[(Q_i(s, a) - y)^2],  y = r + gamma (1 - done) (min_{j in subset} Q'_j(s', a') - alpha log pi(a'|s'))
    actor:   L_pi = E[alpha log pi(a|s) - mean_i Q_i(s, a)],   a ~ pi(.|s) reparameterised
    alpha:   L_alpha = E[-alpha (log pi(a|s) + target_entropy)]   (target entropy -|chunk| / 2, as RLPD)

It does not use the pre-trained diffusion policy (RLPD learns from scratch with the demos in its batches; the
agent contributes only its observation/action normalisers). IN-RIL and BC-reg apply to its actor as to any other:
the imitation loss is the MSE of the actor's mean chunk to the demo chunk. With no demos (``rl.demo_ratio`` 0) it is
plain SAC with an ensemble, which is how the locomotion experts are trained.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
from torch import nn

from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.replay import ReplayDraw, Transitions
from inril_core.rl.base import Actor, AuxLoss, RLAlgorithm, mlp, polyak

LOG_STD_RANGE = (-5.0, 2.0)


class SquashedGaussianActor(nn.Module):
    """obs -> tanh(N(mu, sigma)) over a flattened (H, A) chunk, with the tanh-corrected log-likelihood."""

    def __init__(self, obs_dim: int, horizon: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.shape = (horizon, act_dim)
        self.net = mlp([obs_dim, *hidden, 2 * horizon * act_dim], activation=nn.ReLU)

    def _dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(*LOG_STD_RANGE).exp()

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised chunk (B, H, A) in (-1, 1) and its log-likelihood (B,)."""
        mean, std = self._dist(obs)
        u = mean + std * torch.randn_like(mean)
        # log pi(a) = log N(u) - sum log(1 - tanh(u)^2), the latter written stably as 2 (log 2 - u - softplus(-2u))
        logp = torch.distributions.Normal(mean, std).log_prob(u).sum(-1)
        logp = logp - (2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return torch.tanh(u).view(-1, *self.shape), logp

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._dist(obs)[0]).view(-1, *self.shape)


class CriticEnsemble(nn.Module):
    """``n`` Q(s, chunk) networks with LayerNorm, evaluated together: output (n, B)."""

    def __init__(self, in_dim: int, hidden: list[int], n: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(mlp([in_dim, *hidden, 1], activation=nn.ReLU, layernorm=True) for _ in range(n))

    def forward(self, obs: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, chunk.flatten(1)], dim=-1)
        return torch.stack([m(x).squeeze(-1) for m in self.members])


class RLPD(RLAlgorithm):
    name = "rlpd"
    on_policy = False

    def __init__(self, agent: DiffusionAgent, cfg, separation: str = "pcgrad", il_k_max: int | None = None) -> None:
        super().__init__(agent, cfg, separation, il_k_max)
        spec, device = agent.spec, agent.device
        if not 2 <= cfg.target_subset <= cfg.n_critics:
            raise ValueError(f"rl.target_subset={cfg.target_subset} must be in 2..rl.n_critics ({cfg.n_critics})")
        self.pi = SquashedGaussianActor(spec["obs_dim"], spec["horizon"], spec["act_dim"],
                                        list(cfg.actor_hidden)).to(device)
        in_dim = spec["obs_dim"] + spec["horizon"] * spec["act_dim"]
        self.q = CriticEnsemble(in_dim, list(cfg.critic_hidden), cfg.n_critics).to(device)
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature), device=device))
        self.target_entropy = -0.5 * spec["horizon"] * spec["act_dim"]
        self.actor_opt = torch.optim.Adam(self.actor_parameters(), lr=cfg.actor_lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)

    # ------------------------------------------------------------------------------------------------ acting

    def actor(self, explore: bool) -> Actor:
        return Actor(lambda obs: (self._act(obs, explore), None))

    @torch.no_grad()
    def _act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        return self.pi.sample(obs)[0] if explore else self.pi.mode(obs)

    # ------------------------------------------------------------------------------------------------ learning

    def actor_parameters(self) -> list[nn.Parameter]:
        return list(self.pi.parameters())

    def critic_step(self, b: Transitions) -> dict:
        alpha = self.log_alpha.exp().detach()
        parts: dict = {}

        def loss() -> torch.Tensor:
            with torch.no_grad():
                next_chunk, next_logp = self.pi.sample(b.next_obs)
                subset = torch.randperm(self.cfg.n_critics)[: self.cfg.target_subset]
                next_q = self.target_q(b.next_obs, next_chunk)[subset].min(0).values - alpha * next_logp
                y = self.cfg.reward_scale * b.rewards + self.cfg.gamma * (1.0 - b.dones) * next_q
            q = self.q(b.obs, b.chunks)
            parts["q_mean"] = q.mean()
            return (q - y).pow(2).mean(1).sum()

        total = self.synced("critic", self.q.parameters)(loss)
        if not torch.isfinite(total):
            raise NonFiniteError(f"RLPD critic loss is {total.item()}: lower rl.critic_lr; last checkpoint kept")
        self.q_opt.zero_grad(set_to_none=True)
        total.backward()
        self.q_opt.step()
        polyak(self.target_q, self.q, self.cfg.tau)
        return {"q_loss": total.item(), "q_mean": parts["q_mean"].item()}

    def actor_step(self, b: Transitions, aux_actor_loss: AuxLoss | None) -> dict:
        """The actor loss (+ BC-reg) and the temperature loss, on disjoint parameters: one backward for both."""
        parts: dict = {}

        def loss() -> torch.Tensor:
            alpha = self.log_alpha.exp()
            chunk, logp = self.pi.sample(b.obs)
            q = self.q(b.obs, chunk).mean(0)
            parts["actor"] = (alpha.detach() * logp - q).mean()
            parts["alpha_loss"] = -(alpha * (logp.detach() + self.target_entropy)).mean()
            parts["entropy"], parts["alpha"] = -logp.mean(), alpha
            aux = aux_actor_loss() if aux_actor_loss is not None else 0.0
            return parts["actor"] + aux + parts["alpha_loss"]

        total = self.synced("actor", lambda: [*self.actor_parameters(), self.log_alpha])(loss)
        if not torch.isfinite(total):
            raise NonFiniteError(f"RLPD actor loss is {total.item()}: lower rl.actor_lr; last checkpoint kept")
        self.actor_opt.zero_grad(set_to_none=True)
        self.alpha_opt.zero_grad(set_to_none=True)
        self.q_opt.zero_grad(set_to_none=True)  # the actor's loss reaches the critics: their gradient is not used
        total.backward()
        self.record_actor_grad()
        norm = nn.utils.clip_grad_norm_(self.actor_parameters(), self.cfg.max_grad_norm).item()
        self.actor_opt.step()
        self.alpha_opt.step()
        return {"actor_loss": parts["actor"].item(), "entropy": parts["entropy"].item(),
                "alpha": parts["alpha"].item(), "actor_grad_norm": norm}

    def rl_steps(self, data: ReplayDraw, train_actor: bool, aux_actor_loss: AuxLoss | None = None) -> Iterator[dict]:
        """Per yielded step: ``rl.critic_steps`` critic updates (RLPD's update-to-data ratio), then one actor and
        temperature update."""
        for _ in range(data.n_steps):
            for _ in range(self.cfg.critic_steps):
                metrics = self.critic_step(data.sample(self.cfg.batch_size))
            if train_actor:
                metrics.update(self.actor_step(data.sample(self.cfg.batch_size), aux_actor_loss))
            yield metrics

    # ------------------------------------------------------------------------------------------------ imitation

    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """MSE of the actor's mean chunk to the demo chunk (TD3+BC's imitation term)."""
        return nn.functional.mse_loss(self.pi.mode(obs), chunks)

    # ------------------------------------------------------------------------------------------------ state

    def _modules(self) -> dict[str, nn.Module]:
        return {"pi": self.pi, "q": self.q, "target_q": self.target_q}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "q_opt": self.q_opt, "alpha_opt": self.alpha_opt}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**super().tensors(), f"{self.name}.log_alpha": self.log_alpha.detach()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        super().load_tensors(tensors)
        with torch.no_grad():
            self.log_alpha.copy_(tensors[f"{self.name}.log_alpha"])
