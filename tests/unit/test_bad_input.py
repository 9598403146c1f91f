"""Bad input fails early with a message that says what is wrong and what to do, and never destroys a good run."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import toy_env
import toy_run
from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.buffers import EmptyDemoStoreError
from inril_core.checkpoint import load_checkpoint, load_latest
from inril_core.episodes.store import EpisodeStore
from inril_core.training import FineTuneRun, pretrain, train

torch.set_num_threads(1)
POISON_FROM_ITERATION = 3


class PoisonedReach(toy_env.PointReach):
    """The toy task, except that training rollouts from iteration 3 on observe NaN (a sensor gone bad).

    FineTuneRun.collect resets env i of iteration t with seed 1_000_000 * cfg.seed + 1000 * t + i (cfg.seed = 0
    here); evaluation seeds start at 1_000_003 and stay clean.
    """

    poisoned = False

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.poisoned = seed < 1_000_000 and seed // 1000 >= POISON_FROM_ITERATION
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return (np.full_like(obs, np.nan) if self.poisoned else obs), reward, terminated, truncated, info


if "PoisonedReach-v0" not in gym.registry:
    gym.register("PoisonedReach-v0", entry_point=PoisonedReach)


@pytest.fixture(scope="module")
def pretrained_root(tmp_path_factory):
    return toy_run.pretrained_toy_root(tmp_path_factory, "bad")


def test_empty_demo_store_says_how_to_make_demos(tmp_path):
    EpisodeStore(tmp_path / "demos")  # exists, holds nothing
    with pytest.raises(EmptyDemoStoreError, match="inril demos make"):
        pretrain(toy_run.toy_config(tmp_path))


def test_demos_with_the_wrong_observation_size_name_the_dimensions(tmp_path):
    toy_run.write_toy_demos(tmp_path / "demos", n_episodes=2, obs_pad=3)  # 7-dim observations, task wants 4
    with pytest.raises(ValueError, match=r"observations have 7 dims.*expects 4.*env.obs_dim"):
        pretrain(toy_run.toy_config(tmp_path))


def test_nan_observation_is_refused_by_the_agent(pretrained_root):
    agent = DiffusionAgent.from_tensors(load_latest(pretrained_root / "pre")[1])
    obs = np.zeros((2, 4), np.float32)
    obs[1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        agent.obs_tensor(obs)


def test_observation_of_the_wrong_shape_is_refused_by_the_agent(pretrained_root):
    agent = DiffusionAgent.from_tensors(load_latest(pretrained_root / "pre")[1])
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        agent.obs_tensor(np.zeros((2, 5), np.float32))


def test_missing_pretrained_policy_says_to_run_inril_pretrain(tmp_path, pretrained_root):
    cfg = toy_run.toy_config(pretrained_root, f"train.pretrained={tmp_path / 'nothing'}", f"run.dir={tmp_path / 'run'}")
    with pytest.raises(FileNotFoundError, match="inril pretrain"):
        train(cfg)


def test_nan_advantages_stop_the_update_instead_of_corrupting_the_weights(pretrained_root):
    learner = toy_run.toy_learner(toy_run.toy_config(pretrained_root))
    torch.manual_seed(0)
    batch = learner.algo.prepare(toy_run.synthetic_rollout(learner.algo))
    batch.advantages[0] = float("nan")
    before = [p.detach().clone() for p in learner.algo.actor_parameters()]
    with pytest.raises(NonFiniteError, match="last checkpoint kept"):
        learner.algo.update(batch)
    assert all(torch.equal(p, q) for p, q in zip(learner.algo.actor_parameters(), before))


@pytest.fixture(scope="module")
def failed_run(pretrained_root):
    """A run whose env turns to NaN at iteration 3, after checkpoints at iterations 0..3 were written."""
    cfg = toy_run.toy_config(pretrained_root, "env.id=test_bad_input:PoisonedReach-v0",
                             f"run.dir={pretrained_root / 'poisoned'}", "train.env_steps=1000",
                             "run.checkpoint_every=1", "run.keep_checkpoints=10")
    run = FineTuneRun(cfg, resume=False)
    with pytest.raises(NonFiniteError) as info:
        run.run()  # closes its log and envs on the way out
    return run, info.value


def test_nan_observation_in_a_run_stops_it_with_non_finite_error(failed_run):
    run, error = failed_run
    assert "NaN" in str(error) and run.iteration == POISON_FROM_ITERATION


def test_failed_run_keeps_its_last_good_checkpoint(failed_run):
    run, _ = failed_run
    step, tensors, state = load_latest(run.run_dir)
    assert step == POISON_FROM_ITERATION and state["iteration"] == POISON_FROM_ITERATION
    assert all(torch.isfinite(t).all() for name, t in tensors.items() if t.is_floating_point())
    agent = DiffusionAgent.from_tensors(tensors)
    assert np.isfinite(agent.act_deterministic(np.zeros((1, 4), np.float32))).all()


def test_failed_run_leaves_every_checkpoint_complete(failed_run):
    run, _ = failed_run
    root = run.run_dir / "checkpoints"
    steps = sorted(p.name for p in root.iterdir() if not p.name.startswith("latest"))
    assert steps == [f"step_{i:09d}" for i in range(POISON_FROM_ITERATION + 1)]  # no half-written temp directory
    for name in steps:
        load_checkpoint(root / name)
    assert (root / "latest").read_text().strip() == steps[-1]


def test_failed_run_can_resume_from_its_last_good_checkpoint(failed_run, pretrained_root):
    run, _ = failed_run
    cfg = toy_run.toy_config(pretrained_root, f"run.dir={run.run_dir}")  # the clean env: the sensor was fixed
    resumed = FineTuneRun(cfg, resume=True)
    try:
        assert resumed.iteration == POISON_FROM_ITERATION
        resumed.update(resumed.collect())
    finally:
        resumed.log.close()
        resumed.envs.close()
