"""Residual PPO (ResiP, Ankile et al. 2024): PPO on a small Gaussian residual over a diffusion base policy.

The base (the pre-trained diffusion policy) plans an action chunk from the observation at the chunk's first step,
deterministically (DDIM eta=0 from x_T = 0), and the chunk is executed step by step. At every env step a small MLP
sees [normalised observation, the base's action for this step] and outputs a Gaussian residual r; the executed
action is  a = clip(a_base + scale * r, -1, 1)  in the normalised action space (ResiP: scale 0.1, last layer
initialised to zero so the policy starts as the base, state-independent log-std initialised to -1). PPO trains the
residual alone (paper-notes §2.2), so its decisions are per env step while the base stays chunked.

Where IN-RIL's imitation goes is ``separation``:
- ``network`` (IN-RIL's network separation): IL injections train the *base* with its denoising loss on the demos;
  RL never touches the base and IL never touches the residual, so the two gradients live in different networks
  (rho is undefined: logged as NaN).
- ``none`` / ``pcgrad``: the base stays frozen and IL trains the residual towards the demo actions
  (MSE of a_base + scale * mean to the demo action), on the same parameters as RL (rho measured, PCGrad possible).

Differences from ResiP, on purpose: the critic is V(observation) (ResiP's critic also sees the base action; ours must
bootstrap time-outs and the rollout's last observation, where no base action was executed), and the base samples
deterministically, so all exploration is the residual's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from inril_core.agent import DiffusionAgent
from inril_core.rl.base import Actor, Rollout, TensorBatch, mlp
from inril_core.rl.ppo import ActorCriticPPO, clipped_surrogate, gae


class ResidualPolicy(nn.Module):
    """Gaussian residual over a base action: mean = MLP([obs, a_base]), std = exp(log_std), log-std per dim."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], init_log_std: float, learn_std: bool) -> None:
        super().__init__()
        self.net = mlp([obs_dim + act_dim, *hidden, act_dim], activation=nn.ReLU)
        last = self.net[-1]
        nn.init.zeros_(last.weight)  # the fine-tuned policy starts exactly as the base (ResiP: init std 0)
        nn.init.zeros_(last.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)), requires_grad=learn_std)

    def forward(self, obs: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(torch.cat([obs, base], dim=-1)), self.log_std.exp().expand(base.shape)

    def log_prob(self, obs: torch.Tensor, base: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        mean, std = self(obs, base)
        return torch.distributions.Normal(mean, std).log_prob(residual).sum(-1)


class _ResidualActor(Actor):
    """Acts every env step: the base's chunk (planned at the chunk's first step, kept per env) plus the residual."""

    def __init__(self, algo: "ResidualPPO", explore: bool) -> None:
        super().__init__(self._step)
        self.algo, self.explore = algo, explore
        self.chunk: torch.Tensor | None = None   # (B, H, A) the base chunk each env is executing
        self.position: torch.Tensor | None = None  # (B,) step of that chunk the next decision executes

    @torch.no_grad()
    def _step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        algo, B = self.algo, obs.shape[0]
        if self.chunk is None:
            self.chunk = torch.zeros(B, algo.policy.horizon, algo.policy.act_dim, device=obs.device)
            self.position = torch.zeros(B, dtype=torch.long, device=obs.device)
        plan = self.position == 0
        if plan.any():
            self.chunk[plan] = algo.base_chunk(obs[plan])
        base = self.chunk[torch.arange(B, device=obs.device), self.position]
        mean, std = algo.residual(obs, base)
        residual = mean + std * torch.randn_like(mean) if self.explore else mean
        self.position = (self.position + 1) % algo.agent.act_steps
        return algo.combine(base, residual)[:, None], torch.stack([base, residual], dim=1)

    def episodes_ended(self, ended: np.ndarray) -> None:
        if self.position is not None and ended.any():
            self.position[torch.as_tensor(ended, device=self.position.device)] = 0  # a new episode plans anew


@dataclass
class ResidualBatch(TensorBatch):
    obs: torch.Tensor
    base: torch.Tensor
    residual: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class ResidualPPO(ActorCriticPPO):
    name = "residual_ppo"
    separations = ("none", "pcgrad", "network")
    default_separation = "network"

    def __init__(self, agent: DiffusionAgent, cfg, separation: str = "network", il_k_max: int | None = None) -> None:
        super().__init__(agent, cfg, separation, il_k_max)
        spec, device = agent.spec, agent.device
        self.base = self.policy.denoiser
        self.base.requires_grad_(separation == "network")  # only network separation ever trains the base (IL)
        self.residual = ResidualPolicy(spec["obs_dim"], spec["act_dim"], list(cfg.residual_hidden),
                                       cfg.init_log_std, cfg.learn_std).to(device)
        self.critic = mlp([spec["obs_dim"], *cfg.critic_hidden, 1], activation=nn.ReLU).to(device)
        self.actor_opt = torch.optim.Adam(self.actor_parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)

    # ------------------------------------------------------------------------------------------------ acting

    @property
    def env_act_steps(self) -> int:
        return 1  # the residual decides every env step

    def actor(self, explore: bool) -> Actor:
        return _ResidualActor(self, explore)

    @torch.no_grad()
    def base_chunk(self, obs: torch.Tensor) -> torch.Tensor:
        """The base's deterministic chunk (DDIM eta=0 over ``rl.base_ddim_steps``; null = all T)."""
        return self.policy.sample_ddim(obs, eta=0.0, n_steps=self.cfg.base_ddim_steps)

    def combine(self, base: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return (base + self.cfg.action_scale * residual).clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------------ learning

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.residual.parameters() if p.requires_grad]

    @torch.no_grad()
    def prepare(self, r: Rollout) -> ResidualBatch:
        """GAE over env steps, old log-probs; flattened to one item per (step, env)."""
        S, E = r.rewards.shape
        values = self.values(r.obs.reshape(S * E, -1)).reshape(S, E)
        adv, ret = gae(r.returns_input(self.cfg.reward_scale), values, r.dones, self.values(r.last_obs), self.cfg.gamma, self.cfg.gae_lambda)
        obs = r.obs.reshape(S * E, -1)
        base, residual = r.samples.reshape(S * E, 2, -1).unbind(dim=1)
        old_logp = self.residual.log_prob(obs, base, residual)
        return ResidualBatch(obs, base, residual, old_logp, adv.reshape(-1), ret.reshape(-1))

    def loss(self, b: ResidualBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """PPO's clipped surrogate on the residual's log-likelihood, and the value loss."""
        adv = (b.advantages - b.advantages.mean()) / (b.advantages.std() + 1e-8)
        new_logp = self.residual.log_prob(b.obs, b.base, b.residual)
        policy_loss, diag = clipped_surrogate(new_logp - b.old_logp, adv, self.cfg.clip)
        value_loss = 0.5 * (self.critic(b.obs).squeeze(-1) - b.returns).pow(2).mean()
        return policy_loss, value_loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), **diag,
                                         "residual_std": self.residual.log_std.exp().mean().item()}

    # ------------------------------------------------------------------------------------------------ imitation

    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """MSE of the combined mean action to the demo's action, the base planning a chunk at each demo state."""
        base = self.base_chunk(obs)[:, 0]
        mean, _ = self.residual(obs, base)
        return nn.functional.mse_loss(self.combine(base, mean), chunks[:, 0])

    def il_parameters(self) -> list[nn.Parameter]:
        if self.separation == "network":
            return [p for p in self.base.parameters() if p.requires_grad]
        return self.actor_parameters()

    def il_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        if self.separation == "network":
            return self.policy.denoising_loss(obs, chunks, k_max=self.il_k_max)
        return self.bc_loss(obs, chunks)

    @property
    def il_shares_actor(self) -> bool:
        return self.separation != "network"

    # ------------------------------------------------------------------------------------------------ state

    def _modules(self) -> dict[str, nn.Module]:
        return {"residual": self.residual, "critic": self.critic}
