"""A resumed fine-tuning run ends with exactly the parameters of the same run done in one go (CPU, toy task)."""
import shutil

import pytest
import torch

import toy_run
from inril_core.checkpoint import load_latest
from inril_core.training import FineTuneRun

torch.set_num_threads(1)
FULL_BUDGET = "train.env_steps=200"  # 7 iterations of at most 32 env steps on the toy task
SHORT_BUDGET = "train.env_steps=70"  # stops after 3 of them


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Toy demos and a (briefly) pre-trained policy shared by the runs of this module."""
    return toy_run.pretrained_toy_root(tmp_path_factory, "resume")


def config(root, run_dir, *extra):
    # interleave.m=2 so IL injections (and their optimiser) are part of what must resume exactly
    return toy_run.toy_config(root, f"run.dir={run_dir}", "interleave.m=2", "train.eval_every_steps=60", *extra)


def finished(cfg, resume=False) -> FineTuneRun:
    run = FineTuneRun(cfg, resume)
    run.run()
    return run


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def straight(root):
    return finished(config(root, root / "straight", FULL_BUDGET))


@pytest.fixture(scope="module")
def extended(root):
    """Stopped after 3 iterations (a smaller budget), then resumed with the full budget on the same run.dir."""
    run_dir = root / "extended"
    first = finished(config(root, run_dir, SHORT_BUDGET))
    assert 0 < first.iteration < 7
    return finished(config(root, run_dir, FULL_BUDGET), resume=True)


def test_resumed_run_does_the_same_iterations(straight, extended):
    assert (extended.iteration, extended.env_steps) == (straight.iteration, straight.env_steps)
    assert straight.learner.schedule.injections > 0


def test_resumed_run_ends_with_identical_actor(straight, extended):
    assert same_parameters(straight.algo.actor_ft, extended.algo.actor_ft)


def test_resumed_run_ends_with_identical_critic(straight, extended):
    assert same_parameters(straight.algo.critic, extended.algo.critic)


def test_resumed_run_ends_with_identical_optimiser_and_schedule_state(straight, extended):
    a, b = straight.learner.state_dict(), extended.learner.state_dict()
    assert a["schedule"] == b["schedule"]
    for name in ("actor_opt", "critic_opt"):
        for sa, sb in zip(a["algo"][name]["state"].values(), b["algo"][name]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resumed_run_logs_the_same_rl_metrics(straight, extended):
    assert (straight.run_dir / "metrics.csv").read_text() == (extended.run_dir / "metrics.csv").read_text()


def test_resume_after_a_crash_repeats_the_lost_iterations_exactly(root, straight, tmp_path):
    """A crash after checkpoint k: the newer checkpoints never got written; resuming redoes them identically."""
    run_dir = tmp_path / "crashed"
    finished(config(root, run_dir, FULL_BUDGET, "run.keep_checkpoints=10"))
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    for newer in checkpoints[4:]:
        shutil.rmtree(newer)
    assert load_latest(run_dir)[0] == 3

    resumed = finished(config(root, run_dir, FULL_BUDGET), resume=True)

    assert same_parameters(straight.algo.actor_ft, resumed.algo.actor_ft)
    assert same_parameters(straight.algo.critic, resumed.algo.critic)
    for name in ("metrics.csv", "injections.csv", "evals.csv"):  # no row of the lost iterations is left twice
        assert (run_dir / name).read_text() == (straight.run_dir / name).read_text()


def test_resume_without_a_checkpoint_says_to_start_without_resume(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="without --resume"):
        FineTuneRun(config(root, tmp_path / "fresh", FULL_BUDGET), resume=True)


def test_starting_over_an_existing_run_refuses_and_suggests_resume(root, straight):
    with pytest.raises(FileExistsError, match="--resume"):
        FineTuneRun(config(root, straight.run_dir, FULL_BUDGET), resume=False)
