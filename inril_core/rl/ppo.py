"""PPO pieces shared by the PPO-family algorithms: GAE and the clipped surrogate (Schulman et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


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
        if train_actor and kls and sum(kls) / len(kls) > target_kl:
            break
