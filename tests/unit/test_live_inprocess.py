"""The in-process live run (`inril bench live`): the graph's LiveLearner fed by one env, episode after episode."""
from __future__ import annotations

import csv

import pytest
import torch

import toy_run
from inril_core.checkpoint import load_latest
from inril_core.live_inprocess import run_live_inprocess

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    root = toy_run.pretrained_toy_root(tmp_path_factory, "live_inprocess")
    cfg = toy_run.toy_config(root, "rl.critic_warmup_iters=0")
    run_dir = root / "live"
    summary = run_live_inprocess(cfg, run_dir, env_steps=120, episodes_per_update=2, env_steps_per_update=30)
    episodes = list(csv.DictReader((run_dir / "episodes.csv").open()))
    return summary, episodes, run_dir


def test_every_played_episode_is_logged_with_the_version_that_acted_it(live_run):
    summary, episodes, _ = live_run
    assert len(episodes) == summary["episodes"] and summary["env_steps"] >= 120
    assert sum(int(e["length"]) for e in episodes) == summary["env_steps"]
    versions = [int(e["policy_version"]) for e in episodes]
    assert versions == sorted(versions) and versions[0] == 0 and versions[-1] >= 1


def test_each_update_is_a_checkpointed_version_learned_from_at_least_the_step_floor(live_run):
    summary, _, run_dir = live_run
    assert summary["updates"] >= 1
    step, _, state = load_latest(run_dir / "learner")
    assert step == state["version"] == summary["updates"]
    metrics = list(csv.DictReader((run_dir / "learner" / "metrics.csv").open()))
    assert len(metrics) == summary["updates"]
    steps = [int(m["env_steps"]) for m in metrics]
    assert all(b - a >= 30 for a, b in zip([0] + steps, steps))
