"""Test-wide defaults: tests run headless (CI has no display) and each run writes only under pytest's tmp_path."""
import os
from pathlib import Path

import pytest
import torch

# One intra-op thread: the test networks are tiny, and OpenMP threads spinning against each other on a shared
# 2-core machine made small-batch torch 10x slower.
torch.set_num_threads(1)

os.environ.setdefault("MPLBACKEND", "Agg")  # report plots must not need a display
os.environ.setdefault("MUJOCO_GL", "osmesa")  # off-screen rendering without a GPU (make setup installs libosmesa6)


@pytest.fixture
def tmp_run_dir(tmp_path: Path) -> Path:
    """A fresh run directory (checkpoints, episodes, logs) that is removed with the test's tmp_path."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return run_dir
