"""PPO pieces: GAE against a hand computation, and the clipped surrogate's gradient, sign and diagnostics."""
import math

import pytest
import torch

from inril_core.rl.ppo import clipped_surrogate, gae

torch.set_num_threads(1)


def test_gae_matches_hand_computation_with_a_done_cutting_the_bootstrap():
    # env 0: the episode ends at t=1, so V(s_2) (a new episode) must not flow back into t=1.
    # env 1: no episode end, plain lambda-returns bootstrapped from last_values.
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    last_values = torch.tensor([3.0, 0.0])
    gamma, lam = 0.9, 0.8
    # env 0: delta_2 = 2 + .9*3 - 1.5 = 3.2 -> A_2 = 3.2
    #        delta_1 = 0 + 0 (done) - 1.0 = -1.0 -> A_1 = -1.0 (no A_2 term: done)
    #        delta_0 = 1 + .9*1.0 - 0.5 = 1.4 -> A_0 = 1.4 + .9*.8*(-1.0) = 0.68
    # env 1: deltas 0, 0, 1 -> A = .72^2, .72, 1
    expected_adv = torch.tensor([[0.68, 0.72**2], [-1.0, 0.72], [3.2, 1.0]])

    adv, ret = gae(rewards, values, dones, last_values, gamma, lam)

    torch.testing.assert_close(adv, expected_adv)
    torch.testing.assert_close(ret, expected_adv + values)


def test_gae_with_lambda_one_and_no_dones_is_the_discounted_return_minus_value():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.3], [0.2], [0.1]])
    _, ret = gae(rewards, values, torch.zeros(3, 1), torch.tensor([4.0]), gamma=0.5, lam=1.0)
    torch.testing.assert_close(ret[:, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, 2 + 0.5 * 3 + 0.25 * 4,
                                                        3 + 0.5 * 4]))


def surrogate_grad(ratio: float, advantage: float, clip: float = 0.2) -> float:
    log_ratio = torch.tensor([math.log(ratio)], requires_grad=True)
    loss, _ = clipped_surrogate(log_ratio, torch.tensor([advantage]), clip)
    loss.backward()
    return float(log_ratio.grad)


def test_positive_advantage_above_one_plus_eps_has_zero_gradient():
    assert surrogate_grad(1.5, advantage=1.0) == 0.0


def test_negative_advantage_below_one_minus_eps_has_zero_gradient():
    assert surrogate_grad(0.5, advantage=-1.0) == 0.0


@pytest.mark.parametrize("ratio, advantage", [(1.1, 1.0), (0.9, -1.0), (0.5, 1.0), (1.5, -1.0)])
def test_unclipped_or_pessimistic_side_keeps_the_policy_gradient(ratio, advantage):
    # inside the trust region, or moving the wrong way: d(-A r)/d log r = -A r
    assert surrogate_grad(ratio, advantage) == pytest.approx(-advantage * ratio, rel=1e-5)


def test_minimising_the_loss_raises_the_log_prob_of_positive_advantage_actions():
    torch.manual_seed(0)
    logits = torch.zeros(4, requires_grad=True)
    actions = torch.tensor([0, 1, 2, 3])
    advantages = torch.tensor([1.0, -1.0, -1.0, -1.0])
    old_logp = torch.log_softmax(logits, 0)[actions].detach()
    optimiser = torch.optim.SGD([logits], lr=0.1)

    loss, _ = clipped_surrogate(torch.log_softmax(logits, 0)[actions] - old_logp, advantages, 0.2)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()

    new_logp = torch.log_softmax(logits, 0)[actions].detach()
    assert new_logp[0] > old_logp[0] and (new_logp[1:] < old_logp[1:]).all()


def test_clipfrac_counts_samples_outside_the_clip_range():
    ratios = torch.tensor([1.0, 1.3, 0.7, 1.1, 0.95, 1.25])
    _, diag = clipped_surrogate(ratios.log(), torch.ones(6), 0.2)
    assert diag["clipfrac"] == pytest.approx(3 / 6)


def test_clipfrac_uses_a_per_sample_clip():
    ratios = torch.tensor([1.05, 1.05])
    _, diag = clipped_surrogate(ratios.log(), torch.ones(2), torch.tensor([0.01, 0.1]))
    assert diag["clipfrac"] == pytest.approx(0.5)


def test_approx_kl_is_zero_at_ratio_one_and_positive_elsewhere():
    _, same = clipped_surrogate(torch.zeros(5), torch.randn(5), 0.2)
    _, moved = clipped_surrogate(torch.tensor([0.3, -0.3]), torch.ones(2), 0.2)
    assert same["approx_kl"] == 0.0 and same["ratio_mean"] == 1.0 and moved["approx_kl"] > 0
