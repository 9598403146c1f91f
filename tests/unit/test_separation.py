"""PCGrad gradient separation: an IL step never undoes the RL direction, and leaves aligned gradients alone."""
import pytest
import torch

import toy_run
from inril_core.separation import assign_flat_grad, cosine, flat_grad, pcgrad_project

torch.set_num_threads(1)
SEEDS = range(200)


def conflicting_pair(seed: int, dim: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (g_il, g_rl) with a negative dot product (g_il is flipped when the draw happens to agree)."""
    g = torch.Generator().manual_seed(seed)
    g_il, g_rl = torch.randn(dim, generator=g), torch.randn(dim, generator=g) * (0.1 + 10 * torch.rand(1, generator=g))
    return (g_il if g_il.dot(g_rl) < 0 else -g_il), g_rl


def test_projected_il_gradient_never_conflicts_with_rl_gradient():
    for seed in SEEDS:
        g_il, g_rl = conflicting_pair(seed)
        out = pcgrad_project(g_il, g_rl)
        assert cosine(out.grad, g_rl) >= -1e-5, seed


def test_aligned_gradients_are_returned_untouched():
    g = torch.Generator().manual_seed(0)
    g_rl = torch.randn(50, generator=g)
    g_il = g_rl + 0.5 * torch.randn(50, generator=g)
    assert g_il.dot(g_rl) > 0
    out = pcgrad_project(g_il, g_rl)
    assert out.grad is g_il and not out.projected


def test_projection_never_grows_the_il_gradient_norm():
    for seed in SEEDS:
        g_il, g_rl = conflicting_pair(seed)
        assert pcgrad_project(g_il, g_rl).grad.norm() <= g_il.norm() * (1 + 1e-6), seed


def test_fired_projection_is_orthogonal_to_rl_gradient():
    for seed in SEEDS:
        g_il, g_rl = conflicting_pair(seed)
        out = pcgrad_project(g_il, g_rl)
        assert out.projected and out.cosine < 0
        assert abs(float(out.grad.dot(g_rl))) <= 1e-4 * float(g_il.norm() * g_rl.norm()), seed


def test_zero_rl_gradient_leaves_il_gradient_alone():
    g_il = torch.randn(10)
    out = pcgrad_project(g_il, torch.zeros(10))
    assert out.grad is g_il and not out.projected and out.cosine == 0.0


def test_flat_grad_and_assign_flat_grad_round_trip():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    net(torch.randn(5, 3)).pow(2).sum().backward()
    params = list(net.parameters())
    before = [p.grad.clone() for p in params]
    flat = flat_grad(params)
    assert flat.numel() == sum(p.numel() for p in params)

    for p in params:
        p.grad = None
    assign_flat_grad(params, flat)

    for p, g in zip(params, before):
        assert torch.equal(p.grad, g)


def test_flat_grad_counts_parameters_without_gradient_as_zeros():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    (a * 2).sum().backward()
    assert torch.equal(flat_grad([a, b]), torch.tensor([2.0, 2.0, 0.0, 0.0, 0.0]))


def test_assign_flat_grad_refuses_a_vector_of_the_wrong_size():
    with pytest.raises(ValueError, match="3 entries but the parameters have 2"):
        assign_flat_grad([torch.nn.Parameter(torch.ones(2))], torch.zeros(3))


# ------------------------------------------------------------------------------ PCGrad inside the IL injection


@pytest.fixture(scope="module")
def pcgrad_learner(tmp_path_factory):
    root = tmp_path_factory.mktemp("sep")
    toy_run.write_toy_demos(root / "demos")
    # prime_batches=0: these tests replay an injection's draws to know its gradient; priming would draw first
    cfg = toy_run.toy_config(root, "separation=pcgrad", "il.steps_per_injection=1", "il.prime_batches=0")
    return toy_run.toy_learner(cfg)


def il_gradient(imitation, seed: int) -> torch.Tensor:
    """The IL gradient an injection started with `torch.manual_seed(seed)` will compute (same draws)."""
    params = imitation.algo.actor_parameters()
    torch.manual_seed(seed)
    obs, chunks = imitation.demos.sample(imitation.batch_size)
    imitation.optimizer.zero_grad(set_to_none=True)
    imitation.il_loss(obs, chunks).backward()
    grad = flat_grad(params).clone()
    imitation.optimizer.zero_grad(set_to_none=True)
    return grad


@pytest.mark.parametrize("sign, projected", [(-1.0, 1.0), (1.0, 0.0)])
def test_pcgrad_injection_projects_only_when_rho_is_negative(pcgrad_learner, sign, projected):
    imitation = pcgrad_learner.imitation
    g_il = il_gradient(imitation, seed=3)
    imitation.algo.last_actor_grad = sign * g_il  # an RL gradient opposing / agreeing with the IL one
    torch.manual_seed(3)

    record = imitation.inject(1)

    assert (record["rho"] < 0) == (sign < 0)
    assert record["projected"] == projected


def test_separation_none_never_projects_even_when_gradients_conflict(pcgrad_learner):
    imitation = pcgrad_learner.imitation
    imitation.algo.last_actor_grad = -il_gradient(imitation, seed=4)
    imitation.separation = "none"
    try:
        torch.manual_seed(4)
        record = imitation.inject(1)
    finally:
        imitation.separation = "pcgrad"
    assert record["rho"] < 0 and record["projected"] == 0.0


def test_injection_steps_with_the_projected_gradient(pcgrad_learner):
    """The gradient the IL optimiser applied (left in .grad) is the projected one: orthogonal to g_rl."""
    imitation = pcgrad_learner.imitation
    params = imitation.algo.actor_parameters()
    g_rl = -il_gradient(imitation, seed=5) + 0.1 * torch.randn(sum(p.numel() for p in params))
    imitation.algo.last_actor_grad = g_rl
    torch.manual_seed(5)
    imitation.inject(1)
    applied = flat_grad(params)
    assert abs(float(applied.dot(g_rl))) <= 1e-4 * float(applied.norm() * g_rl.norm())
