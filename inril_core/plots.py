"""Plots people would rather look at than read: a run's learning curve, and a benchmark's mean + 95% CI bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

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
               path: Path, ylabel: str = "success rate", unit_interval: bool = True) -> Path:
    """One line + shaded band per method: {method: (steps, mean, low, high)}."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, (steps, mean, low, high) in curves.items():
        ax.plot(steps, mean, label=method, marker=".")
        ax.fill_between(steps, low, high, alpha=0.15)
    ax.set(xlabel="env steps", ylabel=ylabel, title=title)
    if unit_interval:
        ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_il_and_rho(pretrain_history: list[dict] | None, evals: dict[str, list[list[dict]]],
                    injections: dict[str, list[list[dict]]], path: Path, title: str) -> Path:
    """The paper's two unmeasured claims, measured: (1) the IL loss on held-out demos, through BC pre-training (it
    must have converged before fine-tuning starts, reviewer 2's point) and then during fine-tuning per method
    (the "double descent" claim), mean over seeds; (2) rho(t) = cos(g_IL, g_RL) at every injection, mean over seeds
    per iteration, for the methods that inject."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4), gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
    if pretrain_history:
        axes[0].plot([h["heldout_loss"] for h in pretrain_history], color="tab:gray")
        axes[0].set(yscale="log", xlabel="BC epoch", ylabel="denoising loss, held-out demos", title="pre-training")
    else:
        axes[0].set_axis_off()
    for method, runs in evals.items():
        n = min(len(r) for r in runs)
        steps = [np.mean([r[i]["env_steps"] for r in runs]) for i in range(n)]
        axes[1].plot(steps, [np.nanmean([r[i]["heldout_il_loss"] for r in runs]) for i in range(n)], marker=".",
                     label=method)
    axes[1].set(xlabel="env steps", ylabel="IL loss, held-out demos", title=f"{title}: imitation during fine-tuning")
    axes[1].legend(fontsize=7, ncol=2)
    for method, runs in injections.items():
        by_iteration: dict[int, list[tuple[float, float]]] = {}
        for rows in runs:
            for r in rows:
                if not np.isnan(r["rho"]):
                    by_iteration.setdefault(int(r["iteration"]), []).append((r["env_steps"], r["rho"]))
        if by_iteration:
            its = sorted(by_iteration)
            axes[2].plot([np.mean([p[0] for p in by_iteration[i]]) for i in its],
                         [np.mean([p[1] for p in by_iteration[i]]) for i in its], label=method, lw=1)
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].set(xlabel="env steps", ylabel="rho = cos(g_IL, g_RL)", title="IL/RL gradient alignment rho(t)")
    if axes[2].lines[1:]:
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
