"""PPO pieces shared by the PPO-family algorithms (DPPO, residual PPO): GAE, the clipped surrogate (Schulman et al.
2017), the epoch loop and the actor-critic update."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from inril_core.agent import NonFiniteError
from inril_core.distributed import mean_across_ranks, sum_across_ranks
from inril_core.rl.base import AuxLoss, RLAlgorithm, Rollout


def gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_values: torch.Tensor,
    gamma: float, lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a (S, E) rollout.

    delta_t = r_t + gamma V(s_{t+1}) (1 - done_t) - V(s_t);  A_t = delta_t + gamma lam (1 - done_t) A_{t+1}.
    `done_t` marks an episode that ended at step t (its truncation bootstrap, if any, is already in r_t), so no
    value flows across episode boundaries. Returns (advantages, returns = advantages + values).
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(steps)):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_adv = delta + gamma * lam * not_done * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


def clipped_surrogate(
    log_ratio: torch.Tensor, advantages: torch.Tensor, clip: torch.Tensor | float
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = E[max(-A r, -A clip(r, 1 - eps, 1 + eps))] with r = exp(log_ratio); eps may differ per sample.

    Returns the loss (to minimise) and diagnostics: fraction of clipped samples and the approximate KL
    E[(r - 1) - log r] (Schulman's low-variance estimator), used for early stopping.
    """
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = torch.max(unclipped, clipped).mean()
    with torch.no_grad():
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean().item()
        approx_kl = ((ratio - 1.0) - log_ratio).mean().item()
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl, "ratio_mean": ratio.mean().item()}


def minibatch_indices(n: int, size: int, device: torch.device | str,
                      generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """A random permutation of range(n) cut into minibatches of ``size``.

    A tail smaller than half a minibatch is dropped, but never the whole batch: a live update on a few short
    episodes (fewer samples than half a minibatch) still takes its steps on all of them.
    """
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, max(1, n - size // 2), size):
        yield order[start:start + size]


def epochs_of_minibatch_steps(n: int, epochs: int, minibatch_size: int, target_kl: float, train_actor: bool,
                              device: torch.device | str, step: Callable[[torch.Tensor], dict]) -> Iterator[dict]:
    """PPO's update loop: ``epochs`` passes of minibatch steps over n samples, ``step(indices) -> metrics`` taking
    one optimiser step each; stops after an epoch whose mean approximate KL exceeds ``target_kl`` (the policy moved
    far enough this iteration; more epochs would overshoot)."""
    for _ in range(epochs):
        kls = []
        for idx in minibatch_indices(n, minibatch_size, device):
            metrics = step(idx)
            kls.append(metrics["approx_kl"])
            yield metrics
        if train_actor and kls and mean_across_ranks(sum(kls) / len(kls)) > target_kl:  # all ranks stop together
            break


class ActorCriticPPO(RLAlgorithm):
    """What DPPO and residual PPO share: a V(obs) critic, PPO epochs over one on-policy rollout, and the optimiser
    step. A subclass builds ``actor_opt``, ``critic_opt``, ``critic`` and defines ``prepare(rollout) -> batch`` (with
    ``len`` and ``index``) and ``loss(batch) -> (policy loss, value loss, metrics)``."""

    on_policy = True
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    critic: nn.Module

    @torch.no_grad()
    def values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def has_policy_signal(self, data: Rollout) -> bool:
        """False for a rollout without one nonzero env reward (a sparse-reward task without a success in it, on
        every rank): every return in it is zero, so GAE's advantages are only the critic's errors, and the
        advantage normalisation scales that noise to unit size. Measured on Transport (BC 0.22, 16 episodes per
        iteration, rollouts mostly without a success): DPPO IN-RIL stepping on such rollouts went from 0.22 to
        0.00 in 115k env steps, its demo loss from 0.06 to 0.24. (A constant nonzero reward is not skipped:
        episode ends then still make returns differ.)"""
        rewarded = bool((data.rewards != 0).any())
        return sum_across_ranks(float(rewarded)) > 0  # the ranks' actor steps must stay in lockstep

    def rl_steps(self, data: Rollout, train_actor: bool, aux_actor_loss: AuxLoss | None = None) -> Iterator[dict]:
        """PPO epochs of minibatch steps over one rollout (``update`` each), early-stopped by ``rl.target_kl``."""
        batch = self.prepare(data)
        c = self.cfg
        yield from epochs_of_minibatch_steps(
            len(batch), c.update_epochs, c.minibatch_size, c.target_kl, train_actor, batch.obs.device,
            lambda idx: self.update(batch.index(idx), aux_actor_loss if train_actor else None, train_actor))

    def update(self, batch, aux_actor_loss: AuxLoss | None = None, train_actor: bool = True) -> dict:
        """One optimiser step on one minibatch: value loss always, policy loss (+ ``aux_actor_loss()``, e.g. BC-reg)
        when ``train_actor``; the loss is evaluated through the ranks' gradient averaging (inril_core.distributed).
        A non-finite loss raises before any weight changes; the RL actor gradient is recorded before clipping."""
        parts: dict = {}

        def total_loss() -> torch.Tensor:
            policy_loss, value_loss, parts["metrics"] = self.loss(batch)
            parts["policy"], parts["value"] = policy_loss, value_loss
            total = self.cfg.vf_coef * value_loss
            if train_actor:
                total = total + policy_loss + (aux_actor_loss() if aux_actor_loss is not None else 0.0)
            return total

        total = self.synced("rl", lambda: [*self.actor_parameters(), *self.critic.parameters()])(total_loss)
        policy_loss, value_loss, metrics = parts["policy"], parts["value"], parts["metrics"]
        if not torch.isfinite(total):
            raise NonFiniteError(f"{self.name} loss is {total.item()} (policy {policy_loss.item()}, value "
                                 f"{value_loss.item()}): lower rl.actor_lr / rl.critic_lr; last checkpoint kept")
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        total.backward()
        if train_actor:
            self.record_actor_grad()
            metrics["actor_grad_norm"] = nn.utils.clip_grad_norm_(self.actor_parameters(),
                                                                  self.cfg.max_grad_norm).item()
            self.actor_opt.step()
        nn.utils.clip_grad_norm_(self.critic.parameters(), self.cfg.max_grad_norm)
        self.critic_opt.step()
        return metrics

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}
