"""The report of a graph run (``inril sim``): ``<run_dir>/report.md`` with PNG plots, from the CSV files the nodes wrote.

Why from files and not from topics: every number here must be reproducible after the run, and the nodes already
log what matters (episode manager: ``episodes.csv``; learner: ``learner/metrics.csv`` via RunLog; policy server:
``policy_versions.csv``, ``policy_latency.csv``; action executor: ``executor.csv``). A missing or empty file makes
its section say "no data" instead of failing: a run stopped early still gets a report of what it did.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from inril_core.evaluate import wilson_interval  # noqa: E402
from inril_core.run_log import read_csv  # noqa: E402

SUCCESS_WINDOW = 10  # fewest episodes per window of the success curve and table ...
MAX_WINDOWS = 30     # ... widened so that a long run has at most this many windows (20 min of lift: ~1,400 episodes)
TREND_PARTS, TREND_PARTS_NAME = 4, "quarter"  # the report compares the first and the last quarter of the episodes
NO_DATA = "no data"


def _rows(path: Path) -> list[dict]:
    """The file's rows, [] when it is missing, empty or unreadable (the section then says no data)."""
    try:
        return read_csv(path) if path.is_file() else []
    except (OSError, ValueError, UnicodeDecodeError):
        return []


def _numbers(rows: list[dict], column: str) -> np.ndarray:
    """The finite numeric values of ``column`` (blank cells, e.g. the executor's first jitter, are skipped)."""
    values = [row.get(column) for row in rows]
    return np.array([float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)])


def success_windows(rows: list[dict], window: int = SUCCESS_WINDOW) -> list[tuple[int, int, float]]:
    """(first episode, last episode, success rate) per consecutive ``window`` ended episodes, in episode order."""
    ordered = sorted(rows, key=lambda r: r["episode"])
    out = []
    for start in range(0, len(ordered), window):
        chunk = ordered[start:start + window]
        rate = sum(r["outcome"] == "success" for r in chunk) / len(chunk)
        out.append((chunk[0]["episode"], chunk[-1]["episode"], rate))
    return out


def success_trend(rows: list[dict], parts: int = TREND_PARTS) -> tuple[tuple, tuple] | None:
    """Success of the first and the last ``parts``-th of the episodes (in episode order), each as
    (first episode, last episode, successes, episodes, (Wilson 95% low, high)); None with fewer than 2 * parts
    episodes. The one-line answer to "did it rise?", with intervals so that noise is not read as a trend."""
    ordered = sorted(rows, key=lambda r: r["episode"])
    n = len(ordered) // parts
    if n < 2:
        return None

    def summary(chunk: list[dict]) -> tuple:
        wins = sum(r["outcome"] == "success" for r in chunk)
        return chunk[0]["episode"], chunk[-1]["episode"], wins, len(chunk), wilson_interval(wins, len(chunk))

    return summary(ordered[:n]), summary(ordered[-n:])


def success_per_version(rows: list[dict]) -> list[tuple[int, int, float]]:
    """(policy version, episodes, success rate) for every version that acted a whole episode, in version order."""
    by_version: dict[int, list[bool]] = {}
    for row in rows:
        if isinstance(row.get("policy_version"), int):
            by_version.setdefault(row["policy_version"], []).append(row["outcome"] == "success")
    return [(v, len(wins), sum(wins) / len(wins)) for v, wins in sorted(by_version.items())]


