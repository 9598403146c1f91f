"""Benchmarks over seeds: every "arm" (a label and the config overrides that make it, e.g. ``idql/in-ril`` =
``algo=idql method=in-ril``) runs from one pre-trained policy for each seed, then the evaluations are summarised.

Every (arm, seed) run lives in its own run directory named by its overrides, so experiments that share an arm
(the m sweep's m=30 is the algorithm table's in-ril row) share its runs. A finished run (report.json present) is
skipped and an interrupted one resumes from its newest checkpoint, so a long benchmark can be stopped and continued.
A summary directory gets every evaluation as CSV, the learning curves (mean and 95% CI over seeds), the IL loss on
held-out demos and rho(t) curves, and summary.json.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from inril_core.evaluate import mean_ci95
from inril_core.plots import plot_bands, plot_il_and_rho
from inril_core.run_log import read_csv

METRIC_NAMES = {"success_rate": "success", "mean_return": "return"}


@dataclass(frozen=True)
class Arm:
    """One row of a benchmark: what it is called and the config overrides that make it."""
    label: str
    overrides: tuple[str, ...]

    def run_name(self, seed: int) -> str:
        """A directory name from the overrides (not the label), so equal arms of two experiments share runs."""
        return f"{overrides_slug(self.overrides)}-s{seed}"


def overrides_slug(overrides) -> str:
    """A directory name that spells out config overrides (``defaults`` for none)."""
    return "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", o).strip("-") for o in overrides) or "defaults"


def method_arms(methods) -> list[Arm]:
    """`inril bench sample-efficiency`'s arms: one per method preset."""
    return [Arm(m, (f"method={m}",)) for m in methods]


def run_dirs(runs_root: Path, arms: list[Arm], seeds) -> dict[tuple[str, int], Path]:
    return {(a.label, s): runs_root / a.run_name(s) for a in arms for s in seeds}


class BenchError(RuntimeError):
    """Runs of a benchmark failed; the message names each one and its log."""


