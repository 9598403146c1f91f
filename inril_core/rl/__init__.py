"""RL algorithms behind one interface (inril_core.rl.base): DPPO, residual PPO, IDQL, and the RLPD baseline.

``config/algos/<name>.yaml`` selects one with ``algo=<name>``; ``build_algorithm`` is the one place that maps the
name to its class, so the training loop, the live learner and the CLI never name an algorithm.
"""
from __future__ import annotations

import importlib

from omegaconf import DictConfig

from inril_core.agent import DiffusionAgent
from inril_core.rl.base import RLAlgorithm

# rl.name -> "module:class", imported on use so a run pays only for the algorithm it runs
ALGORITHMS = {
    "dppo": "inril_core.rl.dppo:DPPO",
    "residual_ppo": "inril_core.rl.residual_ppo:ResidualPPO",
    "idql": "inril_core.rl.idql:IDQL",
    "rlpd": "inril_core.rl.rlpd:RLPD",
}


def algorithm_class(name: str) -> type[RLAlgorithm]:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown rl.name '{name}': choose one of {', '.join(ALGORITHMS)} (config/algos/)")
    module, _, cls = ALGORITHMS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_algorithm(cfg: DictConfig, agent: DiffusionAgent) -> RLAlgorithm:
    """The algorithm of ``cfg.rl.name`` around ``agent`` (already on its device), with the run's separation and
    the denoising steps demo losses use (``il.denoising_steps: finetuned`` = DPPO's K' only)."""
    k_max = cfg.rl.ft_denoising_steps if cfg.il.denoising_steps == "finetuned" else None
    return algorithm_class(cfg.rl.name)(agent, cfg.rl, separation=cfg.separation, il_k_max=k_max)
