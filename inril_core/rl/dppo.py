"""DPPO (Ren et al. 2024): PPO through the last K' denoising steps of a diffusion policy.

Each denoising step is a Gaussian "action" of an inner MDP: x_{k-1} ~ N(mu_theta(x_k, k, s), sigma_k^2) with sigma
floored at `min_sampling_std` so the chain explores. The frozen pre-trained denoiser runs the first T - K' steps,
the fine-tuned copy (the agent's own denoiser, the only actor weights trained) the last K'. The PPO ratio of a
sample is the ratio of the chain's step likelihoods under the new and the old fine-tuned denoiser; advantages
come from a critic over environment (chunk) steps and are shared by the K' denoising steps of that chunk,
discounted by gamma_denoising towards the noisy end of the chain (paper-notes §3, reference definitions).

The algorithm knows nothing of IN-RIL (inril_core.rl.base): the learner iterates `rl_steps(rollout, ...)`, one
minibatch step per item, and reads `last_actor_grad` when an IL injection needs the RL gradient it should not undo.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from inril_core.agent import DiffusionAgent
from inril_core.rl.base import Actor, Rollout, TensorBatch, mlp
from inril_core.rl.ppo import ActorCriticPPO, clipped_surrogate, gae

LOGPROB_CLAMP = (-5.0, 2.0)  # per-element log-prob clamp, as DPPO: bounds the ratio of rare chain samples


@dataclass
class DPPOBatch(TensorBatch):
    obs: torch.Tensor
    x_prev: torch.Tensor     # x_{k+1}
    x_next: torch.Tensor     # x_k, the sampled denoising "action"
    k: torch.Tensor          # training-schedule index of the step producing x_next
    j: torch.Tensor          # position in the fine-tuned chain, 0 = noisiest
    old_logp: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class DPPO(ActorCriticPPO):
    name = "dppo"

    def __init__(self, agent: DiffusionAgent, cfg, separation: str = "none", il_k_max: int | None = None) -> None:
        super().__init__(agent, cfg, separation, il_k_max)
        self.K = cfg.ft_denoising_steps
        self.actor_ft = self.policy.denoiser
        self.actor_base = copy.deepcopy(self.actor_ft).requires_grad_(False)
        device = agent.device
        self.critic = mlp([agent.spec["obs_dim"], *cfg.critic_hidden, 1]).to(device)
        self.actor_opt = torch.optim.Adam(self.actor_parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)

    # -------------------------------------------------------------------------------------------- acting

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.actor_ft.parameters() if p.requires_grad]

    def denoiser_for_step(self, k: int) -> nn.Module:
        """Frozen base for the first T - K' steps, fine-tuned copy for the last K'."""
        return self.actor_ft if k < self.K else self.actor_base

    def actor(self, explore: bool) -> Actor:
        return Actor(self.explore if explore else lambda obs: (self.act(obs), None))

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic policy (DDIM eta=0 from x_T = 0) through the frozen base and the fine-tuned steps."""
        return self.policy.sample_ddim(obs, eta=0.0, denoiser_for_step=self.denoiser_for_step)

    @torch.no_grad()
    def explore(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stochastic chain with floored std; returns (action chunk (B, H, A), fine-tuned chain (B, K'+1, H, A))."""
        x = torch.randn(obs.shape[0], self.policy.horizon, self.policy.act_dim, device=obs.device)
        chain = []
        for step in reversed(range(self.policy.n_steps)):
            if step < self.K:
                chain.append(x)  # x_{step+1}: the input of a fine-tuned step
            k = torch.full((obs.shape[0],), step, dtype=torch.long, device=obs.device)
            mean, std = self.policy.reverse_step(x, k, obs, self.denoiser_for_step(step))
            floor = self.cfg.min_sampling_std if step < self.K else 0.0
            x = mean + std.clamp(min=floor) * torch.randn_like(x)
        chain.append(x)
        return x.clamp(-1.0, 1.0), torch.stack(chain, dim=1)

    # -------------------------------------------------------------------------------------------- loss

    def log_prob(self, obs: torch.Tensor, x_prev: torch.Tensor, x_next: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """log p_ft(x_next | x_prev, k, obs), averaged over the executed chunk steps and action dims."""
        mean, std = self.policy.reverse_step(x_prev, k, obs, self.actor_ft)
        dist = torch.distributions.Normal(mean, std.clamp(min=self.cfg.min_logprob_std))
        logp = dist.log_prob(x_next).clamp(*LOGPROB_CLAMP)
        return logp[:, : self.agent.act_steps].mean(dim=(1, 2))

    def clip_coef(self, j: torch.Tensor) -> torch.Tensor:
        """Exponential interpolation from clip_base (noisiest fine-tuned step) to clip_final (last step)."""
        c = self.cfg
        if self.K == 1:
            return torch.full_like(j, c.clip_final, dtype=torch.float32)
        t = j.float() / (self.K - 1)
        return c.clip_base + (c.clip_final - c.clip_base) * (torch.exp(c.clip_rate * t) - 1) / (math.exp(c.clip_rate) - 1)

    def loss(self, b: DPPOBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Policy loss (clipped surrogate over denoising steps) and value loss, every term named in the metrics."""
        adv = (b.advantages - b.advantages.mean()) / (b.advantages.std() + 1e-8)
        adv = adv * self.cfg.gamma_denoising ** (self.K - 1 - b.j).float()
        new_logp = self.log_prob(b.obs, b.x_prev, b.x_next, b.k)
        policy_loss, diag = clipped_surrogate(new_logp - b.old_logp, adv, self.clip_coef(b.j))
        value_loss = 0.5 * (self.critic(b.obs).squeeze(-1) - b.returns).pow(2).mean()
        metrics = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), **diag}
        return policy_loss, value_loss, metrics

    # -------------------------------------------------------------------------------------------- data

    @torch.no_grad()
    def prepare(self, r: Rollout) -> DPPOBatch:
        """Advantages, returns and old log-probs, flattened to one item per (chunk step, env, denoising step)."""
        S, E = r.rewards.shape
        values = self.values(r.obs.reshape(S * E, -1)).reshape(S, E)
        adv, ret = gae(r.returns_input(self.cfg.reward_scale), values, r.dones, self.values(r.last_obs), self.cfg.gamma, self.cfg.gae_lambda)
        K = self.K
        obs = r.obs.reshape(S * E, 1, -1).expand(-1, K, -1).reshape(S * E * K, -1)
        chains = r.samples.reshape(S * E, K + 1, *r.samples.shape[-2:])
        x_prev = chains[:, :-1].reshape(S * E * K, *chains.shape[-2:])
        x_next = chains[:, 1:].reshape(S * E * K, *chains.shape[-2:])
        j = torch.arange(K, device=obs.device).repeat(S * E)
        k = K - 1 - j
        old_logp = torch.cat([
            self.log_prob(obs[i:i + 4096], x_prev[i:i + 4096], x_next[i:i + 4096], k[i:i + 4096])
            for i in range(0, obs.shape[0], 4096)
        ])
        # one advantage and return per chunk step, shared by its K' denoising steps
        adv, ret = (x.reshape(S * E, 1).expand(-1, K).reshape(-1) for x in (adv, ret))
        return DPPOBatch(obs, x_prev, x_next, k, j, old_logp, adv, ret)

    # -------------------------------------------------------------------------------------------- imitation

    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """The denoising loss of the fine-tuned denoiser on demos, at every step k or only the K' it runs
        (``il.denoising_steps``)."""
        return self.policy.denoising_loss(obs, chunks, k_max=self.il_k_max)

    # -------------------------------------------------------------------------------------------- state

    def _modules(self) -> dict[str, nn.Module]:
        return {"actor_base": self.actor_base, "critic": self.critic}
