"""Gradient separation between the IL and RL objectives (IN-RIL §2.1, PCGrad-style gradient surgery).

The IL gradient is projected off the most recent RL gradient when the two conflict (negative cosine), so an
imitation step never undoes the direction RL just moved in; RL stays the primary objective. Gradients are flattened
over all trained parameters (a global projection, not per layer) — paper-notes §2.1 / §9.3, our choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

EPS = 1e-12


def flat_grad(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The parameters' `.grad` concatenated into one vector (zeros for parameters that got no gradient)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def assign_flat_grad(params: Iterable[torch.nn.Parameter], flat: torch.Tensor) -> None:
    """Write a flat gradient vector back into the parameters' `.grad`, so any optimiser can apply it."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat gradient has {flat.numel()} entries but the parameters have {offset}")


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two flat vectors; 0 when either is (numerically) zero."""
    denom = a.norm() * b.norm()
    return float(a.dot(b) / denom) if denom > EPS else 0.0


@dataclass
class Projection:
    grad: torch.Tensor
    cosine: float      # rho: cosine(IL gradient, RL gradient) before projection
    projected: bool    # whether the conflicting component was removed


def pcgrad_project(g_il: torch.Tensor, g_rl: torch.Tensor) -> Projection:
    """g_il <- g_il - (g_il . g_rl / |g_rl|^2) g_rl  when  g_il . g_rl < 0; unchanged otherwise.

    The result is orthogonal to g_rl when the projection fires, and its norm never exceeds |g_il|.
    """
    rho = cosine(g_il, g_rl)
    dot = g_il.dot(g_rl)
    if dot >= 0 or g_rl.norm() <= EPS:
        return Projection(g_il, rho, False)
    return Projection(g_il - dot / g_rl.dot(g_rl) * g_rl, rho, True)