def _episodes_section(run_dir: Path, rows: list[dict]) -> list[str]:
    lines = ["## Episodes", ""]
    if not rows:
        return lines + [f"{NO_DATA} (episodes.csv missing or empty)", ""]
    outcomes = [r["outcome"] for r in rows]
    lengths = _numbers(rows, "length")
    lines.append(f"{len(rows)} episodes: {outcomes.count('success')} success, {outcomes.count('timeout')} timeout, "
                 f"{outcomes.count('estop')} e-stop; success rate {outcomes.count('success') / len(rows):.2f}"
                 + (f", mean length {lengths.mean():.1f} steps" if lengths.size else ""))
    trend = success_trend(rows)
    if trend is not None:
        (a0, a1, aw, an, (alo, ahi)), (b0, b1, bw, bn, (blo, bhi)) = trend
        lines.append(f"- success, first {TREND_PARTS_NAME} of the episodes ({a0}-{a1}): {aw / an:.2f} [{alo:.2f}, "
                     f"{ahi:.2f}]; last {TREND_PARTS_NAME} ({b0}-{b1}): {bw / bn:.2f} [{blo:.2f}, {bhi:.2f}] "
                     "(95% Wilson intervals)")
    window = max(SUCCESS_WINDOW, math.ceil(len(rows) / MAX_WINDOWS))
    windows = success_windows(rows, window)
    lines += ["", f"Success per window of {window} episodes:", "", "| episodes | success rate |", "|---|---|"]
    lines += [f"| {first}-{last} | {rate:.2f} |" for first, last, rate in windows]
    per_version = success_per_version(rows)
    if per_version:
        lines += ["", "Success per policy version (the version announced when the episode started):", "",
                  "| version | episodes | success rate |", "|---|---|---|"]
        lines += [f"| {v} | {n} | {rate:.2f} |" for v, n, rate in per_version]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for first, last, rate in windows:  # one bar spanning the episodes of its window
        ax.bar(first, rate, width=last - first + 1, align="edge", color="tab:blue", alpha=0.6, edgecolor="white")
    versions = _numbers(rows, "policy_version")
    if versions.size == len(rows):
        twin = ax.twinx()
        twin.step([r["episode"] + 0.5 for r in rows], versions, where="mid", color="tab:grey", lw=1.0)
        twin.set_ylabel("policy version", color="tab:grey")
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="episode", ylabel=f"success rate per {window} episodes", ylim=(-0.02, 1.02),
           title="success (exploring policy)")
    _save(fig, run_dir / "success.png")
    return lines + ["", "![success per window of episodes](success.png)", ""]


def _learner_section(run_dir: Path) -> list[str]:
    lines = ["## Learner", ""]
    metrics = _rows(run_dir / "learner" / "metrics.csv")
    injections = _rows(run_dir / "learner" / "injections.csv")
    if not metrics:
        return lines + [f"{NO_DATA} (learner/metrics.csv missing or empty: no update finished)", ""]
    steps = _numbers(metrics, "env_steps")
    lines.append(f"- {len(metrics)} updates, last version {metrics[-1].get('version', metrics[-1].get('iteration'))}"
                 + (f", {int(steps[-1])} env steps" if steps.size else ""))
    # rho(t) = cos(IL gradient, RL gradient): per injection when logged, else the mean per update
    if injections:
        rho_x, rho = _numbers(injections, "env_steps"), _numbers(injections, "rho")
        rho_label = "rho per injection"
    else:
        pairs = [(r["env_steps"], r["rho_mean"]) for r in metrics
                 if isinstance(r.get("rho_mean"), (int, float)) and math.isfinite(r["rho_mean"])]
        rho_x, rho = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        rho_label = "mean rho per update"
    if rho.size:
        lines.append(f"- rho(t) = cos(g_IL, g_RL), {rho_label}: mean {rho.mean():.3f}, min {rho.min():.3f}, "
                     f"max {rho.max():.3f} over {rho.size} values")
    else:
        lines.append(f"- rho(t): {NO_DATA} (no IL injection with an RL gradient yet)")
    wall = _numbers(metrics, "wall_time")
    if wall.size == len(metrics):
        time_x, time_label = wall - wall[0], "wall seconds since the first update"
    else:
        time_x, time_label = steps, "env steps"
    heldout_x, heldout = steps, _numbers(metrics, "heldout_il_loss")
    if heldout.size:
        lines.append(f"- held-out demo IL loss: {heldout[0]:.3f} after the first update, {heldout[-1]:.3f} after the "
                     f"last (min {heldout.min():.3f})")
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.5))
    ax.step(time_x, np.arange(1, len(metrics) + 1), where="post", marker=".")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel=time_label, ylabel="learner updates", title="updates")
    if rho.size and rho_x.size == rho.size:
        ax2.plot(rho_x, rho, marker=".", lw=0.8)
    ax2.axhline(0.0, color="grey", lw=0.8)
    ax2.set(xlabel="env steps", ylabel="rho = cos(g_IL, g_RL)", title=rho_label)
    if heldout.size and heldout_x.size == heldout.size:
        ax3.plot(heldout_x, heldout, marker=".", lw=0.8)
    ax3.set(xlabel="env steps", ylabel="denoising loss", title="IL loss on held-out demos")
    _save(fig, run_dir / "learner.png")
    return lines + ["", "![learner updates, rho(t) and the held-out IL loss](learner.png)", ""]


