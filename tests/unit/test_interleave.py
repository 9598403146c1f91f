"""The IN-RIL schedule (one IL injection per m RL steps) and the learner that follows it, incl. the BC-reg baseline."""
import math

import pytest
import torch

import toy_run
from inril_core.interleave import InterleaveSchedule

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ schedule


def injection_steps(schedule: InterleaveSchedule, n: int) -> list[int]:
    return [step for step in range(1, n + 1) if schedule.on_rl_step()]


@pytest.mark.parametrize("m", [1, 5, 10, 30])
def test_exactly_one_injection_per_m_rl_steps(m):
    steps = injection_steps(InterleaveSchedule(m), 1000)
    assert steps == list(range(m, 1001, m))


def test_m_inf_never_injects():
    schedule = InterleaveSchedule(math.inf)
    assert injection_steps(schedule, 1000) == [] and schedule.rl_steps == 1000 and not schedule.enabled


@pytest.mark.parametrize("m", [0, 0.5, -3])
def test_m_below_one_is_refused(m):
    with pytest.raises(ValueError, match="m must be >= 1"):
        InterleaveSchedule(m)


@pytest.mark.parametrize("rho, bound", [(1.0, 2), (-1.0, 30)])
def test_adaptive_m_moves_to_the_bound_the_gradient_alignment_asks_for(rho, bound):
    schedule = InterleaveSchedule(10, adaptive=True, m_min=2, m_max=30)
    assert schedule.current_m == 10  # no measurement yet: the configured m
    schedule.observe_cosine(0.0)     # orthogonal gradients: half way
    history = [schedule.current_m]
    for _ in range(100):
        schedule.observe_cosine(rho)
        history.append(schedule.current_m)
    assert history[0] == 16 and history[-1] == bound
    assert all(abs(b - bound) <= abs(a - bound) for a, b in zip(history, history[1:]))  # monotone approach
    assert len(set(history)) > 3  # gradually (EMA), not in one jump


def test_adaptive_m_stays_within_its_bounds_whatever_rho_does():
    schedule = InterleaveSchedule(10, adaptive=True, m_min=3, m_max=25, ema=0.5)
    for rho in torch.empty(2000).uniform_(-1, 1, generator=torch.Generator().manual_seed(0)).tolist() + [1.0] * 50:
        schedule.observe_cosine(rho)
        assert 3 <= schedule.current_m <= 25


@pytest.mark.parametrize("rho, low, high", [(-0.1, 24, 30), (0.0, 15, 17), (0.1, 2, 8)])
def test_adaptive_m_responds_to_the_small_cosines_actually_measured(rho, low, high):
    schedule = InterleaveSchedule(10, adaptive=True, m_min=2, m_max=30)
    schedule.observe_cosine(rho)
    assert low <= schedule.current_m <= high


def test_adaptive_m_is_spaced_by_current_m():
    schedule = InterleaveSchedule(10, adaptive=True, m_min=2, m_max=30)
    schedule.observe_cosine(1.0)  # first observation sets the EMA: m -> m_min
    assert injection_steps(schedule, 20) == list(range(2, 21, 2))


def test_adaptive_flag_is_ignored_for_rl_only():
    schedule = InterleaveSchedule(math.inf, adaptive=True)
    schedule.observe_cosine(1.0)
    assert injection_steps(schedule, 100) == []


def test_state_dict_round_trip_continues_the_count():
    straight = InterleaveSchedule(7)
    expected = injection_steps(straight, 100)

    first = InterleaveSchedule(7)
    head = injection_steps(first, 45)
    resumed = InterleaveSchedule(7)
    resumed.load_state_dict(first.state_dict())
    tail = [45 + s for s in injection_steps(resumed, 55)]

    assert head + tail == expected
    assert resumed.state_dict() == straight.state_dict()


# ------------------------------------------------------------------------------------------------ learner


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("interleave")
    toy_run.write_toy_demos(root / "demos")
    return root


def learner_and_rollout(root, *overrides, seed=0):
    learner = toy_run.toy_learner(toy_run.toy_config(root, *overrides), seed=seed)
    torch.manual_seed(seed)
    return learner, toy_run.synthetic_rollout(learner.algo)


def test_injection_records_equal_rl_steps_floor_divided_by_m(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "interleave.m=3", "rl.update_epochs=4")
    total = 0
    for _ in range(2):  # the count carries across iterations
        _, injections = learner.update(rollout, train_actor=True)
        total += len(injections)
    rl_steps = learner.schedule.rl_steps
    assert rl_steps > 6 and rl_steps % 3 != 0  # a remainder, so the floor matters
    assert total == rl_steps // 3


def test_injection_records_name_the_rl_step_they_follow(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "interleave.m=3")
    _, injections = learner.update(rollout, train_actor=True)
    assert [r["rl_step"] for r in injections] == list(range(3, learner.schedule.rl_steps + 1, 3))


def test_rl_only_makes_no_injection_and_never_steps_the_il_optimiser(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "method=rl-only")
    _, injections = learner.update(rollout, train_actor=True)
    assert learner.schedule.rl_steps > 0
    assert injections == [] and learner.imitation.optimizer.state_dict()["state"] == {}


def test_critic_warmup_iterations_neither_count_rl_steps_nor_inject(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "interleave.m=1")
    _, injections = learner.update(rollout, train_actor=False)
    assert injections == [] and learner.schedule.rl_steps == 0


def test_a_rollout_without_a_reward_trains_the_critic_only(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "interleave.m=1", "train.skip_rewardless_rollouts=true")
    rollout.rewards.zero_()  # a sparse-reward iteration without a success: true advantages are all zero
    actor = [p.detach().clone() for p in learner.algo.actor_parameters()]
    critic = [p.detach().clone() for p in learner.algo.critic.parameters()]
    metrics, injections = learner.update(rollout, train_actor=True)
    assert metrics["actor_trained"] == 0.0 and injections == [] and learner.schedule.rl_steps == 0
    assert all(torch.equal(a, p) for a, p in zip(actor, learner.algo.actor_parameters()))
    assert not all(torch.equal(c, p) for c, p in zip(critic, learner.algo.critic.parameters()))


def test_one_reward_is_enough_to_train_the_actor(demo_root):
    learner, rollout = learner_and_rollout(demo_root, "interleave.m=1", "train.skip_rewardless_rollouts=true")
    rollout.rewards.zero_()
    rollout.rewards[2, 1] = 1.0  # one success in the whole rollout
    metrics, injections = learner.update(rollout, train_actor=True)
    assert metrics["actor_trained"] == 1.0 and learner.schedule.rl_steps > 0
    assert len(injections) == learner.schedule.rl_steps


def actor_after_one_update(root, *overrides) -> list[torch.Tensor]:
    learner, rollout = learner_and_rollout(root, "method=bc-reg", *overrides)
    torch.manual_seed(1)
    learner.update(rollout, train_actor=True)
    return [p.detach().clone() for p in learner.algo.actor_parameters()]


def test_learner_update_is_deterministic_from_the_same_state(demo_root):
    a = actor_after_one_update(demo_root, "bc_reg.lambda=0.0")
    b = actor_after_one_update(demo_root, "bc_reg.lambda=0.0")
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_bc_reg_lambda_changes_the_actor_update(demo_root):
    plain = actor_after_one_update(demo_root, "bc_reg.lambda=0.0")
    regularised = actor_after_one_update(demo_root, "bc_reg.lambda=0.5")
    assert not all(torch.equal(x, y) for x, y in zip(plain, regularised))
