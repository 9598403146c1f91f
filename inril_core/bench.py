"""`inril bench sample-efficiency`: IN-RIL vs RL-only vs BC-reg from one pre-trained policy, several seeds.

Every (method, seed) run lives in its own run directory; a finished run (report.json present) is skipped and an
interrupted one resumes from its newest checkpoint, so a long benchmark can be stopped and continued. The results
directory gets every evaluation as CSV, the learning curves with mean and 95% CI bands, and summary.json.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import numpy as np
from omegaconf import DictConfig

from inril_core.evaluate import mean_ci95
from inril_core.plots import plot_bands
from inril_core.run_log import read_csv

METHODS = ("in-ril", "rl-only", "bc-reg")


def run_dirs(runs_root: Path, methods, seeds) -> dict[tuple[str, int], Path]:
    return {(m, s): runs_root / f"{m}-s{s}" for m in methods for s in seeds}


def run_all(make_cfg: Callable[[str, int, Path], DictConfig], runs_root: Path, methods, seeds,
            train: Callable[[DictConfig, bool], dict], echo: Callable[[str], None] = print) -> None:
    for (method, seed), run_dir in run_dirs(runs_root, methods, seeds).items():
        if (run_dir / "report.json").exists():
            echo(f"skip {method} seed {seed}: finished ({run_dir}/report.json)")
            continue
        resume = (run_dir / "checkpoints").exists()
        echo(f"{'resume' if resume else 'start'} {method} seed {seed} -> {run_dir}")
        train(make_cfg(method, seed, run_dir), resume)


def summarise(runs_root: Path, out_dir: Path, methods, seeds, task: str, algo: str, command: str,
              eval_episodes: int, threshold: float | None = None) -> dict:
    """Aggregate the runs' evaluations into all_evals.csv, learning_curves.png and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    evals = {key: read_csv(path / "evals.csv") for key, path in run_dirs(runs_root, methods, seeds).items()}
    with (out_dir / "all_evals.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "iteration", "env_steps", "success_rate", "ci_low", "ci_high",
                         "mean_length", "heldout_il_loss"])
        for (method, seed), rows in evals.items():
            for r in rows:
                writer.writerow([method, seed, r["iteration"], r["env_steps"], r["success_rate"], r["ci_low"],
                                 r["ci_high"], r["mean_length"], r["heldout_il_loss"]])
    curves = {m: _band([evals[(m, s)] for s in seeds]) for m in methods}
    final = {m: [evals[(m, s)][-1]["success_rate"] for s in seeds] for m in methods}
    if threshold is None:
        threshold = float(np.mean(final["rl-only"])) if "rl-only" in final else 0.9
    summary = {
        "task": task, "algo": algo, "seeds": list(seeds),
        "env_steps": int(max(rows[-1]["env_steps"] for rows in evals.values())),
        "threshold": round(threshold, 4),
        "pretrained_success": float(np.mean([rows[0]["success_rate"] for rows in evals.values()])),
        "eval_episodes": eval_episodes,
        "methods": {},
        "command": command,
    }
    for m in methods:
        mean, ci = mean_ci95(final[m])
        reach = [_steps_to(evals[(m, s)], threshold) for s in seeds]
        # mean success over every evaluation after fine-tuning began: sample efficiency without a threshold
        during = [float(np.mean([r["success_rate"] for r in evals[(m, s)] if r["env_steps"] > 0])) for s in seeds]
        during_mean, during_ci = mean_ci95(during)
        summary["methods"][m] = {
            "final_success_mean": round(mean, 4), "final_success_ci95": _unit_interval(ci),
            "final_success_per_seed": final[m],
            "mean_success_during_training": round(during_mean, 4),
            "mean_success_during_training_ci95": _unit_interval(during_ci),
            "steps_to_threshold_mean": None if any(r is None for r in reach) else float(np.mean(reach)),
            "steps_to_threshold_per_seed": reach,
        }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_bands(curves, f"{task} / {algo}: success vs env steps ({len(seeds)} seeds, mean and 95% CI)",
               out_dir / "learning_curves.png")
    return summary


def _unit_interval(ci: tuple[float, float]) -> list[float]:
    """A success-rate interval clipped to [0, 1] (the t-interval over few seeds can overshoot)."""
    return [round(max(0.0, ci[0]), 4), round(min(1.0, ci[1]), 4)]


def _band(runs: list[list[dict]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Mean and t-interval across seeds at each evaluation index (all runs share the eval schedule)."""
    n = min(len(r) for r in runs)
    steps = [float(np.mean([r[i]["env_steps"] for r in runs])) for i in range(n)]
    stats = [mean_ci95([r[i]["success_rate"] for r in runs]) for i in range(n)]
    return (steps, [s[0] for s in stats], [max(0.0, s[1][0]) for s in stats], [min(1.0, s[1][1]) for s in stats])


def _steps_to(rows: list[dict], threshold: float) -> float | None:
    for r in rows:
        if r["success_rate"] >= threshold:
            return float(r["env_steps"])
    return None


def markdown_table(summaries: list[dict]) -> str:
    """The README's results table: one row per (task, method) from benchmark summary.json files."""
    lines = ["| task | pre-trained | method | final success (mean, 95% CI) | per seed | mean success while training "
             "| env steps to threshold |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        for method, m in s["methods"].items():
            lo, hi = m["final_success_ci95"]
            reach = m["steps_to_threshold_mean"]
            lines.append(
                f"| {s['task']} | {s['pretrained_success']:.2f} | {method} | {m['final_success_mean']:.2f} "
                f"[{lo:.2f}, {hi:.2f}] | {', '.join(f'{v:.2f}' for v in m['final_success_per_seed'])} | "
                f"{m['mean_success_during_training']:.2f} | "
                f"{'never' if reach is None else f'{reach:,.0f}'} (threshold {s['threshold']:.2f}) |"
            )
    return "\n".join(lines)
