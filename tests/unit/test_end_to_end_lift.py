"""The whole pipeline on the real Lift task at tiny sizes: scripted demos -> BC pre-training -> IN-RIL fine-tuning.

Drives the `inril` CLI (the way a user runs it) and checks every artefact a run promises, not just exit codes.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from inril_core.checkpoint import load_latest
from inril_core.cli import app


@pytest.fixture(scope="module")
def lift_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("e2e")
    common = [
        "task=lift", f"demos.path={root}/demos", f"pretrain.run_dir={root}/pre", "policy.n_steps=8",
        "policy.denoiser.hidden_dims=[64,64,64]", "rl.ft_denoising_steps=4", "env.n_envs=2", "train.eval_n_envs=4",
        "train.eval_episodes=4", "pretrain.eval_episodes=4", "rl.critic_warmup_iters=0", "interleave.m=2",
        "rl.minibatch_size=128", "rl.n_chunk_steps=20",
    ]
    runner = CliRunner()
    results = {
        "demos": runner.invoke(app, ["demos", "make", *common, "n=4"]),
        "pretrain": runner.invoke(app, ["pretrain", *common, "pretrain.max_epochs=15"]),
        # a 15-epoch policy never lifts in 300 steps: without the switch no rollout has a reward to step the actor on
        "train": runner.invoke(app, ["train", *common, f"run.dir={root}/run", "train.env_steps=300",
                                     "train.eval_every_steps=1", "train.skip_rewardless_rollouts=false"]),
    }
    return root, results


def test_every_stage_exits_zero(lift_run):
    _, results = lift_run
    assert {name: r.exit_code for name, r in results.items()} == {"demos": 0, "pretrain": 0, "train": 0}, {
        name: r.output for name, r in results.items()}


def test_demo_store_holds_successful_scripted_lift_episodes(lift_run):
    from inril_core.episodes.store import EpisodeStore

    meta = EpisodeStore(lift_run[0] / "demos", create=False).metadata()
    assert len(meta) == 4 and all(m["success"] and m["source"] == "scripted" and m["task"] == "lift" for m in meta)


def test_pretrain_writes_checkpoint_report_and_loss_plot(lift_run):
    pre = lift_run[0] / "pre"
    report = json.loads((pre / "report.json").read_text())
    assert load_latest(pre) is not None and (pre / "pretrain_loss.png").stat().st_size > 0
    assert 0.0 <= report["eval"]["success_rate"] <= 1.0 and report["eval"]["n_episodes"] == 4


def test_train_logs_injections_with_gradient_cosine(lift_run):
    with (lift_run[0] / "run" / "injections.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(-1.0 <= float(r["rho"]) <= 1.0 for r in rows)


def test_train_writes_evals_curve_and_report(lift_run):
    run = lift_run[0] / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["env_steps"] >= 300 and len(report["evals"]) >= 2
    assert (run / "learning_curve.png").stat().st_size > 0 and any((run / "tb").iterdir())


def test_resume_continues_the_run_with_its_own_config_and_a_larger_budget(lift_run):
    root, _ = lift_run
    run = root / "run"
    before = json.loads((run / "report.json").read_text())
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "train.env_steps=500"])
    after = json.loads((run / "report.json").read_text())
    assert result.exit_code == 0, result.output
    assert after["env_steps"] >= 500 > before["env_steps"] and after["evals"][: len(before["evals"])] == before["evals"]
