"""DiffusionPolicy: schedule, posterior identities, sampler determinism, step routing, learning a toy task."""
import math

import pytest
import torch
from torch import nn

from inril_core.policies.denoisers import MLPDenoiser
from inril_core.policies.diffusion import DiffusionPolicy, NoiseSchedule, cosine_beta_schedule

torch.set_num_threads(1)

T = 20
OBS_DIM, ACT_DIM, HORIZON = 3, 2, 4


class ConstantEps(nn.Module):
    """An oracle 'denoiser' that returns a fixed noise tensor and records which steps it was asked about."""

    def __init__(self, eps: torch.Tensor) -> None:
        super().__init__()
        self.eps = eps
        self.steps: list[int] = []

    def forward(self, x: torch.Tensor, k: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        self.steps.extend(k.tolist())
        return self.eps.expand_as(x)


def _policy(denoiser: nn.Module | None = None) -> DiffusionPolicy:
    torch.manual_seed(0)
    net = denoiser or MLPDenoiser(OBS_DIM, ACT_DIM, HORIZON, hidden_dims=(32, 32, 32))
    return DiffusionPolicy(net, OBS_DIM, ACT_DIM, HORIZON, n_steps=T)


# ------------------------------------------------------------------------------------------------ schedule


def test_betas_are_positive_and_clipped_at_0999():
    betas = cosine_beta_schedule(T)
    assert betas.shape == (T,) and (betas > 0).all() and (betas <= 0.999).all()
    assert betas[-1] == pytest.approx(0.999)  # the cosine schedule's last beta is 1 before clipping


def test_alphas_cumprod_decreases_within_unit_interval():
    abar = NoiseSchedule(T).alphas_cumprod
    assert (abar > 0).all() and (abar <= 1).all()
    assert (abar[1:] < abar[:-1]).all()


@pytest.mark.parametrize("k", [0, 5, 10, 18])
def test_alphas_cumprod_matches_closed_form_cosine(k):
    def f(t: float) -> float:
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2

    # abar_k is the cosine curve at t = k + 1 (k indexes noising steps 1..T)
    assert NoiseSchedule(T).alphas_cumprod[k].item() == pytest.approx(f(k + 1) / f(0), rel=1e-5)


@pytest.mark.parametrize("k", [0, 1, 7, 19])
def test_posterior_coefficients_equal_gaussian_conditioning(k):
    """q(x_{k-1} | x_k, x_0) derived independently: condition the joint Gaussian of (x_{k-1}, x_k) given x_0.

    x_{k-1} = sqrt(abar_{k-1}) x_0 + sqrt(1 - abar_{k-1}) e1,  x_k = sqrt(alpha_k) x_{k-1} + sqrt(beta_k) e2, so
    cov(x_{k-1}, x_k) = sqrt(alpha_k)(1 - abar_{k-1}), var(x_k) = 1 - abar_k and
    E[x_{k-1} | x_k] = sqrt(abar_{k-1}) x_0 + cov / var (x_k - sqrt(abar_k) x_0).
    """
    s = NoiseSchedule(T)
    abar_prev = s.alphas_cumprod[k - 1].double() if k > 0 else torch.tensor(1.0, dtype=torch.float64)
    abar, alpha = s.alphas_cumprod[k].double(), s.alphas[k].double()
    gain = alpha.sqrt() * (1 - abar_prev) / (1 - abar)
    torch.testing.assert_close(s.posterior_mean_coef_xk[k].double(), gain, rtol=1e-5, atol=1e-7)
    coef_x0 = abar_prev.sqrt() - gain * abar.sqrt()
    torch.testing.assert_close(s.posterior_mean_coef_x0[k].double(), coef_x0, rtol=1e-5, atol=1e-6)
    variance = (1 - abar_prev) - alpha * (1 - abar_prev) ** 2 / (1 - abar)
    torch.testing.assert_close(s.posterior_variance[k].double(), variance, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------------------------------------ reverse step


@pytest.mark.parametrize("k", [1, 5, 10, 15])
def test_reverse_step_with_true_noise_gives_the_true_posterior(k):
    gen = torch.Generator().manual_seed(k)
    x0 = torch.rand(2, HORIZON, ACT_DIM, generator=gen) * 1.8 - 0.9
    eps = torch.randn(2, HORIZON, ACT_DIM, generator=gen)
    policy = _policy(ConstantEps(eps))
    s = policy.schedule
    x_k = s.alphas_cumprod[k].sqrt() * x0 + (1 - s.alphas_cumprod[k]).sqrt() * eps
    mean, std = policy.reverse_step(x_k, torch.full((2,), k), torch.zeros(2, OBS_DIM))
    expected = s.posterior_mean_coef_x0[k] * x0 + s.posterior_mean_coef_xk[k] * x_k
    torch.testing.assert_close(mean, expected, rtol=1e-4, atol=1e-4)
    assert std.shape == mean.shape
    torch.testing.assert_close(std, s.posterior_variance[k].sqrt().expand_as(std))


def test_reverse_step_clips_predicted_x0_to_the_data_range():
    k = 5
    eps = torch.randn(1, HORIZON, ACT_DIM, generator=torch.Generator().manual_seed(0))
    policy = _policy(ConstantEps(eps))
    s = policy.schedule
    x_k = s.alphas_cumprod[k].sqrt() * 3.0 + (1 - s.alphas_cumprod[k]).sqrt() * eps  # implies x0 = 3
    mean, _ = policy.reverse_step(x_k, torch.tensor([k]), torch.zeros(1, OBS_DIM))
    torch.testing.assert_close(mean, s.posterior_mean_coef_x0[k] * 1.0 + s.posterior_mean_coef_xk[k] * x_k)


def test_last_reverse_step_is_deterministic():
    policy = _policy()
    k = torch.zeros(2, dtype=torch.long)
    _, std = policy.reverse_step(torch.zeros(2, HORIZON, ACT_DIM), k, torch.zeros(2, OBS_DIM))
    assert (std == 0).all()


def test_reverse_step_uses_the_given_denoiser():
    policy = _policy()
    frozen = ConstantEps(torch.zeros(1))
    policy.reverse_step(torch.zeros(2, HORIZON, ACT_DIM), torch.full((2,), 3), torch.zeros(2, OBS_DIM), denoiser=frozen)
    assert frozen.steps == [3, 3]


# ------------------------------------------------------------------------------------------------ loss


def test_denoising_loss_draws_steps_below_k_max():
    recorder = ConstantEps(torch.zeros(1))
    policy = _policy(recorder)
    policy.denoising_loss(torch.zeros(512, OBS_DIM), torch.zeros(512, HORIZON, ACT_DIM), k_max=5)
    assert set(recorder.steps) == set(range(5))
    with pytest.raises(ValueError, match="k_max"):
        policy.denoising_loss(torch.zeros(2, OBS_DIM), torch.zeros(2, HORIZON, ACT_DIM), k_max=T + 1)


def test_denoising_loss_rejects_wrong_chunk_shape():
    with pytest.raises(ValueError, match=r"\(2, 4, 2\)"):
        _policy().denoising_loss(torch.zeros(2, OBS_DIM), torch.zeros(2, HORIZON + 1, ACT_DIM))


def test_weighted_denoising_loss_weighs_each_chunks_error():
    """Uniform weights give the plain loss; weight B on one chunk of B (0 elsewhere) gives that chunk's own error."""
    policy = _policy()
    obs, chunks = torch.rand(4, OBS_DIM), torch.rand(4, HORIZON, ACT_DIM)

    def loss(**kwargs) -> float:
        torch.manual_seed(1)  # the same steps k and noise for every call
        return policy.denoising_loss(obs, chunks, **kwargs).item()

    assert loss(weights=torch.ones(4)) == pytest.approx(loss(), rel=1e-6)
    singles = []
    for i in range(4):
        torch.manual_seed(1)
        k, eps = torch.randint(0, T, (4,)), torch.randn_like(chunks)
        abar = policy.schedule.alphas_cumprod[k].view(4, 1, 1)
        x_k = abar.sqrt() * chunks + (1 - abar).sqrt() * eps
        singles.append((policy.denoiser(x_k, k, obs) - eps)[i].pow(2).mean().item())
        assert loss(weights=torch.eye(4)[i] * 4) == pytest.approx(singles[-1], rel=1e-5)
    assert loss() == pytest.approx(sum(singles) / 4, rel=1e-5)
    with pytest.raises(ValueError, match=r"weights must have shape \(4,\)"):
        policy.denoising_loss(obs, chunks, weights=torch.ones(4, 1))


# ------------------------------------------------------------------------------------------------ sampling


def test_ddim_eta0_is_deterministic_and_ignores_the_generator():
    policy, obs = _policy(), torch.randn(5, OBS_DIM)
    a = policy.sample_ddim(obs, eta=0.0, generator=torch.Generator().manual_seed(1))
    b = policy.sample_ddim(obs, eta=0.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (5, HORIZON, ACT_DIM) and a.abs().max() <= 1


def test_ddim_eta1_is_stochastic_and_reproducible_with_a_seed():
    policy, obs = _policy(), torch.randn(5, OBS_DIM)
    a = policy.sample_ddim(obs, eta=1.0, generator=torch.Generator().manual_seed(1))
    b = policy.sample_ddim(obs, eta=1.0, generator=torch.Generator().manual_seed(2))
    c = policy.sample_ddim(obs, eta=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_ddim_steps_cover_all_steps_by_default_and_stride_from_the_last():
    policy = _policy()
    assert policy.ddim_steps() == list(reversed(range(T)))
    assert policy.ddim_steps(5) == [19, 15, 11, 7, 3]
    assert policy.ddim_steps(1) == [19]
    with pytest.raises(ValueError, match="n_steps"):
        policy.ddim_steps(T + 1)


def test_ddim_routes_each_step_to_the_chosen_denoiser():
    """DPPO runs the early steps with the frozen base and the last K' with the fine-tuned copy."""
    base, finetuned = ConstantEps(torch.zeros(1)), ConstantEps(torch.zeros(1))
    policy, k_ft = _policy(), 10
    policy.sample_ddim(torch.zeros(1, OBS_DIM), denoiser_for_step=lambda k: finetuned if k < k_ft else base)
    assert base.steps == list(range(T - 1, k_ft - 1, -1)) and finetuned.steps == list(range(k_ft - 1, -1, -1))


def test_ddpm_sampling_clamps_output_and_applies_min_std():
    policy, obs = _policy(), torch.randn(3, OBS_DIM)
    a = policy.sample_ddpm(obs, generator=torch.Generator().manual_seed(0), min_std=0.1)
    b = policy.sample_ddpm(obs, generator=torch.Generator().manual_seed(0), min_std=0.0)
    assert a.shape == (3, HORIZON, ACT_DIM) and a.abs().max() <= 1
    assert not torch.allclose(a, b)  # the floor changes the last, otherwise deterministic, step


# ------------------------------------------------------------------------------------------------ learning

# obs = +1: two modes (a multimodal demo set); obs = -1: one mode. Actions are 2-D, chunk H = 1.
MODES_POS = torch.tensor([[0.5, 0.5], [-0.5, 0.5]])
MODE_NEG = torch.tensor([[0.0, -0.6]])


def _toy_batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    obs = torch.where(torch.rand(n, 1, generator=gen) < 0.5, -1.0, 1.0)
    centers = torch.where(obs > 0, MODES_POS[torch.randint(0, 2, (n,), generator=gen)], MODE_NEG.expand(n, 2))
    return obs, (centers + 0.05 * torch.randn(n, 2, generator=gen)).unsqueeze(1)


@pytest.fixture(scope="module")
def toy_training() -> tuple[DiffusionPolicy, list[float]]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    policy = DiffusionPolicy(MLPDenoiser(1, 2, 1, hidden_dims=(64, 64, 64)), obs_dim=1, act_dim=2, horizon=1, n_steps=T)
    n_updates = 2500
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    lr_decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_updates)
    losses = []
    for _ in range(n_updates):
        loss = policy.denoising_loss(*_toy_batch(256, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr_decay.step()
        losses.append(loss.item())
    return policy, losses


def test_denoising_loss_falls_on_toy_data(toy_training):
    _, losses = toy_training
    assert sum(losses[-100:]) / 100 < 0.5 * sum(losses[:100]) / 100


@pytest.mark.parametrize("sampler", ["ddpm", "ddim_eta1", "ddim_eta1_10_steps"])
def test_samples_after_training_land_on_both_modes(toy_training, sampler):
    policy, _ = toy_training
    obs, gen = torch.ones(400, 1), torch.Generator().manual_seed(1)
    samples = {
        "ddpm": lambda: policy.sample_ddpm(obs, generator=gen),
        "ddim_eta1": lambda: policy.sample_ddim(obs, eta=1.0, generator=gen),
        "ddim_eta1_10_steps": lambda: policy.sample_ddim(obs, eta=1.0, n_steps=10, generator=gen),
    }[sampler]()[:, 0]
    distance = torch.cdist(samples, MODES_POS).min(dim=1).values
    assert distance.mean() < 0.15 and (distance < 0.15).float().mean() > 0.7
    assert 0.3 < (samples[:, 0] > 0).float().mean() < 0.7  # neither mode collapsed


def test_deterministic_ddim_after_training_lands_on_the_conditioned_mode(toy_training):
    policy, _ = toy_training
    samples = policy.sample_ddim(-torch.ones(3, 1), eta=0.0)[:, 0]
    assert torch.cdist(samples, MODE_NEG).max() < 0.05
