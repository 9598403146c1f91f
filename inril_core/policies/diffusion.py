"""DDPM/DDIM diffusion policy over action chunks (epsilon prediction), following DPPO's `DiffusionModel`.

Notation (k = 0..T-1 indexes the training schedule; x_0 is the clean normalised action chunk, x_k its noisy version):
    beta_k                         noise added at step k
    alpha_k    = 1 - beta_k
    abar_k     = prod_{j<=k} alpha_j              (alphas_cumprod; abar_{-1} = 1 is alphas_cumprod_prev[0])
    forward:     q(x_k | x_0) = N(sqrt(abar_k) x_0, (1 - abar_k) I),
                 i.e. x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps
    posterior:   q(x_{k-1} | x_k, x_0) = N(c0_k x_0 + ck_k x_k, var_k)   with
                   c0_k  = beta_k sqrt(abar_{k-1}) / (1 - abar_k)
                   ck_k  = (1 - abar_{k-1}) sqrt(alpha_k) / (1 - abar_k)
                   var_k = beta_k (1 - abar_{k-1}) / (1 - abar_k)    (= 0 at k = 0: the last step is deterministic)
    x0 from eps: x_0 = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k)

Everything lives in the normalised space of `MinMaxNormalizer` ([-1, 1]), which is why predicted x_0 is clipped there.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def cosine_beta_schedule(n_steps: int, s: float = 0.008) -> torch.Tensor:
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021), as used by DPPO; float32 betas of shape (n_steps,).

    abar(t) = f(t) / f(0),  f(t) = cos(((t / T) + s) / (1 + s) * pi / 2)^2,  t = 0..T
    beta_k  = 1 - abar(k + 1) / abar(k), clipped to <= 0.999 so the last step cannot destroy the signal with a beta
    of exactly 1 (which would make 1/sqrt(alpha) infinite).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    t = torch.arange(n_steps + 1, dtype=torch.float64)
    f = torch.cos(((t / n_steps) + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(0.0, 0.999).float()


class NoiseSchedule(nn.Module):
    """The fixed DDPM quantities for a T-step cosine schedule, as (non-persistent) buffers.

    Buffers so that `.to(device)` moves them with the network; non-persistent because they are a pure function of
    T, so checkpoints hold only learned weights. Computed in float64 and stored as float32.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef_x0: torch.Tensor
    posterior_mean_coef_xk: torch.Tensor

    def __init__(self, n_steps: int) -> None:
        super().__init__()
        self.n_steps = n_steps
        betas = cosine_beta_schedule(n_steps).double()
        alphas = 1 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat((torch.ones(1, dtype=torch.float64), abar[:-1]))
        # var_k = beta_k (1 - abar_{k-1}) / (1 - abar_k)
        variance = betas * (1 - abar_prev) / (1 - abar)
        buffers = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "posterior_variance": variance,
            # log var_k, with the exact 0 at k = 0 clamped so log-likelihood code never sees -inf (DPPO: min 1e-20)
            "posterior_log_variance_clipped": torch.log(variance.clamp(min=1e-20)),
            # c0_k = beta_k sqrt(abar_{k-1}) / (1 - abar_k);  ck_k = (1 - abar_{k-1}) sqrt(alpha_k) / (1 - abar_k)
            "posterior_mean_coef_x0": betas * abar_prev.sqrt() / (1 - abar),
            "posterior_mean_coef_xk": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)


