"""The run report: numbers and plots from the CSV files the nodes write, and "no data" where a file is missing."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inril_ros.report import success_trend, success_windows, write_report


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def full_run(tmp_run_dir: Path) -> Path:
    """A run directory as the graph leaves it: 25 episodes, 3 learner updates, 3 versions, latencies, jitter."""
    outcomes = ["timeout"] * 8 + ["success", "timeout"] + ["success"] * 6 + ["timeout"] * 4 + ["success"] * 5
    write_csv(tmp_run_dir / "episodes.csv", [
        {"episode": k, "seed": k, "policy_version": k // 10, "outcome": o, "length": 30 if o == "timeout" else 12,
         "return": float(o == "success"), "start_stamp": k * 2.0, "end_stamp": k * 2.0 + 1.5, "wall_time": k * 3.0}
        for k, o in enumerate(outcomes)])
    write_csv(tmp_run_dir / "learner" / "metrics.csv", [
        {"iteration": v, "version": v, "env_steps": 240 * v, "success_rate": 0.1 * v, "rho_mean": rho,
         "update_s": 0.5} for v, rho in ((1, "nan"), (2, -0.2), (3, 0.4))])
    write_csv(tmp_run_dir / "policy_versions.csv", [
        {"version": v, "stamp": 10.0 * v, "wall_time": 1000.0 + 30 * v, "sha256": "ab"} for v in range(3)])
    write_csv(tmp_run_dir / "policy_latency.csv", [
        {"stamp": i * 0.2, "episode": 0, "chunk": i, "version": 0, "latency_s": 0.010 + 0.001 * (i % 10),
         "wall_time": 1000.0 + i} for i in range(100)])
    write_csv(tmp_run_dir / "executor.csv", [
        {"t": i * 0.05, "k": i % 4, "held": 0, "filtered": 0, "jitter_s": "" if i == 0 else 0.002 * (-1) ** i,
         "wall_time": 1000.0 + i} for i in range(50)])
    return tmp_run_dir


def test_success_is_reported_per_window_of_episodes() -> None:
    rows = [{"episode": k, "outcome": "success" if k >= 10 else "timeout"} for k in range(25)]
    assert success_windows(rows, window=10) == [(0, 9, 0.0), (10, 19, 1.0), (20, 24, 1.0)]


def test_report_summarises_every_section_with_plots(full_run: Path) -> None:
    text = write_report(full_run, summary="stopped: time budget of 20.0 min reached").read_text()
    assert "stopped: time budget of 20.0 min reached" in text
    assert "25 episodes: 12 success, 13 timeout, 0 e-stop; success rate 0.48" in text
    assert "| 0-9 | 0.10 |" in text and "| 10-19 | 0.60 |" in text and "| 20-24 | 1.00 |" in text
    assert "3 updates, last version 3, 720 env steps" in text
    assert "mean rho per update: mean 0.100, min -0.200, max 0.400 over 2 values" in text  # the NaN is skipped
    assert "3 versions acted (the first is the pre-trained policy), 2 swaps" in text
    assert "| 2 | 20.00 | 60.0 |" in text
    assert "100 chunks: p50 14.5 ms, p99 19.0 ms, max 19.0 ms" in text
    assert "49 ticks: p50 2.00 ms, p99 2.00 ms" in text  # the first tick has no jitter
    assert (full_run / "success.png").stat().st_size > 1000 and (full_run / "learner.png").stat().st_size > 1000


def test_rho_per_injection_is_used_when_the_learner_logs_injections(full_run: Path) -> None:
    write_csv(full_run / "learner" / "injections.csv",
              [{"iteration": 1, "env_steps": 240, "rho": r, "projected": 0.0, "il_loss": 0.3} for r in (0.5, -0.5, 0.3)])
    text = write_report(full_run).read_text()
    assert "rho per injection: mean 0.100, min -0.500, max 0.500 over 3 values" in text


def test_missing_files_give_no_data_sections_but_a_report(tmp_run_dir: Path) -> None:
    text = write_report(tmp_run_dir).read_text()
    for section in ("## Episodes", "## Learner", "## Policy versions", "## Latency"):
        assert section in text
    assert text.count("no data") == 5  # episodes, learner, versions, latency, jitter
    assert not list(tmp_run_dir.glob("*.png"))


def test_empty_and_malformed_files_count_as_no_data(tmp_run_dir: Path) -> None:
    (tmp_run_dir / "episodes.csv").write_text("")
    (tmp_run_dir / "policy_latency.csv").write_text("stamp,latency_s\n1.0,not-a-number\n")
    text = write_report(tmp_run_dir).read_text()
    assert "no data (episodes.csv missing or empty)" in text
    assert "policy latency: no data" in text


def test_first_and_last_quarter_of_the_episodes_are_compared_with_intervals() -> None:
    rows = [{"episode": k, "outcome": "success" if k >= 20 or k % 4 == 0 else "timeout"} for k in range(40)]
    first, last = success_trend(rows)
    assert first[:4] == (0, 9, 3, 10) and last[:4] == (30, 39, 10, 10)
    assert first[4][0] < 0.3 < first[4][1] and last[4][0] > 0.6 and last[4][1] == 1.0


def test_too_few_episodes_give_no_trend() -> None:
    assert success_trend([{"episode": k, "outcome": "success"} for k in range(7)]) is None


def test_success_is_reported_per_policy_version(full_run: Path) -> None:
    text = write_report(full_run).read_text()
    assert "| 0 | 10 | 0.10 |" in text and "| 1 | 10 | 0.60 |" in text and "| 2 | 5 | 1.00 |" in text
    assert "first quarter of the episodes (0-5): 0.00" in text and "last quarter (19-24): 0.83" in text


def test_a_long_run_gets_wider_windows_not_a_longer_table(tmp_run_dir: Path) -> None:
    write_csv(tmp_run_dir / "episodes.csv", [{"episode": k, "outcome": "success", "policy_version": 0}
                                            for k in range(1000)])
    text = write_report(tmp_run_dir).read_text()
    assert "Success per window of 34 episodes" in text and "| 0-33 | 1.00 |" in text
    windows = [line for line in text.splitlines() if line.startswith("| ") and "-" in line.split("|")[1]]
    assert len(windows) == 30
