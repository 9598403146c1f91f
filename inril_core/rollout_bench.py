"""How rollout throughput scales with Ray workers: env steps/s of the local sync vector env vs Ray with W workers.

Every row steps the same n envs with random action chunks for a fixed wall-clock time, so the rows differ only
in where the envs live. The machine's cores and load are recorded with the numbers, because workers can only
run in parallel on free cores: past the cores of one machine, more workers measure Ray's overhead, not scaling.
Writes summary.json, report.md (the table) and scaling.png under the output folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np

from inril_core.envs import make_vector_env, step_outcome
from inril_core.ray_envs import ray_session

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Progress = Callable[[str, float], None]  # (row being measured, overall fraction done in [0, 1])


def measure_rollout_scaling(env_id: str, n_envs: int = 16, workers: Sequence[int] = (1, 2, 4),
                            seconds: float = 20.0, max_episode_steps: int = 300, act_steps: int = 4,
                            out_dir: str | Path = "docs/results/rollout-scaling", ray_address: str | None = None,
                            warmup_steps: int = 5, seed: int = 0, progress: Progress | None = None,
                            command: str | None = None) -> dict:
    """Measure env steps/s for vector="sync" and for vector="ray" with each worker count; write and return them.

    The sync row runs before Ray starts (as a user without Ray would run it). A local Ray session gets at least
    max(workers) logical CPUs, so every worker is placed even where that oversubscribes the cores: the point is to
    see what that costs. `command` is recorded as how the numbers were made (default: this call).
    """
    rows_to_run = [("sync", 1)] + [("ray", w) for w in workers]
    call = command or (f"measure_rollout_scaling({env_id!r}, n_envs={n_envs}, workers={tuple(workers)}, "
                       f"seconds={seconds}, max_episode_steps={max_episode_steps}, act_steps={act_steps}, "
                       f"ray_address={ray_address!r}, warmup_steps={warmup_steps}, seed={seed})")
    cores = len(os.sched_getaffinity(0))
    machine = {"cpu_count": os.cpu_count(), "cpus_usable": cores, "load_avg_before": list(os.getloadavg()),
               "parallel_cores_measured": measure_parallel_cores(cores), "python": platform.python_version(),
               "platform": platform.platform(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def report(label: str, i: int, fraction: float) -> None:
        if progress is not None:
            progress(label, (i + fraction) / len(rows_to_run))

    results = [_measure("sync", 1, env_id, n_envs, max_episode_steps, act_steps, seconds, warmup_steps, seed,
                        ray_address, lambda f: report("local sync", 0, f))]
    with ray_session(ray_address, num_cpus=max(os.cpu_count() or 1, *workers)) as ray:
        machine["ray"] = ray.__version__
        machine["ray_cluster_cpus"] = ray.cluster_resources().get("CPU", 0.0)
        for i, (vector, w) in enumerate(rows_to_run[1:], start=1):
            results.append(_measure(vector, w, env_id, n_envs, max_episode_steps, act_steps, seconds, warmup_steps,
                                    seed, ray_address, lambda f, i=i, w=w: report(f"ray, {w} workers", i, f)))
    machine["load_avg_after"] = list(os.getloadavg())
    sync_rate = results[0]["env_steps_per_s"]
    for r in results:
        r["speedup_vs_sync"] = r["env_steps_per_s"] / sync_rate
    summary = {"env_id": env_id, "n_envs": n_envs, "max_episode_steps": max_episode_steps, "act_steps": act_steps,
               "seconds_per_row": seconds, "warmup_steps": warmup_steps, "seed": seed, "ray_address": ray_address,
               "command": call, "machine": machine, "rows": results}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(markdown_report(summary))
    plot_scaling(summary, out / "scaling.png")
    return summary


def measure_parallel_cores(processes: int, seconds: float = 2.0) -> float:
    """Cores' worth of CPU that `processes` CPU-bound processes running at once get, in total.

    A machine (or a VM's share of its host) may list more cores than it can run at once while others use it; this
    is the ceiling on how much any number of local workers can gain over one process.
    """
    start_at = time.time() + 1.0  # every process spins over the same window, however long it took to start
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(_cpu_share_while_spinning, [start_at] * processes, [seconds] * processes))


def _cpu_share_while_spinning(start_at: float, seconds: float) -> float:
    time.sleep(max(0.0, start_at - time.time()))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        sum(range(10_000))
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def _measure(vector: str, workers: int, env_id: str, n_envs: int, max_episode_steps: int, act_steps: int,
             seconds: float, warmup_steps: int, seed: int, ray_address: str | None,
             on_progress: Callable[[float], None]) -> dict:
    """One row: build, reset, warm up, then step random chunks for `seconds`; env steps counted as executed."""
    started = time.perf_counter()
    envs = make_vector_env(env_id, n_envs, max_episode_steps, act_steps, vector, workers=workers,
                           ray_address=ray_address)
    try:
        startup_s = time.perf_counter() - started
        rng = np.random.default_rng(seed)
        space: gym.spaces.Box = envs.action_space
        envs.reset(seed=[seed * 1000 + i for i in range(n_envs)])
        for _ in range(warmup_steps):
            envs.step(rng.uniform(space.low, space.high).astype(space.dtype))
        env_steps = vector_steps = 0
        t0, cpu0 = time.perf_counter(), time.process_time()
        last_report = t0
        while (now := time.perf_counter()) - t0 < seconds:
            _, _, terminated, truncated, info = envs.step(rng.uniform(space.low, space.high).astype(space.dtype))
            env_steps += int(step_outcome(info, terminated | truncated)[0].sum())
            vector_steps += 1
            if now - last_report > 1.0:
                on_progress((now - t0) / seconds)
                last_report = now
        elapsed, driver_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        envs.close()
    on_progress(1.0)
    return {"vector": vector, "workers": workers if vector == "ray" else 0, "startup_s": startup_s,
            "seconds": elapsed, "env_steps": env_steps, "vector_steps": vector_steps,
            "env_steps_per_s": env_steps / elapsed, "vector_steps_per_s": vector_steps / elapsed,
            "driver_cpu_fraction": driver_cpu / elapsed}


def _label(row: dict) -> str:
    return "local sync" if row["vector"] == "sync" else f"ray, {row['workers']} worker{'s' * (row['workers'] > 1)}"


def markdown_report(summary: dict) -> str:
    """The table, the machine it ran on, and what the numbers can and cannot say on that machine."""
    m, rows = summary["machine"], summary["rows"]
    cores = m["cpus_usable"]
    lines = [f"# Rollout scaling: {summary['env_id']}", "",
             f"{summary['n_envs']} envs in every row, max_episode_steps {summary['max_episode_steps']}, act_steps "
             f"{summary['act_steps']}, random action chunks; each row stepped for {summary['seconds_per_row']:g} s "
             f"after {summary['warmup_steps']} warm-up steps. Made by `{summary['command']}`.", "",
             f"Machine: {cores} usable cores ({m['cpu_count']} CPUs), load average (1, 5, 15 min) "
             f"{_loads(m['load_avg_before'])} before and {_loads(m['load_avg_after'])} after; Ray {m['ray']} "
             f"({'local session' if summary['ray_address'] is None else summary['ray_address']}, "
             f"{m['ray_cluster_cpus']:g} logical CPUs); Python {m['python']}; {m['started']}.", "",
             "| vector env | env steps/s | vs local sync | vector steps/s | start-up (s) | driver CPU |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {_label(r)} | {r['env_steps_per_s']:,.0f} | {r['speedup_vs_sync']:.2f}x | "
                     f"{r['vector_steps_per_s']:,.1f} | {r['startup_s']:.2f} | {r['driver_cpu_fraction']:.0%} |")
    sync = rows[0]
    lines += ["", "## Reading the numbers", "",
              "Start-up is the time to build the vector env (for Ray: start the worker actors, each building its "
              "slice of the envs); driver CPU is the share of one core the calling process used while stepping.", ""]
    one = next((r for r in rows if r["vector"] == "ray" and r["workers"] == 1), None)
    if one is not None:
        per_step_ms = 1000 * (1 / one["vector_steps_per_s"] - 1 / sync["vector_steps_per_s"])
        lines += [f"- Ray with 1 worker runs the same sync vector env as the local row, plus one round trip per "
                  f"vector step (actions out, observations and infos back): {one['speedup_vs_sync']:.2f}x the local "
                  f"rate, i.e. {per_step_ms:+.1f} ms per vector step."]
    parallel = m["parallel_cores_measured"]
    over = [r["workers"] for r in rows if r["vector"] == "ray" and r["workers"] > max(1, round(parallel))]
    lines += [f"- Parallel capacity: {cores} CPU-bound processes started together got {parallel:.2f} cores' worth "
              f"of CPU in total (whatever else runs on the machine, or the hypervisor, holds the rest). That is the "
              f"ceiling on any local speed-up over one process."]
    if over:
        driver = max(r["driver_cpu_fraction"] for r in rows if r["vector"] == "ray")
        lines += [f"- With {', '.join(map(str, over))} workers there are more busy processes than that, so they "
                  f"time-share the cores: these rows measure Ray's overhead on a full machine, not scaling. Speed-up "
                  f"needs as many free cores as workers (the driver needed at most {driver:.0%} of one core): a "
                  "bigger machine, or more machines joined into one cluster (`ray start`) and passed as "
                  "`ray_address`."]
    return "\n".join(lines) + "\n"


def _loads(loads: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in loads)


def plot_scaling(summary: dict, path: Path) -> Path:
    """Bars of env steps/s per row, with the local sync rate as a reference line."""
    rows = summary["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    bars = ax.bar([_label(r) for r in rows], [r["env_steps_per_s"] for r in rows],
                  color=["tab:grey"] + ["tab:blue"] * (len(rows) - 1))
    ax.bar_label(bars, labels=[f"{r['speedup_vs_sync']:.2f}x" for r in rows])
    ax.axhline(rows[0]["env_steps_per_s"], color="tab:grey", ls="--", lw=0.8)
    m = summary["machine"]
    ax.set(ylabel="env steps / s", title=f"{summary['env_id']}, {summary['n_envs']} envs, {m['cpus_usable']} cores "
                                         f"({m['parallel_cores_measured']:.2f} usable at once)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