def _versions_section(run_dir: Path) -> list[str]:
    lines = ["## Policy versions", ""]
    rows = _rows(run_dir / "policy_versions.csv")
    if not rows:
        return lines + [f"{NO_DATA} (policy_versions.csv missing or empty)", ""]
    wall = _numbers(rows, "wall_time")
    lines.append(f"{len(rows)} versions acted (the first is the pre-trained policy), {max(0, len(rows) - 1)} swaps")
    lines += ["", "| version | sim stamp (s) | seconds after the first |", "|---|---|---|"]
    for row, t in zip(rows, wall - wall[0] if wall.size == len(rows) else [None] * len(rows)):
        stamp = row.get("stamp")
        stamp = f"{stamp:.2f}" if isinstance(stamp, (int, float)) else ""
        lines.append(f"| {row.get('version', '?')} | {stamp} | {'' if t is None else f'{t:.1f}'} |")
    return lines + [""]


def _latency_section(run_dir: Path) -> list[str]:
    lines = ["## Latency", ""]
    latency = _numbers(_rows(run_dir / "policy_latency.csv"), "latency_s")
    if latency.size:
        p50, p99 = np.percentile(latency, [50, 99])
        lines.append(f"- policy latency (observation complete -> chunk published), {latency.size} chunks: "
                     f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {latency.max() * 1e3:.1f} ms")
    else:
        lines.append(f"- policy latency: {NO_DATA} (policy_latency.csv missing or empty)")
    jitter = _numbers(_rows(run_dir / "executor.csv"), "jitter_s")
    if jitter.size:
        p50, p99 = np.percentile(np.abs(jitter), [50, 99])
        lines.append(f"- executor timer jitter (|period error|), {jitter.size} ticks: p50 {p50 * 1e3:.2f} ms, "
                     f"p99 {p99 * 1e3:.2f} ms")
    else:
        lines.append(f"- executor jitter: {NO_DATA} (executor.csv has no jitter_s values: lock-step runs have no timer)")
    return lines + [""]


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(run_dir: str | Path, summary: str = "") -> Path:
    """Write ``<run_dir>/report.md`` (+ success.png, learner.png when there is data); returns the report's path.

    ``summary``: one line on how the run ended (the supervisor's reason), put under the title.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    episodes = [r for r in _rows(run_dir / "episodes.csv")
                if isinstance(r.get("episode"), int) and isinstance(r.get("outcome"), str)]
    lines = [f"# Graph run {run_dir.name}", ""]
    if summary:
        lines += [summary, ""]
    lines += _episodes_section(run_dir, episodes)
    lines += _learner_section(run_dir)
    lines += _versions_section(run_dir)
    lines += _latency_section(run_dir)
    lines += ["Node logs: `logs/<node>.log`; CSV sources: episodes.csv, learner/metrics.csv, policy_versions.csv, "
              "policy_latency.csv, executor.csv.", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
