"""Gym MuJoCo locomotion: an expert trained from scratch (no demos) and its noisy roll-outs as "medium" demos."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from inril_core.cli import app
from inril_core.config import ConfigError, load_config
from inril_core.episodes.store import EpisodeStore
from inril_core.training import load_policy

TASK = ["task=hopper", "device=cpu", "env.n_envs=2", "train.eval_episodes=2", "train.eval_n_envs=2"]
EXPERT = ["rl.n_chunk_steps=10", "rl.random_env_steps=20", "rl.batch_size=32", "rl.actor_hidden=[32]",
          "rl.critic_hidden=[32]", "train.eval_every_steps=40", "demos.expert_env_steps=80"]


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    root = tmp_path_factory.mktemp("hopper")
    result = CliRunner().invoke(app, ["expert", "train", *TASK, *EXPERT, f"demos.expert_run={root / 'expert'}"])
    assert result.exit_code == 0, result.output
    return root


def test_expert_training_runs_sac_from_scratch_without_demos(expert):
    report = json.loads((expert / "expert" / "report.json").read_text())
    assert report["algo"] == "rlpd" and report["metric"] == "mean_return" and report["env_steps"] >= 80
    saved = (expert / "expert" / "config.yaml").read_text()
    assert "use: false" in saved and "pretrained: scratch" in saved


def test_expert_policy_acts_one_step_at_a_time_on_raw_observations(expert):
    policy = load_policy(expert / "expert")
    actions = policy(np.zeros((3, 11), np.float32))
    assert actions.shape == (3, 1, 3) and np.all(np.abs(actions) <= 1.0)


def test_demos_from_the_expert_keep_every_episode_with_its_return(expert):
    store_dir = expert / "demos"
    result = CliRunner().invoke(app, ["demos", "make", *TASK, f"demos.expert_run={expert / 'expert'}",
                                      f"demos.path={store_dir}", "n=3", "demos.noise_levels=[0.0,0.5]"])
    assert result.exit_code == 0, result.output
    meta = EpisodeStore(store_dir, create=False).metadata()
    assert [m["noise"] for m in meta] == [0.0, 0.5, 0.0]
    episodes = list(EpisodeStore(store_dir, create=False))
    for m, e in zip(meta, episodes):
        assert m["source"] == "policy" and m["return"] == pytest.approx(float(e.rewards.sum()), rel=1e-5)
        assert m["terminated"] == (len(e) < 1000)  # the hopper falls (terminates) or runs out of time


def test_in_ril_without_demos_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="method=rl-only"):
        load_config(["task=hopper", "demos.use=false"])
