"""Data-parallel learning over several processes (GPUs, or CPU processes on gloo) with torch.distributed.

Launched by torchrun (``torchrun --nproc-per-node N -m inril_core.cli train ...``), every rank runs the same
fine-tuning loop on its own environments (its own seeds) and takes the same optimiser steps; DDP averages the
gradients of each step over the ranks, so the ranks keep identical weights while each contributes its data.

Our algorithms take several kinds of optimiser steps (actor, critics, IL injections), each on its own parameters and
each loss assembled from several networks (BC-reg adds a demo loss to the RL loss). So instead of wrapping one model,
``GradSync`` wraps the parameters of one kind of step in a DistributedDataParallel module whose forward evaluates
the step's loss: the loss is computed *through* DDP, and its backward all-reduces exactly those gradients (in
buckets, overlapped with the backward pass, as DDP does for any model). Without a process group, ``GradSync`` just
evaluates the loss: a single-process run pays nothing.

What must agree across ranks so that every rank takes the same steps (else the collectives deadlock): env-step
counts (``sum_across_ranks``), PPO's early stop on the approximate KL (``mean_across_ranks``), and the iteration
count; evaluation, logging and checkpoints happen on rank 0 only.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def active() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def init_from_environment(device: str) -> str:
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment): NCCL on CUDA, gloo on CPU.
    Returns the device this rank uses (cuda:<LOCAL_RANK> for CUDA). A no-op for a plain single-process run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return device


def shutdown() -> None:
    """Leave the process group; the barrier first, so no rank tears its connections down while another still
    talks to it (gloo aborts the process that loses its peer)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_across_ranks(value: float) -> float:
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


def mean_across_ranks(value: float) -> float:
    return sum_across_ranks(value) / world_size()


class _Loss(nn.Module):
    """A module that owns (refers to) the parameters of one kind of step and whose forward evaluates its loss."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        super().__init__()
        self.params = nn.ParameterList(params)  # the same Parameter objects: DDP hooks the real weights

    def forward(self, loss: Callable[[], torch.Tensor]) -> torch.Tensor:
        return loss()


class GradSync:
    """``sync(loss_fn)`` evaluates ``loss_fn()``; in a process group, through DDP over ``params``, so that the
    following ``backward()`` leaves the gradient averaged over the ranks in every one of them."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        params = [p for p in params if p.requires_grad]
        # find_unused_parameters: a critic-only step leaves the actor's parameters without gradient
        self.ddp = (DistributedDataParallel(_Loss(params), find_unused_parameters=True, broadcast_buffers=False)
                    if active() and params else None)

    def __call__(self, loss: Callable[[], torch.Tensor]) -> torch.Tensor:
        return self.ddp(loss) if self.ddp is not None else loss()
