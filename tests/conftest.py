"""Test-wide defaults: tests run headless (CI has no display) and each run writes only under pytest's tmp_path."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # report plots must not need a display


@pytest.fixture
def tmp_run_dir(tmp_path: Path) -> Path:
    """A fresh run directory (checkpoints, episodes, logs) that is removed with the test's tmp_path."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return run_dir
