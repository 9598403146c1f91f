"""Denoisers: the (B, H, A) interface for every horizon, trainability, config building."""
import pytest
import torch

from inril_core.policies.denoisers import MLPDenoiser, UNet1DDenoiser, build_denoiser

torch.set_num_threads(1)

OBS_DIM, ACT_DIM, BATCH = 5, 3, 4
# Small sizes keep the tests fast; the architecture (levels, blocks) is the same as the defaults.
SMALL = {
    "mlp": {"type": "mlp", "hidden_dims": (32, 32, 32)},
    "unet": {"type": "unet", "channels": (16, 32, 64), "time_dim": 16},
}


def _inputs(horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, horizon, ACT_DIM, generator=gen)
    k = torch.randint(0, 20, (BATCH,), generator=gen)
    obs = torch.randn(BATCH, OBS_DIM, generator=gen)
    return x, k, obs


@pytest.mark.parametrize("kind", ["mlp", "unet"])
@pytest.mark.parametrize("horizon", [1, 4, 8, 16])
def test_output_has_the_shape_of_the_action_chunk(kind, horizon):
    net = build_denoiser(SMALL[kind], OBS_DIM, ACT_DIM, horizon)
    out = net(*_inputs(horizon))
    assert out.shape == (BATCH, horizon, ACT_DIM) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["mlp", "unet"])
def test_gradients_reach_every_parameter(kind):
    net = build_denoiser(SMALL[kind], OBS_DIM, ACT_DIM, horizon=8)
    x, k, obs = _inputs(8)
    (net(x, k, obs) - torch.randn_like(x)).pow(2).mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, f"{name} gets no gradient"
        assert param.grad.abs().sum() > 0, f"{name} gets a zero gradient"


@pytest.mark.parametrize("horizon", [3, 5, 7])
def test_unet_handles_odd_horizons(horizon):
    net = build_denoiser(SMALL["unet"], OBS_DIM, ACT_DIM, horizon)
    x, k, obs = _inputs(horizon)
    out = net(x, k, obs)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["mlp", "unet"])
def test_output_depends_on_time_and_observation(kind):
    """Both conditioning paths must be wired in, or the policy ignores the state or the noise level."""
    net = build_denoiser(SMALL[kind], OBS_DIM, ACT_DIM, horizon=4)
    x, k, obs = _inputs(4)
    base = net(x, k, obs)
    assert not torch.allclose(base, net(x, (k + 7) % 20, obs))
    assert not torch.allclose(base, net(x, k, obs + 1.0))


def test_build_denoiser_passes_sizes_through():
    mlp = build_denoiser({"type": "mlp", "hidden_dims": [64] * 7, "time_dim": 32}, OBS_DIM, ACT_DIM, 4)
    assert isinstance(mlp, MLPDenoiser) and len(mlp.blocks) == 3 and mlp.input.out_features == 64
    unet = build_denoiser({"type": "unet", "channels": [16, 32]}, OBS_DIM, ACT_DIM, 4)
    assert isinstance(unet, UNet1DDenoiser) and unet.length_multiple == 2


def test_build_denoiser_rejects_unknown_type_naming_valid_ones():
    with pytest.raises(ValueError, match=r"'transformer'.*\['mlp', 'unet'\]"):
        build_denoiser({"type": "transformer"}, OBS_DIM, ACT_DIM, 4)


def test_mlp_rejects_hidden_dims_that_cannot_form_residual_blocks():
    with pytest.raises(ValueError, match="hidden_dims"):
        MLPDenoiser(OBS_DIM, ACT_DIM, 4, hidden_dims=(64, 64))


def test_wrong_input_shape_names_the_expected_shape():
    net = build_denoiser(SMALL["mlp"], OBS_DIM, ACT_DIM, horizon=4)
    x, k, obs = _inputs(8)
    with pytest.raises(ValueError, match=r"\(B, 4, 3\)"):
        net(x, k, obs)