def run_all(runs_root: Path, arms: list[Arm], seeds, base_overrides: list[str], jobs: int = 1,
            echo: Callable[[str], None] = print, env: dict[str, str] | None = None) -> None:
    """Run every (arm, seed) that has not finished, ``jobs`` at a time, each as its own ``inril train`` process
    (one torch thread each: two processes on two cores run twice as many runs per hour as one). A finished run is
    skipped, an interrupted one resumed; each run's output goes to <run dir>/train.log."""
    todo = []
    for arm in arms:
        for seed in seeds:
            run_dir = runs_root / arm.run_name(seed)
            _check_made_with(run_dir, [*base_overrides, *arm.overrides, f"seed={seed}"])
            if (run_dir / "report.json").exists():
                echo(f"skip {arm.label} seed {seed}: finished ({run_dir}/report.json)")
                continue
            if (run_dir / "checkpoints").exists():
                verb, args = "resume", ["--resume", str(run_dir)]
            else:
                verb, args = "start", [*base_overrides, *arm.overrides, f"seed={seed}", f"run.dir={run_dir}"]
            todo.append((f"{arm.label} seed {seed}", run_dir, verb, args))
    running: list[tuple[str, Path, subprocess.Popen, float]] = []
    failed: list[str] = []
    done = 0
    while todo or running:
        while todo and len(running) < jobs:
            name, run_dir, verb, args = todo.pop(0)
            run_dir.mkdir(parents=True, exist_ok=True)
            if verb == "start":
                (run_dir / MADE_WITH).write_text(json.dumps(args[:-1]))  # all but run.dir: the dir may move
            log = (run_dir / "train.log").open("a")
            proc = subprocess.Popen([sys.executable, "-m", "inril_core.cli", "train", *args], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            log.close()
            running.append((name, run_dir, proc, time.monotonic()))
            echo(f"{verb} {name} -> {run_dir}")
        time.sleep(0.2)
        for item in [r for r in running if r[2].poll() is not None]:
            running.remove(item)
            name, run_dir, proc, started = item
            done += 1
            if proc.returncode != 0:
                failed.append(f"{name} (exit {proc.returncode}, see {run_dir}/train.log)")
            echo(f"[{done} done, {len(running) + len(todo)} to go] {name}: "
                 f"{'ok' if proc.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
    if failed:
        raise BenchError("benchmark runs failed: " + "; ".join(failed))


MADE_WITH = "bench_overrides.json"  # the overrides a benchmark started a run with


def _check_made_with(run_dir: Path, overrides: list[str]) -> None:
    """A run directory is reused (skipped when finished, resumed otherwise) only by the overrides that made it: the
    directory is named by the arm's overrides alone, and one run under other benchmark-wide overrides (an ablation's
    ``rl.advantage_beta=3``) would otherwise pass for it. Runs from before the record existed are trusted."""
    path = run_dir / MADE_WITH
    if path.exists() and (made := json.loads(path.read_text())) != overrides:
        raise BenchError(f"{run_dir} was made with overrides {made}, this benchmark asks for {overrides}: move or "
                         "delete that directory, or give the benchmark the overrides it was made with")


def kept_evals(out_dir: Path, labels: list[str], seeds) -> dict[tuple[str, int], list[dict]]:
    """The evaluations of arms ``labels`` from the all_evals.csv an earlier summary left in ``out_dir``.

    Re-running some arms of an experiment (``inril bench paper --arms``) must not need the others' runs again:
    runs/ does not travel with the repository, their published evaluations do."""
    path = out_dir / "all_evals.csv"
    rows = read_csv(path) if path.exists() else []
    kept = {}
    for label in labels:
        for seed in seeds:
            mine = [{k: v for k, v in r.items() if k not in ("method", "seed")}
                    for r in rows if r["method"] == label and r["seed"] == seed]
            if not mine:
                raise BenchError(f"{path} holds no evaluations of {label} seed {seed}, so it cannot be kept: "
                                 "run that arm too (add it to --arms, or leave --arms out)")
            kept[(label, seed)] = mine
    return kept


def summarise(runs_root: Path, out_dir: Path, arms: list[Arm], seeds, task: str, command: str,
              eval_episodes: int, metric: str = "success_rate", threshold: float | None = None,
              baseline: str = "rl-only", title: str | None = None, pretrain_history: list[dict] | None = None,
              kept: dict[tuple[str, int], list[dict]] | None = None) -> dict:
    """Aggregate the runs' evaluations into all_evals.csv, learning_curves.png, il_loss_rho.png and summary.json.

    ``threshold`` (for "env steps to threshold") defaults to the ``baseline`` arm's final mean, the issue's
    definition: how much sooner an arm reaches what the baseline ends with. ``kept`` (``kept_evals``) supplies
    the evaluations of arms that were not run this time; they have no rho(t) curves."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = kept or {}
    dirs = run_dirs(runs_root, arms, seeds)
    evals = {key: kept[key] if key in kept else read_csv(path / "evals.csv") for key, path in dirs.items()}
    labels = [a.label for a in arms]
    _write_all_evals(out_dir / "all_evals.csv", evals)
    final = {a: [evals[(a, s)][-1][metric] for s in seeds] for a in labels}
    if threshold is None:
        threshold = float(np.mean(final[baseline])) if baseline in final else float(np.max(
            [np.mean(v) for v in final.values()]))
    success = metric == "success_rate"
    summary = {
        "task": task, "metric": metric, "seeds": list(seeds), "title": title or task,
        "env_steps": int(max(rows[-1]["env_steps"] for rows in evals.values())),
        "threshold": round(threshold, 4), "baseline": baseline,
        "pretrained": float(np.mean([rows[0][metric] for rows in evals.values()])),
        "eval_episodes": eval_episodes, "methods": {}, "command": command,
    }
    for a in labels:
        mean, ci = mean_ci95(final[a])
        reach = [_steps_to(evals[(a, s)], threshold, metric) for s in seeds]
        # mean metric over every evaluation after fine-tuning began: sample efficiency without a threshold
        during = [float(np.mean([r[metric] for r in evals[(a, s)] if r["env_steps"] > 0])) for s in seeds]
        during_mean, during_ci = mean_ci95(during)
        summary["methods"][a] = {
            # per arm: arms of one experiment may start from different policies (IDQL's own, RLPD from scratch)
            "pretrained_mean": round(float(np.mean([evals[(a, s)][0][metric] for s in seeds])), 4),
            "final_mean": round(mean, 4), "final_ci95": _interval(ci, success), "final_per_seed": final[a],
            "during_mean": round(during_mean, 4), "during_ci95": _interval(during_ci, success),
            # over the seeds that reached it (None if none did); how many did is part of the answer
            "steps_to_threshold_mean": (float(np.mean([r for r in reach if r is not None]))
                                        if any(r is not None for r in reach) else None),
            "seeds_reaching_threshold": sum(r is not None for r in reach),
            "steps_to_threshold_per_seed": reach,
            "overrides": list(next(arm.overrides for arm in arms if arm.label == a)),
        }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    curves = {a: _band([evals[(a, s)] for s in seeds], metric, success) for a in labels}
    plot_bands(curves, f"{summary['title']}: {METRIC_NAMES[metric]} vs env steps ({len(seeds)} seeds, mean, 95% CI)",
               out_dir / "learning_curves.png", ylabel=METRIC_NAMES[metric], unit_interval=success)
    injections = {a: [read_csv(dirs[(a, s)] / "injections.csv") for s in seeds
                      if (a, s) not in kept and (dirs[(a, s)] / "injections.csv").exists()] for a in labels}
    plot_il_and_rho(pretrain_history, {a: [evals[(a, s)] for s in seeds] for a in labels}, injections,
                    out_dir / "il_loss_rho.png", summary["title"])
    return summary


def _write_all_evals(path: Path, evals: dict[tuple[str, int], list[dict]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "iteration", "env_steps", "success_rate", "mean_return", "ci_low",
                         "ci_high", "mean_length", "heldout_il_loss"])
        for (label, seed), rows in evals.items():
            for r in rows:
                writer.writerow([label, seed, r["iteration"], r["env_steps"], r["success_rate"], r["mean_return"],
                                 r["ci_low"], r["ci_high"], r["mean_length"], r["heldout_il_loss"]])


def _interval(ci: tuple[float, float], unit: bool) -> list[float]:
    """A t-interval over few seeds, clipped to [0, 1] for success rates (it can overshoot)."""
    lo, hi = ci
    return [round(max(0.0, lo), 4), round(min(1.0, hi), 4)] if unit else [round(lo, 4), round(hi, 4)]


def _band(runs: list[list[dict]], metric: str, unit: bool) -> tuple[list[float], list[float], list[float], list[float]]:
    """Mean and t-interval across seeds at each evaluation index (all runs share the eval schedule)."""
    n = min(len(r) for r in runs)
    steps = [float(np.mean([r[i]["env_steps"] for r in runs])) for i in range(n)]
    stats = [mean_ci95([r[i][metric] for r in runs]) for i in range(n)]
    bands = [_interval(s[1], unit) for s in stats]
    return steps, [s[0] for s in stats], [b[0] for b in bands], [b[1] for b in bands]


def _steps_to(rows: list[dict], threshold: float, metric: str) -> float | None:
    for r in rows:
        if r[metric] >= threshold:
            return float(r["env_steps"])
    return None


def markdown_table(summaries: list[dict]) -> str:
    """The README's results tables: one row per (experiment, arm) from benchmark summary.json files."""
    lines = ["| experiment | metric | pre-trained | method | final (mean, 95% CI) | per seed | mean while training "
             "| env steps to threshold |", "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        fmt = (lambda v: f"{v:.2f}") if s["metric"] == "success_rate" else (lambda v: f"{v:.0f}")
        for method, m in s["methods"].items():
            lo, hi = m["final_ci95"]
            reach, n_reach = m["steps_to_threshold_mean"], m["seeds_reaching_threshold"]
            pretrained = m.get("pretrained_mean", s["pretrained"])
            # a policy that starts at or above the threshold "reaches" it at step 0, which says nothing about
            # fine-tuning (an arm that only lost success would read as the fastest)
            basis = f"threshold {fmt(s['threshold'])} = {s['baseline']}'s final"
            reached = (f"at start ({basis}, pre-trained ≥ it)" if pretrained >= s["threshold"] else
                       f"{'never' if reach is None else f'{reach:,.0f}'} ({n_reach}/{len(s['seeds'])} seeds; {basis})")
            lines.append(
                f"| {s['title']} | {METRIC_NAMES[s['metric']]} | {fmt(pretrained)} "
                f"| {method} | "
                f"{fmt(m['final_mean'])} [{fmt(lo)}, {fmt(hi)}] | {', '.join(fmt(v) for v in m['final_per_seed'])} "
                f"| {fmt(m['during_mean'])} | {reached} |"
            )
    return "\n".join(lines)


README_BEGIN = "<!-- bench-table:begin (written by 'inril bench table --readme README.md') -->"
README_END = "<!-- bench-table:end -->"


def write_readme_table(readme: Path, table: str) -> None:
    """Replace the README's generated block (between the markers) with ``table``."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} has no generated-table block: add the lines\n{README_BEGIN}\n{README_END}")
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")
