"""Plots people would rather look at than read: a run's learning curve, and a benchmark's mean + 95% CI bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inril_core.run_log import read_csv  # noqa: E402


def plot_run(run_dir: str | Path) -> Path:
    """Success (Wilson 95% interval per evaluation), held-out IL loss and, for IN-RIL, rho(t) vs env steps."""
    run_dir = Path(run_dir)
    evals = read_csv(run_dir / "evals.csv")
    steps = [r["env_steps"] for r in evals]
    injections = read_csv(run_dir / "injections.csv") if (run_dir / "injections.csv").exists() else []
    fig, axes = plt.subplots(1, 3 if injections else 2, figsize=(15 if injections else 10, 3.5))
    ax, ax2 = axes[0], axes[1]
    ax.plot(steps, [r["success_rate"] for r in evals], marker="o")
    ax.fill_between(steps, [r["ci_low"] for r in evals], [r["ci_high"] for r in evals], alpha=0.2)
    ax.set(xlabel="env steps", ylabel="success rate (DDIM eta=0)", ylim=(-0.02, 1.02), title=run_dir.name)
    ax2.plot(steps, [r["heldout_il_loss"] for r in evals], marker="o", color="tab:orange")
    ax2.set(xlabel="env steps", ylabel="IL loss on held-out demos", title="imitation loss")
    if injections:
        ax3 = axes[2]
        ax3.scatter([r["rl_step"] for r in injections], [r["rho"] for r in injections], s=4, alpha=0.5)
        ax3.axhline(0.0, color="grey", lw=0.8)
        ax3.set(xlabel="RL optimiser steps", ylabel="rho = cos(g_IL, g_RL)", title="IL/RL gradient alignment")
    fig.tight_layout()
    path = run_dir / "learning_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_bands(curves: dict[str, tuple[list[float], list[float], list[float], list[float]]], title: str,
               path: Path, ylabel: str = "success rate") -> Path:
    """One line + shaded band per method: {method: (steps, mean, low, high)}."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, (steps, mean, low, high) in curves.items():
        ax.plot(steps, mean, label=method, marker=".")
        ax.fill_between(steps, low, high, alpha=0.2)
    ax.set(xlabel="env steps", ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
