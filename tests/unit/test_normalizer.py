"""MinMaxNormalizer: exact round trips, constant-dimension safety, saving with safetensors, clear errors; the
observation normaliser's quaternion alignment."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from inril_core.policies.normalizer import ActionNormalizer, MinMaxNormalizer, ObservationNormalizer

torch.set_num_threads(1)


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform([-3.0, 0.0, 100.0], [5.0, 0.01, 200.0], size=(500, 3)).astype(np.float32)


def test_fitted_data_maps_onto_minus_one_to_one(data):
    normalized = MinMaxNormalizer().fit(data).normalize(data)
    np.testing.assert_allclose(normalized.min(axis=0), -1.0, atol=1e-5)
    np.testing.assert_allclose(normalized.max(axis=0), 1.0, atol=1e-5)


def test_round_trip_numpy_keeps_values_and_dtype(data):
    norm = MinMaxNormalizer().fit(data)
    for dtype in (np.float32, np.float64):
        x = data.astype(dtype)
        back = norm.unnormalize(norm.normalize(x))
        assert isinstance(back, np.ndarray) and back.dtype == dtype
        np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-4)


def test_round_trip_torch_keeps_values_dtype_and_batch_shape(data):
    norm = MinMaxNormalizer().fit(torch.from_numpy(data))
    chunk = torch.from_numpy(data[:24]).double().view(2, 4, 3, 3)  # any (..., D) batch layout
    back = norm.unnormalize(norm.normalize(chunk))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float64 and back.shape == chunk.shape
    torch.testing.assert_close(back, chunk, rtol=1e-5, atol=1e-4)


def test_constant_dimension_maps_to_zero_and_round_trips():
    data = np.stack([np.linspace(0, 1, 10), np.full(10, 7.5)], axis=1)
    norm = MinMaxNormalizer().fit(data)
    normalized = norm.normalize(data)
    assert np.isfinite(normalized).all()
    np.testing.assert_allclose(normalized[:, 1], 0.0)
    np.testing.assert_allclose(norm.unnormalize(normalized), data, atol=1e-6)


def test_state_dict_saves_in_safetensors_and_restores_the_same_mapping(data, tmp_path):
    norm = MinMaxNormalizer().fit(data)
    path = tmp_path / "norm.safetensors"
    save_file({f"action_normalizer.{k}": v for k, v in norm.state_dict().items()}, str(path))
    loaded = load_file(str(path))
    restored = MinMaxNormalizer()
    restored.load_state_dict({k.split(".", 1)[1]: v for k, v in loaded.items()})
    assert restored.dim == 3
    np.testing.assert_array_equal(restored.normalize(data), norm.normalize(data))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_rejects_non_finite_data_naming_the_dimension(data, bad):
    data[3, 2] = bad
    with pytest.raises(ValueError, match=r"NaN/Inf.*\[2\]"):
        MinMaxNormalizer().fit(data)


@pytest.mark.parametrize("shape", [(10,), (0, 3), (4, 5, 3)])
def test_fit_rejects_wrong_shape_naming_the_expected_one(shape):
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        MinMaxNormalizer().fit(np.zeros(shape))


def test_normalize_rejects_wrong_last_dimension(data):
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        MinMaxNormalizer().fit(data).normalize(np.zeros((2, 4)))


def test_use_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxNormalizer().normalize(np.zeros((1, 3)))


def _quaternion_observations(n: int = 200, seed: int = 0) -> np.ndarray:
    """(n, 6): a scalar, a quaternion near a rotation whose w is ~0 with w >= 0 sign convention, a scalar."""
    rng = np.random.default_rng(seed)
    quats = np.array([0.89, 0.45, 0.0, 0.0]) + rng.normal(0.0, 0.02, (n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    quats[quats[:, 3] < 0] *= -1  # the env's w >= 0: about half the rows flip to the far side
    return np.column_stack([rng.normal(size=n), quats, rng.normal(size=n)])


def test_quaternion_sign_flips_do_not_reach_the_network():
    obs = _quaternion_observations()
    assert (obs[:, 1] < 0).sum() > 20  # the convention really flips many of them
    norm = ObservationNormalizer([1]).fit(obs)
    flipped = obs.copy()
    flipped[:, 1:5] *= -1
    np.testing.assert_allclose(norm.normalize(obs), norm.normalize(flipped), atol=1e-6)
    aligned = norm.align(obs)[:, 1:5]
    assert np.all(aligned @ aligned[0] > 0.9)  # one hemisphere, continuous
    torch_out = norm.normalize(torch.as_tensor(flipped, dtype=torch.float32))
    np.testing.assert_allclose(torch_out.numpy(), norm.normalize(obs), atol=1e-5)
    np.testing.assert_array_equal(obs, _quaternion_observations())  # the input is not modified


def test_quaternion_references_are_saved_and_required_back():
    obs = _quaternion_observations()
    norm = ObservationNormalizer([1]).fit(obs)
    restored = ObservationNormalizer([1])
    restored.load_state_dict(norm.state_dict())
    np.testing.assert_allclose(restored.normalize(-obs), norm.normalize(-obs))
    with pytest.raises(KeyError, match="lacks quaternion references"):
        ObservationNormalizer([1]).load_state_dict(MinMaxNormalizer().fit(obs).state_dict())
    plain = ObservationNormalizer()
    plain.load_state_dict(MinMaxNormalizer().fit(obs).state_dict())  # earlier checkpoints load as before


def test_action_normalizer_gives_one_target_per_rotation() -> None:
    """q and -q (the same delta rotation, both emitted by FurnitureBench's expert) normalise to the same target."""
    quat = np.array([0.0, 0.0, np.sin(0.15), np.cos(0.15)])
    actions = np.array([[0.01, 0.0, 0.0, *quat, 1.0], [0.01, 0.0, 0.0, *-quat, 1.0],
                        [-0.02, 0.01, 0.0, 0, 0, 0, 1, -1]])
    norm = ActionNormalizer([3]).fit(actions)
    targets = norm.normalize(actions)
    np.testing.assert_allclose(targets[0], targets[1])
    np.testing.assert_allclose(norm.unnormalize(targets[1]), actions[0], atol=1e-6)  # the canonical (w >= 0) sign
    torch_targets = norm.normalize(torch.as_tensor(actions, dtype=torch.float32))
    np.testing.assert_allclose(torch_targets.numpy(), targets, atol=1e-6)
    assert (np.abs(targets) <= 1 + 1e-6).all()  # the range fitted on the raw actions holds the canonical ones


def test_action_normalizer_fitted_on_the_action_bounds_keeps_the_whole_range() -> None:
    norm = ActionNormalizer([3]).fit(np.stack([-np.ones(8), np.ones(8)]))
    np.testing.assert_allclose(norm.unnormalize(np.zeros(8)), np.zeros(8), atol=1e-7)
    np.testing.assert_allclose(norm.unnormalize(np.ones(8)), np.ones(8), atol=1e-7)
