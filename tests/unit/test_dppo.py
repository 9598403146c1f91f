"""DPPO: exploration chains, their log-probs, the update's direction, the frozen base, the clip schedule."""

import pytest
import torch

import toy_run
from inril_core.rl.dppo import DPPO
from inril_core.rl.ppo import minibatch_indices

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dppo")
    toy_run.write_toy_demos(root / "demos")
    return root


@pytest.fixture
def algo(demo_root) -> DPPO:
    cfg = toy_run.toy_config(demo_root, "rl.actor_lr=1.0e-3")
    return DPPO(toy_run.toy_agent(cfg, seed=0), cfg.rl)


def test_explore_returns_a_chain_of_k_plus_one_states_ending_in_the_chunk(algo):
    torch.manual_seed(0)
    obs = torch.rand(64, 4) * 2 - 1
    chunk, chain = algo.explore(obs)
    K, H, A = algo.K, algo.policy.horizon, algo.policy.act_dim
    assert chunk.shape == (64, H, A) and chain.shape == (64, K + 1, H, A)
    last = chain[:, -1]
    inside = last.abs() <= 1
    assert inside.any() and torch.equal(chunk[inside], last[inside])
    assert torch.equal(chunk, last.clamp(-1, 1))


def test_chain_steps_are_draws_from_the_distribution_log_prob_scores(algo):
    """(x_next - mean) / std over the fine-tuned steps is standard normal: the chain and log_prob agree on k."""
    torch.manual_seed(1)
    obs = torch.rand(256, 4) * 2 - 1
    _, chain = algo.explore(obs)
    z = []
    with torch.no_grad():
        for j in range(algo.K):
            k = torch.full((256,), algo.K - 1 - j, dtype=torch.long)
            mean, std = algo.policy.reverse_step(chain[:, j], k, obs, algo.actor_ft)
            z.append((chain[:, j + 1] - mean) / std.clamp(min=algo.cfg.min_sampling_std))
    z = torch.cat(z)
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05


def test_log_prob_of_the_old_chain_equals_old_logp_after_prepare(algo):
    torch.manual_seed(2)
    batch = algo.prepare(toy_run.synthetic_rollout(algo))
    with torch.no_grad():
        new = algo.log_prob(batch.obs, batch.x_prev, batch.x_next, batch.k)
    assert torch.equal(new, batch.old_logp)


def test_first_update_sees_ratio_one(algo):
    torch.manual_seed(3)
    batch = algo.prepare(toy_run.synthetic_rollout(algo))
    metrics = algo.update(batch.index(next(minibatch_indices(len(batch), algo.cfg.minibatch_size, "cpu"))))
    assert metrics["ratio_mean"] == 1.0 and metrics["approx_kl"] == 0.0 and metrics["clipfrac"] == 0.0


def test_prepare_indexes_each_chain_step_by_its_denoising_step(algo):
    torch.manual_seed(4)
    rollout = toy_run.synthetic_rollout(algo, steps=2, n_envs=3)
    batch = algo.prepare(rollout)
    K = algo.K
    assert len(batch) == 2 * 3 * K
    assert batch.j.tolist() == list(range(K)) * 6 and torch.equal(batch.k, K - 1 - batch.j)
    # item 1 = (chunk step 0, env 0, j=1): the step from chain state 1 to chain state 2
    assert torch.equal(batch.x_prev[1], rollout.samples[0, 0, 1])
    assert torch.equal(batch.x_next[1], rollout.samples[0, 0, 2])


def test_update_with_positive_advantage_raises_the_samples_log_prob(algo):
    torch.manual_seed(5)
    batch = algo.prepare(toy_run.synthetic_rollout(algo))
    K = algo.K
    positive = (torch.arange(len(batch)) // K) % 2 == 0  # every other env step, all its denoising steps
    batch.advantages = torch.where(positive, 1.0, -1.0)

    algo.update(batch)

    with torch.no_grad():
        new = algo.log_prob(batch.obs, batch.x_prev, batch.x_next, batch.k)
    assert (new - batch.old_logp)[positive].mean() > 0
    assert (new - batch.old_logp)[~positive].mean() < 0


def test_frozen_base_never_changes_while_the_fine_tuned_copy_does(demo_root):
    learner = toy_run.toy_learner(toy_run.toy_config(demo_root, "interleave.m=1", "rl.actor_lr=1.0e-3"))
    algo = learner.algo
    base_before = {k: v.clone() for k, v in algo.actor_base.state_dict().items()}
    ft_before = {k: v.clone() for k, v in algo.actor_ft.state_dict().items()}
    torch.manual_seed(6)
    rollout = toy_run.synthetic_rollout(algo)

    _, injections = learner.update(rollout, train_actor=True)

    assert injections  # IL injections ran too
    assert all(not p.requires_grad for p in algo.actor_base.parameters())
    assert all(torch.equal(v, base_before[k]) for k, v in algo.actor_base.state_dict().items())
    assert not all(torch.equal(v, ft_before[k]) for k, v in algo.actor_ft.state_dict().items())


def test_frozen_base_runs_the_noisy_steps_and_the_copy_the_last_k(algo):
    steps = range(algo.policy.n_steps)
    assert [algo.denoiser_for_step(k) is algo.actor_ft for k in steps] == [k < algo.K for k in steps]


def test_clip_coef_goes_from_clip_base_to_clip_final(algo):
    c = algo.cfg
    coef = algo.clip_coef(torch.arange(algo.K))
    assert coef[0].item() == pytest.approx(c.clip_base) and coef[-1].item() == pytest.approx(c.clip_final)
    assert (coef[1:] > coef[:-1]).all()


def test_clip_coef_with_a_single_fine_tuned_step_is_clip_final(demo_root):
    cfg = toy_run.toy_config(demo_root, "rl.ft_denoising_steps=1")
    one = DPPO(toy_run.toy_agent(cfg), cfg.rl)
    assert one.clip_coef(torch.zeros(3, dtype=torch.long)).tolist() == pytest.approx([cfg.rl.clip_final] * 3)


def test_minibatches_visit_each_item_at_most_once_dropping_at_most_half_a_minibatch():
    seen = torch.cat(list(minibatch_indices(100, 16, "cpu")))
    assert len(set(seen.tolist())) == len(seen)
    assert 100 - len(seen) <= 16 // 2


def test_a_batch_smaller_than_half_a_minibatch_is_one_minibatch_of_all_of_it():
    (only,) = list(minibatch_indices(7, 16, "cpu"))
    assert sorted(only.tolist()) == list(range(7))


def test_rl_steps_yield_one_item_per_minibatch_step_over_the_epochs(algo):
    torch.manual_seed(8)
    rollout = toy_run.synthetic_rollout(algo)
    n = len(algo.prepare(rollout))
    per_epoch = len(list(minibatch_indices(n, algo.cfg.minibatch_size, "cpu")))
    steps = list(algo.rl_steps(rollout, train_actor=True))
    assert len(steps) == algo.cfg.update_epochs * per_epoch and all("approx_kl" in m for m in steps)
