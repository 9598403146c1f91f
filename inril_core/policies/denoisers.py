"""Noise-prediction networks for the diffusion policy.

Every denoiser has the same interface, so `DiffusionPolicy` and the RL code never care which one they hold:
    forward(x: (B, H, A) noisy action chunk, k: (B,) long denoising step, obs: (B, obs_dim)) -> eps_hat (B, H, A)

- `MLPDenoiser`: DPPO's `DiffusionMLP` with `residual_style=True` (the network DPPO fine-tunes on Gym/Robomimic):
  small, fast on CPU, and the architecture the DPPO hyperparameters were tuned for.
- `UNet1DDenoiser`: Diffusion Policy's `ConditionalUnet1D` (temporal convolutions over the chunk, FiLM conditioning):
  the stronger imitation model for longer chunks (ResiP / FurnitureBench bases).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sin/cos features of the integer step k, so nearby steps get similar embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"time embedding dim must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        # freq_i = 10000^(-i / (half - 1)), i = 0..half-1;  emb = [sin(k * freq), cos(k * freq)]
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=k.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        angles = k.float()[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


def _time_mlp(dim: int, hidden_mult: int) -> nn.Sequential:
    """Sinusoidal features followed by a small learned MLP, as in DPPO and Diffusion Policy."""
    return nn.Sequential(
        SinusoidalTimeEmbedding(dim),
        nn.Linear(dim, dim * hidden_mult),
        nn.Mish(),
        nn.Linear(dim * hidden_mult, dim),
    )


def _check_inputs(
    x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor, horizon: int, act_dim: int, obs_dim: int
) -> None:
    """Shape errors inside a deep network are unreadable; name the expected shapes up front instead."""
    batch = x.shape[0]
    if x.shape != (batch, horizon, act_dim):
        raise ValueError(f"x must have shape (B, {horizon}, {act_dim}), got {tuple(x.shape)}")
    if k.shape != (batch,):
        raise ValueError(f"k must have shape ({batch},), got {tuple(k.shape)}")
    if obs.shape != (batch, obs_dim):
        raise ValueError(f"obs must have shape ({batch}, {obs_dim}), got {tuple(obs.shape)}")


# ----------------------------------------------------------------------------------------------------------------
# MLP (DPPO DiffusionMLP, residual style)
# ----------------------------------------------------------------------------------------------------------------


class _ResidualBlock(nn.Module):
    """Pre-activation residual block x + W2 act(norm(W1 act(norm(x)))), DPPO's TwoLayerPreActivationResNetLinear."""

    def __init__(self, dim: int, layernorm: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6) if layernorm else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6) if layernorm else nn.Identity()
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)
        self.act = nn.Mish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(self.act(self.norm1(x)))
        h = self.linear2(self.act(self.norm2(h)))
        return x + h


class MLPDenoiser(nn.Module):
    """DPPO's residual DiffusionMLP: [flattened chunk, time embedding, obs] -> Linear -> residual blocks -> Linear.

    `hidden_dims` follows DPPO's config convention: (d, d, d) is one input layer plus one two-layer residual block,
    (d,)*7 is three blocks. All entries must be equal (the residual additions need one width).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        horizon: int,
        hidden_dims: Sequence[int] = (512, 512, 512),
        time_dim: int = 16,
        layernorm: bool = False,
    ) -> None:
        super().__init__()
        hidden_dims = tuple(hidden_dims)
        if not hidden_dims or len(hidden_dims) % 2 == 0 or len(set(hidden_dims)) != 1:
            raise ValueError(
                "hidden_dims must be an odd number (1 + 2 * blocks) of equal widths, e.g. (512, 512, 512), "
                f"got {hidden_dims}"
            )
        self.obs_dim, self.act_dim, self.horizon = obs_dim, act_dim, horizon
        width = hidden_dims[0]
        self.time_embedding = _time_mlp(time_dim, hidden_mult=2)
        self.input = nn.Linear(horizon * act_dim + time_dim + obs_dim, width)
        self.blocks = nn.ModuleList(_ResidualBlock(width, layernorm) for _ in range(len(hidden_dims) // 2))
        self.output = nn.Linear(width, horizon * act_dim)

    def forward(self, x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        _check_inputs(x, k, obs, self.horizon, self.act_dim, self.obs_dim)
        h = self.input(torch.cat((x.flatten(1), self.time_embedding(k), obs), dim=-1))
        for block in self.blocks:
            h = block(h)
        return self.output(h).view_as(x)


# ----------------------------------------------------------------------------------------------------------------
# 1D temporal UNet (Diffusion Policy ConditionalUnet1D)
# ----------------------------------------------------------------------------------------------------------------


class _ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length-preserving."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )


class _ConditionalResidualBlock(nn.Module):
    """Two conv blocks with FiLM between them: h = scale(c) * conv1(x) + bias(c); out = conv2(h) + skip(x)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.conv1 = _ConvBlock(in_channels, out_channels, kernel_size, n_groups)
        self.conv2 = _ConvBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)  # each (B, C, 1): one FiLM per channel
        h = scale * self.conv1(x) + bias
        return self.conv2(h) + self.skip(x)


