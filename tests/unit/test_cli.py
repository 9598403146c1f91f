"""The `inril` command: discoverable help, config printing, and one-line errors (exit 2, no traceback)."""
import json
import re

import pytest
import torch
from typer.testing import CliRunner

import toy_run
from inril_core.cli import app

torch.set_num_threads(1)
COMMANDS = ("train", "pretrain", "eval", "demos", "expert", "bench", "config")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="inril", env={"COLUMNS": "240"})


def assert_one_line_error(result, *phrases: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an escaped exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in lines[0]


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0 and "Usage: inril" in result.output
    listed = re.findall(r"^│ (\w+)\s{2,}\S", result.output, flags=re.M)
    assert set(COMMANDS) <= set(listed)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_a_one_line_help(command):
    row = re.search(rf"^│ {command}\s{{2,}}(\S.*?)\s*│$", invoke("--help").output, flags=re.M)
    assert row and len(row.group(1)) > 10


def test_config_prints_the_resolved_config_with_the_tasks_env_id():
    result = invoke("config", "task=can")
    assert result.exit_code == 0
    assert "id: inril_sim:inril/Can-v0" in result.stdout


def test_config_applies_overrides():
    result = invoke("config", "task=lift@robosuite", "interleave.m=7")
    assert "id: inril_sim:inril/Lift-robosuite-v0" in result.stdout and re.search(r"^  m: 7$", result.stdout, re.M)


def test_train_with_unknown_task_is_a_one_line_error():
    assert_one_line_error(invoke("train", "task=nope"), "unknown task 'nope'", "lift")


def test_config_with_unknown_key_is_a_one_line_error():
    assert_one_line_error(invoke("config", "interleave.mm=3"), "interleave.mm", "valid keys")


def test_config_with_unparseable_value_is_a_one_line_error():
    assert_one_line_error(invoke("config", "policy.denoiser.hidden_dims=[64,64"), "policy.denoiser.hidden_dims")


def test_train_without_a_pretrained_policy_says_to_run_inril_pretrain(tmp_path):
    toy_run.write_toy_demos(tmp_path / "demos", n_episodes=2)
    result = invoke("train", *toy_run.toy_overrides(tmp_path), f"train.pretrained={tmp_path / 'none'}")
    assert_one_line_error(result, "inril pretrain")


def test_pretrain_with_an_empty_demo_store_is_a_one_line_error(tmp_path):
    result = invoke("pretrain", *toy_run.toy_overrides(tmp_path), f"demos.path={tmp_path}")
    assert_one_line_error(result, "inril demos make")


def test_pretrain_then_eval_on_the_toy_task(tmp_path):
    toy_run.write_toy_demos(tmp_path / "demos")
    overrides = toy_run.toy_overrides(tmp_path)
    assert invoke("pretrain", *overrides).exit_code == 0

    result = invoke("eval", str(tmp_path / "pre"), *overrides)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["env"] == toy_run.TOY_ENV_ID and report["n_episodes"] == 2 and 0 <= report["success_rate"] <= 1


def test_eval_takes_the_runs_own_task_and_refuses_acting_keys_its_algorithm_lacks(tmp_path):
    """Without task= the run's own config decides the env (the toy env here, not the default Lift); rl.* keys reach
    the policy, so one the run's algorithm does not have is a one-line error, not silently ignored."""
    toy_run.write_toy_demos(tmp_path / "demos")
    assert invoke("pretrain", *toy_run.toy_overrides(tmp_path)).exit_code == 0

    result = invoke("eval", str(tmp_path / "pre"), "train.eval_episodes=1", "train.eval_n_envs=1")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["env"] == toy_run.TOY_ENV_ID and report["n_episodes"] == 1
    assert_one_line_error(invoke("eval", str(tmp_path / "pre"), "rl.n_candidates=1"), "rl.n_candidates")


def test_bench_rollout_workers_writes_its_report(tmp_path):
    result = invoke("bench", "rollout-workers", "--workers", "1", "--seconds", "0.3", "--out", str(tmp_path),
                    "env.n_envs=2", "env.max_episode_steps=20")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["vector"] for r in summary["rows"]] == ["sync", "ray"] and (tmp_path / "report.md").exists()


def test_bench_paper_names_an_unknown_experiment():
    assert_one_line_error(invoke("bench", "paper", "--only", "nonsense"), "--only nonsense", "m-sweep")


def test_bench_paper_refuses_a_task_without_a_budget_and_names_those_with_one():
    assert_one_line_error(invoke("bench", "paper", "--tasks", "hopper,can"), "--tasks can", "reduced", "walker2d")


def test_pretraining_reports_the_tasks_own_metric():
    from omegaconf import OmegaConf

    from inril_core.cli import _pretrained_result

    report = {"eval": {"success_rate": 0.0, "mean_return": 848.4}}
    assert _pretrained_result(OmegaConf.create({"train": {"metric": "mean_return"}}), report) == "mean return 848.4"
    assert _pretrained_result(OmegaConf.create({"train": {"metric": "success_rate"}}), report) == "success 0.00"


def test_bench_furniture_expert_writes_both_success_rates(tmp_path):
    out = tmp_path / "expert.json"
    result = invoke("bench", "furniture-expert", "--n", "1", "--horizon", "5", "--randomness", "low",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    assert (row["randomness"], row["episodes"], row["horizon"]) == ("low", 1, 5)
    assert row["reward_check"] == row["strict_check"] == 0.0 and row["rows"][0]["steps"] == 5  # 5 steps: no table


def test_bench_furniture_expert_names_the_levels_it_has():
    assert_one_line_error(invoke("bench", "furniture-expert", "--randomness", "high"), "low, med")


def test_bench_paper_names_the_arms_it_has():
    assert_one_line_error(invoke("bench", "paper", "--only", "algorithms", "--arms", "idql/in-rill"),
                          "--arms idql/in-rill", "idql/in-ril")


def test_bench_paper_gives_an_ablation_runs_of_its_own_and_leaves_the_readme_to_the_matrix(monkeypatch, tmp_path):
    """Overrides given to `bench paper` apply to every arm, so their runs get a folder of their own; a summary
    written outside docs/results/paper (an ablation's --out) does not replace the README's matrix table."""
    from pathlib import Path

    from inril_core import bench, cli

    calls, written = [], []
    monkeypatch.setattr(cli, "_run_benchmark", lambda task_args, arms, seeds, runs_root, out_dir, *a, **k:
                        calls.append((task_args, runs_root, out_dir)))
    monkeypatch.setattr(bench, "write_readme_table", lambda readme, table: written.append(readme))
    monkeypatch.setattr(cli, "_table_of", lambda out: "table")
    args = ("bench", "paper", "--only", "algorithms", "--tasks", "lift", "--arms", "idql/in-ril")
    assert invoke(*args, "rl.advantage_beta=3", "--out", str(tmp_path)).exit_code == 0
    (task_args, runs_root, out_dir), = calls
    assert task_args[0] == "task=lift" and task_args[-1] == "rl.advantage_beta=3"
    assert runs_root == Path("runs/bench/paper/reduced/lift/rl.advantage-beta-3")
    assert out_dir == tmp_path / "algorithms-lift" and written == []
    assert invoke(*args).exit_code == 0
    assert calls[1][1] == Path("runs/bench/paper/reduced/lift") and written == [Path("README.md")]
