"""Benchmark orchestration on the toy task: every (arm, seed) run as its own process, finished runs skipped,
interrupted ones resumed, runs shared between experiments, and the summary (summary.json, CSV, plots, table)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import toy_run

from inril_core import bench

METHODS = ("in-ril", "rl-only", "bc-reg")
ARMS = bench.method_arms(METHODS)
SEEDS = [0, 1]


def run(root: Path, arms=ARMS, jobs: int = 2) -> list[str]:
    lines: list[str] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(toy_run.__file__).parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    base = [o for o in toy_run.toy_overrides(root) if not o.startswith(("run.dir=", "seed="))]
    bench.run_all(root / "runs", arms, SEEDS, base, jobs, echo=lines.append, env=env)
    return lines


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    root = toy_run.pretrained_toy_root(tmp_path_factory, "bench")
    return root, run(root)


def started(lines: list[str], verb: str = "start") -> list[str]:
    return sorted(line.split(" -> ")[0] for line in lines if line.startswith(verb + " "))


def test_every_arm_and_seed_runs_once_as_its_own_process(bench_root):
    root, lines = bench_root
    assert started(lines) == sorted(f"start {m} seed {s}" for m in METHODS for s in SEEDS)
    assert all((root / "runs" / a.run_name(s) / "report.json").exists() for a in ARMS for s in SEEDS)


def test_finished_runs_are_skipped_and_interrupted_ones_resume(bench_root):
    root, _ = bench_root
    interrupted = root / "runs" / ARMS[1].run_name(1)
    (interrupted / "report.json").unlink()
    shutil.rmtree(sorted((interrupted / "checkpoints").glob("step_*"))[-1])  # died before its last checkpoint
    lines = run(root)
    assert started(lines) == [] and started(lines, "resume") == ["resume rl-only seed 1"]
    assert (interrupted / "report.json").exists()


def test_arms_with_the_same_overrides_share_their_runs(bench_root):
    root, _ = bench_root
    same = [bench.Arm("m=30 (another experiment's name)", ARMS[0].overrides)]
    lines = run(root, same)
    assert started(lines) == [] and all("skip" in line for line in lines)


def test_a_run_made_with_other_benchmark_wide_overrides_is_not_taken_for_the_one_asked_for(bench_root):
    """Run directories are named by the arm's overrides alone: an ablation's extra override (the same arm with
    another rl.* value) must not skip or resume the runs made without it."""
    root, _ = bench_root
    lines: list[str] = []
    base = [o for o in toy_run.toy_overrides(root) if not o.startswith(("run.dir=", "seed="))]
    with pytest.raises(bench.BenchError, match=r"in-ril.*-s0 was made with overrides \[.*'seed=0'\], this benchmark "
                                               r"asks for \[.*'interleave.m=7', 'method=in-ril', 'seed=0'\]"):
        bench.run_all(root / "runs", ARMS[:1], SEEDS, [*base, "interleave.m=7"], echo=lines.append)
    assert lines == []  # refused before anything started
    made = json.loads((root / "runs" / ARMS[0].run_name(0) / bench.MADE_WITH).read_text())
    assert made == [*base, "method=in-ril", "seed=0"]


def test_a_failing_run_is_named_with_its_log(bench_root):
    root, _ = bench_root
    broken = [bench.Arm("broken", ("interleave.m=0",))]
    with pytest.raises(bench.BenchError, match="broken seed 0.*train.log"):
        run(root, broken)


def summary_of(root: Path) -> dict:
    return bench.summarise(root / "runs", root / "out", ARMS, SEEDS, "toy", "inril bench …", 2)


def test_summary_has_the_documented_fields(bench_root):
    root, _ = bench_root
    summary = summary_of(root)
    assert set(summary) >= {"task", "metric", "seeds", "env_steps", "threshold", "baseline", "pretrained",
                            "methods", "command"}
    assert set(summary["methods"]) == set(METHODS)
    for m in summary["methods"].values():
        lo, hi = m["final_ci95"]
        assert lo <= m["final_mean"] <= hi and len(m["final_per_seed"]) == 2
    assert json.loads((root / "out" / "summary.json").read_text()) == summary
    for plot in ("learning_curves.png", "il_loss_rho.png"):
        assert (root / "out" / plot).stat().st_size > 0


def test_all_evals_csv_has_a_row_per_evaluation(bench_root):
    root, _ = bench_root
    summary_of(root)
    rows = (root / "out" / "all_evals.csv").read_text().strip().splitlines()
    expected = sum(len((root / "runs" / a.run_name(s) / "evals.csv").read_text().strip().splitlines()) - 1
                   for a in ARMS for s in SEEDS)
    assert len(rows) - 1 == expected


def test_each_arm_reports_its_own_pretrained_evaluation(bench_root):
    """Arms can start from different policies (RLPD from scratch), so the step-0 mean is per arm."""
    root, _ = bench_root
    summary = summary_of(root)
    for arm in ARMS:
        step0 = [bench.read_csv(root / "runs" / arm.run_name(s) / "evals.csv")[0]["success_rate"] for s in SEEDS]
        assert summary["methods"][arm.label]["pretrained_mean"] == pytest.approx(sum(step0) / len(step0), abs=1e-4)


def test_threshold_defaults_to_the_baseline_arms_final_mean(bench_root):
    summary = summary_of(bench_root[0])
    assert summary["threshold"] == pytest.approx(summary["methods"]["rl-only"]["final_mean"], abs=1e-4)


def test_markdown_table_has_a_row_per_arm_and_rewrites_the_readme_block(bench_root, tmp_path):
    table = bench.markdown_table([summary_of(bench_root[0])])
    assert [line.split("|")[4].strip() for line in table.splitlines()[2:]] == list(METHODS)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_BEGIN}\nOLD-BLOCK\n{bench.README_END}\nrest\n")
    bench.write_readme_table(readme, table)
    text = readme.read_text()
    assert "OLD-BLOCK" not in text and table in text and text.startswith("intro") and text.endswith("rest\n")


def test_success_intervals_stay_within_zero_and_one(bench_root):
    for m in summary_of(bench_root[0])["methods"].values():
        for lo, hi in (m["final_ci95"], m["during_ci95"]):
            assert 0.0 <= lo <= hi <= 1.0


def test_steps_to_threshold_averages_the_seeds_that_reach_it_and_counts_them(bench_root):
    summary = bench.summarise(bench_root[0] / "runs", bench_root[0] / "out", ARMS, SEEDS, "toy", "cmd", 2,
                              threshold=-1.0)  # every evaluation reaches it, the first at step 0
    for m in summary["methods"].values():
        assert m["seeds_reaching_threshold"] == 2 and m["steps_to_threshold_mean"] == 0.0
    never = bench.summarise(bench_root[0] / "runs", bench_root[0] / "out", ARMS, SEEDS, "toy", "cmd", 2,
                            threshold=2.0)  # no success rate reaches 2
    assert all(m["seeds_reaching_threshold"] == 0 and m["steps_to_threshold_mean"] is None
               for m in never["methods"].values())


def test_the_table_does_not_count_a_threshold_the_pre_trained_policy_already_meets_as_reached(bench_root):
    met = bench.summarise(bench_root[0] / "runs", bench_root[0] / "out", ARMS, SEEDS, "toy", "cmd", 2,
                          threshold=-1.0)
    rows = bench.markdown_table([met]).splitlines()[2:]
    assert rows and all("| at start (threshold -1.00" in row and "pre-trained ≥ it) |" in row for row in rows)
    not_met = bench.summarise(bench_root[0] / "runs", bench_root[0] / "out", ARMS, SEEDS, "toy", "cmd", 2,
                              threshold=2.0)
    assert all("| never (0/2 seeds" in row for row in bench.markdown_table([not_met]).splitlines()[2:])


def test_arms_left_out_of_a_rerun_keep_their_published_evaluations(bench_root, tmp_path):
    """`inril bench paper --arms`: re-run some arms; the others come from the summary's all_evals.csv, so their
    runs (runs/ does not travel with the repository) are not needed."""
    root, _ = bench_root
    full = summary_of(root)
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    kept = bench.kept_evals(out, ["rl-only", "bc-reg"], SEEDS)
    runs_of_in_ril_only = tmp_path / "runs"
    for seed in SEEDS:  # a fresh checkout that holds only the re-run arm's runs
        shutil.copytree(root / "runs" / ARMS[0].run_name(seed), runs_of_in_ril_only / ARMS[0].run_name(seed))
    merged = bench.summarise(runs_of_in_ril_only, out, ARMS, SEEDS, "toy", "inril bench …", 2, kept=kept)
    for label in METHODS:
        for key in ("final_mean", "final_per_seed", "during_mean", "steps_to_threshold_per_seed"):
            assert merged["methods"][label][key] == full["methods"][label][key]
    assert merged["threshold"] == full["threshold"]
    with pytest.raises(bench.BenchError, match="no evaluations of bc-reg seed 5"):
        bench.kept_evals(out, ["bc-reg"], [5])
