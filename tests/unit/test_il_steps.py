"""`inril bench il-steps`: success of the pre-trained policy after IL steps alone, per il.lr and Adam priming."""
import json

import pytest
import torch
from omegaconf import OmegaConf

import toy_run
from inril_core.il_steps import il_step_plan, measure_il_steps
from inril_core.training import build_learner, load_pretrained_agent, seed_everything
from test_cli import assert_one_line_error, invoke

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_run.pretrained_toy_root(tmp_path_factory, "il-steps")


def test_the_plan_crosses_every_lr_with_every_priming_and_sorts_the_steps():
    arms, milestones = il_step_plan([1e-4, 1e-5], [0, 32], [10, 1, 10])
    assert arms == [{"lr": 1e-4, "prime_batches": 0}, {"lr": 1e-4, "prime_batches": 32},
                    {"lr": 1e-5, "prime_batches": 0}, {"lr": 1e-5, "prime_batches": 32}]
    assert milestones == [1, 10]
    for bad in (([0.0], [0], [1]), ([1e-4], [-1], [1]), ([1e-4], [0], [0, 5]), ([], [0], [1])):
        with pytest.raises(ValueError):
            il_step_plan(*bad)


def test_each_arm_starts_from_the_pre_trained_weights_and_steps_cumulatively(root, tmp_path):
    cfg = toy_run.toy_config(root, "separation=network", algo="residual_ppo")
    arms, milestones = il_step_plan([1e-3], [0, 4], [1, 3])
    summary = measure_il_steps(cfg, milestones, arms, tmp_path, "test")
    rows = summary["rows"]
    assert [(r["prime_batches"], r["il_steps"]) for r in rows] == [(0, 1), (0, 3), (4, 1), (4, 3)]
    assert all(0.0 <= r["success_rate"] <= 1.0 and r["n_episodes"] == 2 for r in rows)
    # after 3 fresh-Adam steps (an evaluation between steps 1 and 3) the probe's held-out IL loss is the real
    # learner's after 3 injections
    seed_everything(cfg.seed)
    reference = build_learner(OmegaConf.merge(cfg, {"il": arms[0]}),
                              load_pretrained_agent(cfg.train.pretrained, cfg.task), "cpu")
    for _ in range(3):
        reference.imitation.inject(1)
    assert rows[1]["heldout_il_loss"] == pytest.approx(reference.imitation.heldout_loss(), rel=1e-5)
    assert rows[0]["heldout_il_loss"] != rows[1]["heldout_il_loss"]
    assert summary["pretrained_eval"]["heldout_il_loss"] not in {r["heldout_il_loss"] for r in rows}
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["rows"] == json.loads(json.dumps(rows))
    assert "| 0.001 | 4 | 3 |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "il_steps.png").stat().st_size > 0


def test_the_command_writes_its_report_and_refuses_bad_steps(root, tmp_path):
    overrides = [*toy_run.toy_overrides(root, "residual_ppo"), "separation=network"]
    result = invoke("bench", "il-steps", *overrides, "--steps", "1", "--lrs", "1e-3", "--primes", "2",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][0]["prime_batches"] == 2
    assert_one_line_error(invoke("bench", "il-steps", *overrides, "--steps", "0"), "--steps")
