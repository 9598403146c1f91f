"""The sample-efficiency benchmark orchestration on the toy task: skip finished runs, resume interrupted ones,
and summarise every method's evaluations into summary.json / all_evals.csv / a plot."""

from __future__ import annotations

import json
import shutil

import pytest
import toy_run

from inril_core import bench
from inril_core.training import train

METHODS = ("in-ril", "rl-only", "bc-reg")


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    root = toy_run.pretrained_toy_root(tmp_path_factory, "bench")
    calls: list[tuple[str, int, bool]] = []

    def make_cfg(method, seed, run_dir):
        return toy_run.toy_config(root, f"method={method}", f"seed={seed}", f"run.dir={run_dir}")

    def recording_train(cfg, resume):
        calls.append((cfg.method, cfg.seed, resume))
        return train(cfg, resume)

    bench.run_all(make_cfg, root / "runs", METHODS, [0, 1], recording_train, echo=lambda _: None)
    return root, make_cfg, recording_train, calls


def test_every_method_and_seed_runs_once(bench_root):
    _, _, _, calls = bench_root
    assert sorted(calls) == sorted((m, s, False) for m in METHODS for s in (0, 1))


def test_finished_runs_are_skipped_and_interrupted_ones_resume(bench_root):
    root, make_cfg, recording_train, calls = bench_root
    interrupted = root / "runs" / "rl-only-s1"
    (interrupted / "report.json").unlink()
    newest = sorted((interrupted / "checkpoints").glob("step_*"))[-1]
    shutil.rmtree(newest)  # as if the process died before its last checkpoint
    calls.clear()
    bench.run_all(make_cfg, root / "runs", METHODS, [0, 1], recording_train, echo=lambda _: None)
    assert calls == [("rl-only", 1, True)] and (interrupted / "report.json").exists()


def test_summary_has_the_documented_fields(bench_root):
    root = bench_root[0]
    summary = bench.summarise(root / "runs", root / "out", METHODS, [0, 1], "toy", "dppo", "inril bench …", 2)
    assert set(summary) >= {"task", "algo", "seeds", "env_steps", "threshold", "pretrained_success", "methods",
                            "command"}
    assert set(summary["methods"]) == set(METHODS)
    for m in summary["methods"].values():
        lo, hi = m["final_success_ci95"]
        assert lo <= m["final_success_mean"] <= hi and len(m["final_success_per_seed"]) == 2
    assert json.loads((root / "out" / "summary.json").read_text()) == summary
    assert (root / "out" / "learning_curves.png").stat().st_size > 0


def test_all_evals_csv_has_a_row_per_evaluation(bench_root):
    root = bench_root[0]
    bench.summarise(root / "runs", root / "out", METHODS, [0, 1], "toy", "dppo", "cmd", 2)
    rows = (root / "out" / "all_evals.csv").read_text().strip().splitlines()
    expected = sum(len((root / "runs" / f"{m}-s{s}" / "evals.csv").read_text().strip().splitlines()) - 1
                   for m in METHODS for s in (0, 1))
    assert len(rows) - 1 == expected


def test_threshold_defaults_to_rl_only_final_mean(bench_root):
    root = bench_root[0]
    summary = bench.summarise(root / "runs", root / "out", METHODS, [0, 1], "toy", "dppo", "cmd", 2)
    assert summary["threshold"] == pytest.approx(summary["methods"]["rl-only"]["final_success_mean"], abs=1e-4)


def test_markdown_table_has_a_row_per_method(bench_root):
    root = bench_root[0]
    summary = bench.summarise(root / "runs", root / "out", METHODS, [0, 1], "toy", "dppo", "cmd", 2)
    table = bench.markdown_table([summary])
    assert [line.split("|")[3].strip() for line in table.splitlines()[2:]] == list(METHODS)


def test_success_intervals_stay_within_zero_and_one(bench_root):
    root = bench_root[0]
    summary = bench.summarise(root / "runs", root / "out", METHODS, [0, 1], "toy", "dppo", "cmd", 2)
    for m in summary["methods"].values():
        for lo, hi in (m["final_success_ci95"], m["mean_success_during_training_ci95"]):
            assert 0.0 <= lo <= hi <= 1.0