def _per_sample(values: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """values[k] shaped (B, 1, 1) so it broadcasts over an action chunk (B, H, A)."""
    return values[k].view(-1, 1, 1)


class DiffusionPolicy(nn.Module):
    """An epsilon-prediction diffusion model of p(action chunk | obs) with DDPM training and DDPM/DDIM sampling.

    `denoiser(x_k, k, obs) -> eps_hat` is any network with the `denoisers` interface. Inputs and outputs are
    normalised: obs (B, obs_dim) and action chunks (B, horizon, act_dim) in [-1, 1].
    """

    def __init__(self, denoiser: nn.Module, obs_dim: int, act_dim: int, horizon: int, n_steps: int = 20) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.obs_dim, self.act_dim, self.horizon, self.n_steps = obs_dim, act_dim, horizon, n_steps
        self.schedule = NoiseSchedule(n_steps)

    # ------------------------------------------------------------------------------------------------ training

    def denoising_loss(self, obs: torch.Tensor, actions: torch.Tensor, k_max: int | None = None,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
        """Epsilon-prediction MSE  E_{k, eps} || eps - eps_theta(sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps, k, obs) ||^2.

        k ~ U{0, ..., k_max - 1}; `k_max` < T restricts training to the low-noise steps (those DPPO fine-tunes).
        `weights` (B,) weigh each sample's MSE (advantage-weighted regression); None is the plain mean.
        """
        self._check_chunk(actions, obs)
        k_max = self.n_steps if k_max is None else k_max
        if not 1 <= k_max <= self.n_steps:
            raise ValueError(f"k_max must be in [1, {self.n_steps}], got {k_max}")
        k = torch.randint(0, k_max, (actions.shape[0],), device=actions.device)
        eps = torch.randn_like(actions)
        abar = _per_sample(self.schedule.alphas_cumprod, k)
        x_k = abar.sqrt() * actions + (1 - abar).sqrt() * eps
        if weights is None:
            return nn.functional.mse_loss(self.denoiser(x_k, k, obs), eps)
        if weights.shape != actions.shape[:1]:
            raise ValueError(f"weights must have shape ({actions.shape[0]},), one per chunk, got {tuple(weights.shape)}")
        per_sample = (self.denoiser(x_k, k, obs) - eps).pow(2).flatten(1).mean(1)
        return (weights * per_sample).mean()

    # ------------------------------------------------------------------------------------------------ DDPM

    def reverse_step(
        self, x_k: torch.Tensor, k: torch.Tensor, obs: torch.Tensor, denoiser: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of p_theta(x_{k-1} | x_k, obs) = q(x_{k-1} | x_k, x0_hat), both of shape (B, H, A).

        x0_hat comes from the predicted noise and is clipped to [-1, 1] (the data range), as in DPPO. std is the
        exact posterior std, 0 at k = 0; stochastic callers (RL exploration, log-probs) floor it themselves.
        `denoiser` overrides self.denoiser, e.g. DPPO's frozen base for the early steps.
        """
        self._check_chunk(x_k, obs)
        net = self.denoiser if denoiser is None else denoiser
        s = self.schedule
        eps_hat = net(x_k, k, obs)
        # x0_hat = (x_k - sqrt(1 - abar_k) eps_hat) / sqrt(abar_k), clipped to the data range
        abar = _per_sample(s.alphas_cumprod, k)
        x0_hat = ((x_k - (1 - abar).sqrt() * eps_hat) / abar.sqrt()).clamp(-1.0, 1.0)
        # mean = c0_k x0_hat + ck_k x_k;  std = sqrt(var_k)
        mean = _per_sample(s.posterior_mean_coef_x0, k) * x0_hat + _per_sample(s.posterior_mean_coef_xk, k) * x_k
        std = _per_sample(s.posterior_variance, k).sqrt().expand_as(mean)
        return mean, std

    @torch.no_grad()
    def sample_ddpm(
        self, obs: torch.Tensor, generator: torch.Generator | None = None, min_std: float = 0.0
    ) -> torch.Tensor:
        """Ancestral sampling x_{k-1} = mean + max(std, min_std) * z over all T steps; output clamped to [-1, 1]."""
        x = self._noise(self._chunk_shape(obs), obs, generator)  # x_T ~ N(0, I)
        for step in reversed(range(self.n_steps)):
            k = torch.full((obs.shape[0],), step, dtype=torch.long, device=obs.device)
            mean, std = self.reverse_step(x, k, obs)
            x = mean + std.clamp(min=min_std) * self._noise(x.shape, x, generator)
        return x.clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------------ DDIM

    def ddim_steps(self, n_steps: int | None = None) -> list[int]:
        """The training-schedule indices DDIM visits, in order (descending).

        All T steps by default; otherwise `n_steps` evenly strided ones with "trailing" spacing (Lin et al. 2024)
        so the first step is always k = T-1, the noise level x_T was drawn at (e.g. T=20, 5 steps: 19, 15, 11, 7, 3).
        """
        n = self.n_steps if n_steps is None else n_steps
        if not 1 <= n <= self.n_steps:
            raise ValueError(f"DDIM n_steps must be in [1, {self.n_steps}], got {n}")
        return [round(self.n_steps - i * self.n_steps / n) - 1 for i in range(n)]

    @torch.no_grad()
    def sample_ddim(
        self,
        obs: torch.Tensor,
        eta: float = 0.0,
        n_steps: int | None = None,
        denoiser_for_step: Callable[[int], nn.Module] | None = None,
        generator: torch.Generator | None = None,
        from_noise: bool = False,
    ) -> torch.Tensor:
        """DDIM sampling (Song et al. 2021) over `ddim_steps(n_steps)`; returns (B, H, A) clamped to [-1, 1].

        eta = 0 is a deterministic function of obs: it also starts from x_T = 0 (the prior's mode) instead of a random
        draw, so `generator` is unused; this is the policy's deterministic evaluation mode. `from_noise` starts eta = 0
        from a random x_T instead: distinct, low-noise samples (IDQL's evaluation candidates). eta = 1 with all T steps
        has the DDPM posterior variance. `denoiser_for_step(k)` picks the network for training-schedule index k
        (DPPO: frozen base for the early steps, fine-tuned copy for the last K').
        """
        s = self.schedule
        shape = self._chunk_shape(obs)
        x = obs.new_zeros(shape) if eta == 0 and not from_noise else self._noise(shape, obs, generator)
        steps = self.ddim_steps(n_steps)
        for step, prev in zip(steps, steps[1:] + [-1]):
            net = self.denoiser if denoiser_for_step is None else denoiser_for_step(step)
            k = torch.full((obs.shape[0],), step, dtype=torch.long, device=obs.device)
            eps_hat = net(x, k, obs)
            abar = s.alphas_cumprod[step]
            abar_prev = s.alphas_cumprod[prev] if prev >= 0 else torch.ones_like(abar)
            # x0_hat = (x_k - sqrt(1 - abar) eps_hat) / sqrt(abar), clipped; eps re-derived from the clipped x0_hat so
            # that the update stays consistent with it:  eps = (x_k - sqrt(abar) x0_hat) / sqrt(1 - abar)
            x0_hat = ((x - (1 - abar).sqrt() * eps_hat) / abar.sqrt()).clamp(-1.0, 1.0)
            eps_hat = (x - abar.sqrt() * x0_hat) / (1 - abar).sqrt()
            # sigma = eta sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
            sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
            # x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z
            x = abar_prev.sqrt() * x0_hat + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
            if eta != 0:
                x = x + sigma * self._noise(x.shape, x, generator)
        return x.clamp(-1.0, 1.0)

    # ------------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _noise(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal noise on `like`'s device and dtype (the generator must live on that device)."""
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def _chunk_shape(self, obs: torch.Tensor) -> tuple[int, int, int]:
        """(B, H, A) for a batch of observations, after checking obs is (B, obs_dim)."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (B, {self.obs_dim}), got {tuple(obs.shape)}")
        return (obs.shape[0], self.horizon, self.act_dim)

    def _check_chunk(self, chunk: torch.Tensor, obs: torch.Tensor) -> None:
        expected = self._chunk_shape(obs)
        if tuple(chunk.shape) != expected:
            raise ValueError(f"action chunk must have shape {expected} (B, horizon, act_dim), got {tuple(chunk.shape)}")
