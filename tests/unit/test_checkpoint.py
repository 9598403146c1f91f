"""Checkpoints round-trip the full training state and survive a crash in the middle of a save."""
import hashlib
import random

import numpy as np
import pytest
import torch

from inril_core import checkpoint
from inril_core.checkpoint import (
    file_sha256,
    load_checkpoint,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_file,
)


def train_state(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """A real tiny model and optimiser after one step, as a learner would checkpoint them."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    optimiser.step()
    state = {"optimiser": optimiser.state_dict(), "updates": 7, "rng": rng_state(), "replay": np.arange(5.0)}
    return model.state_dict(), state


def test_round_trip_restores_tensors_and_state(tmp_run_dir):
    tensors, state = train_state()
    path = save_checkpoint(tmp_run_dir, 100, tensors, state)

    step, loaded_tensors, loaded_state = load_checkpoint(path)

    assert path == tmp_run_dir / "checkpoints" / "step_000000100" and step == 100
    for name, tensor in tensors.items():
        torch.testing.assert_close(loaded_tensors[name], tensor)
    assert loaded_state["updates"] == 7
    np.testing.assert_array_equal(loaded_state["replay"], state["replay"])
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    restored.load_state_dict(loaded_state["optimiser"])
    assert restored.state_dict()["state"][0]["step"] == 1


def test_latest_pointer_names_the_newest_checkpoint(tmp_run_dir):
    tensors, state = train_state()
    save_checkpoint(tmp_run_dir, 1, tensors, state)
    save_checkpoint(tmp_run_dir, 2, tensors, state)
    assert (tmp_run_dir / "checkpoints" / "latest").read_text().strip() == "step_000000002"
    assert load_latest(tmp_run_dir)[0] == 2


def test_run_without_checkpoints_loads_none(tmp_run_dir):
    assert load_latest(tmp_run_dir) is None


def test_half_written_temp_dir_is_ignored_then_cleaned(tmp_run_dir):
    tensors, state = train_state()
    save_checkpoint(tmp_run_dir, 10, tensors, state)
    crashed = tmp_run_dir / "checkpoints" / ".tmp-step_000000020-abc"
    crashed.mkdir()
    (crashed / "weights.safetensors").write_bytes(b"\x00" * 3)

    assert load_latest(tmp_run_dir)[0] == 10
    save_checkpoint(tmp_run_dir, 30, tensors, state)
    assert not crashed.exists()


def test_failure_while_saving_keeps_the_previous_checkpoint_loadable(tmp_run_dir, monkeypatch):
    tensors, state = train_state()
    save_checkpoint(tmp_run_dir, 10, tensors, state)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_run_dir, 20, tensors, state)

    assert load_latest(tmp_run_dir)[0] == 10
    assert sorted(p.name for p in (tmp_run_dir / "checkpoints").iterdir()) == ["latest", "step_000000010"]


def test_only_the_newest_keep_checkpoints_remain(tmp_run_dir):
    tensors, state = train_state()
    for step in range(5):
        save_checkpoint(tmp_run_dir, step, tensors, state, keep=2)
    names = sorted(p.name for p in (tmp_run_dir / "checkpoints").glob("step_*"))
    assert names == ["step_000000003", "step_000000004"]


def test_saving_an_existing_step_replaces_it(tmp_run_dir):
    tensors, state = train_state()
    save_checkpoint(tmp_run_dir, 5, tensors, {"updates": 1})
    save_checkpoint(tmp_run_dir, 5, tensors, {"updates": 2})
    assert load_latest(tmp_run_dir)[2] == {"updates": 2}


def test_weights_file_of_a_step_is_the_file_save_wrote(tmp_run_dir):
    tensors, state = train_state()
    path = save_checkpoint(tmp_run_dir, 7, tensors, state)
    assert weights_file(tmp_run_dir, 7) == path / checkpoint.WEIGHTS
    assert weights_file(tmp_run_dir, 7).is_file()


def test_weights_file_of_the_newest_checkpoint_ignores_a_half_written_one(tmp_run_dir):
    assert weights_file(tmp_run_dir) is None  # no checkpoint yet
    tensors, state = train_state()
    save_checkpoint(tmp_run_dir, 3, tensors, state)
    save_checkpoint(tmp_run_dir, 12, tensors, state)
    (tmp_run_dir / "checkpoints" / ".tmp-step_000000020-abc").mkdir()
    assert weights_file(tmp_run_dir) == tmp_run_dir / "checkpoints" / "step_000000012" / checkpoint.WEIGHTS


def test_file_sha256_streams_a_file_larger_than_one_block(tmp_path):
    data = np.random.default_rng(0).bytes((1 << 20) * 2 + 123)  # two full blocks and a partial one
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_a_foreign_directory_is_refused_with_a_hint(tmp_run_dir):
    with pytest.raises(FileNotFoundError, match="step_\\* directory"):
        load_checkpoint(tmp_run_dir)


def test_rng_state_restores_python_numpy_and_torch_streams():
    saved = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_rng_state_survives_a_checkpoint(tmp_run_dir):
    tensors, _ = train_state()
    save_checkpoint(tmp_run_dir, 1, tensors, {"rng": rng_state()})
    expected = torch.rand(3)
    set_rng_state(load_latest(tmp_run_dir)[2]["rng"])
    torch.testing.assert_close(torch.rand(3), expected)
