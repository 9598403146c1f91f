"""Plots people would rather look at than read: a run's learning curve, and a benchmark's mean + 95% CI bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inril_core.run_log import read_csv  # noqa: E402


def plot_run(run_dir: str | Path) -> Path:
    """Success (with the Wilson 95% interval of each evaluation) vs env steps, and the held-out IL loss."""
    run_dir = Path(run_dir)
    evals = read_csv(run_dir / "evals.csv")
    steps = [r["env_steps"] for r in evals]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax.plot(steps, [r["success_rate"] for r in evals], marker="o")
    ax.fill_between(steps, [r["ci_low"] for r in evals], [r["ci_high"] for r in evals], alpha=0.2)
    ax.set(xlabel="env steps", ylabel="success rate (DDIM eta=0)", ylim=(-0.02, 1.02), title=run_dir.name)
    ax2.plot(steps, [r["heldout_il_loss"] for r in evals], marker="o", color="tab:orange")
    ax2.set(xlabel="env steps", ylabel="IL loss on held-out demos", title="imitation loss")
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