class UNet1DDenoiser(nn.Module):
    """Diffusion Policy's conditional 1D UNet over the action chunk (time axis = horizon, channels = action dims).

    Level i has two residual blocks at `channels[i]`; every level but the last halves the length (stride-2 conv) and
    the decoder mirrors it with skip connections. The condition [time embedding, obs] modulates every block by FiLM.
    Short or odd horizons are padded (edge-replicated, so the convolutions see plausible actions rather than an
    artificial step) to a multiple of 2^(levels - 1) and cropped back.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        horizon: int,
        channels: Sequence[int] = (64, 128, 256),
        time_dim: int = 256,
        kernel_size: int = 5,
        n_groups: int = 8,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if not channels or any(c % n_groups for c in channels):
            raise ValueError(f"channels must be non-empty and each divisible by n_groups={n_groups}, got {channels}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to preserve the length, got {kernel_size}")
        self.obs_dim, self.act_dim, self.horizon = obs_dim, act_dim, horizon
        self.length_multiple = 2 ** (len(channels) - 1)
        cond_dim = time_dim + obs_dim

        def block(cin: int, cout: int) -> _ConditionalResidualBlock:
            return _ConditionalResidualBlock(cin, cout, cond_dim, kernel_size, n_groups)

        self.time_embedding = _time_mlp(time_dim, hidden_mult=4)
        widths = (act_dim,) + channels
        self.down = nn.ModuleList()
        for level, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            is_last = level == len(channels) - 1
            self.down.append(
                nn.ModuleList(
                    [block(cin, cout), block(cout, cout), nn.Identity() if is_last else nn.Conv1d(cout, cout, 3, 2, 1)]
                )
            )
        self.mid = nn.ModuleList([block(channels[-1], channels[-1]), block(channels[-1], channels[-1])])
        self.up = nn.ModuleList()
        for cin, cout in reversed(list(zip(channels[:-1], channels[1:]))):
            # input = upsampled deeper features (cout) concatenated with the skip from the encoder level (cout)
            upsample = nn.ConvTranspose1d(cin, cin, 4, 2, 1)
            self.up.append(nn.ModuleList([block(2 * cout, cin), block(cin, cin), upsample]))
        self.final = nn.Sequential(
            _ConvBlock(channels[0], channels[0], kernel_size, n_groups), nn.Conv1d(channels[0], act_dim, 1)
        )

    def forward(self, x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        _check_inputs(x, k, obs, self.horizon, self.act_dim, self.obs_dim)
        cond = torch.cat((self.time_embedding(k), obs), dim=-1)
        pad = -self.horizon % self.length_multiple
        h = x.transpose(1, 2)  # (B, A, H): Conv1d convolves over the last axis, the chunk's time
        if pad:
            h = F.pad(h, (0, pad), mode="replicate")

        skips = []
        for block1, block2, downsample in self.down:
            h = block2(block1(h, cond), cond)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, cond)
        # Each decoder level takes the encoder features of matching length; the full-resolution skips[0] goes
        # unused (as in Diffusion Policy), the final conv block works on the upsampled features instead.
        for (block1, block2, upsample), skip in zip(self.up, reversed(skips[1:])):
            h = block2(block1(torch.cat((h, skip), dim=1), cond), cond)
            h = upsample(h)
        h = self.final(h)
        return h[..., : self.horizon].transpose(1, 2)


_DENOISERS: dict[str, type[nn.Module]] = {"mlp": MLPDenoiser, "unet": UNet1DDenoiser}


def build_denoiser(cfg: Mapping[str, Any], obs_dim: int, act_dim: int, horizon: int) -> nn.Module:
    """Builds a denoiser from a config mapping {type: mlp|unet, ...constructor kwargs} (e.g. an OmegaConf node)."""
    params = dict(cfg)
    kind = params.pop("type", None)
    if kind not in _DENOISERS:
        raise ValueError(f"unknown denoiser type {kind!r}; valid types: {sorted(_DENOISERS)}")
    return _DENOISERS[kind](obs_dim=obs_dim, act_dim=act_dim, horizon=horizon, **params)
