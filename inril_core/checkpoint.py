"""The one checkpoint format: atomic, versioned weights plus the full training state, for crash-safe resume.

Layout of a run directory::

    run_dir/checkpoints/step_000001000/weights.safetensors   tensors (policy weights, normalisers)
    run_dir/checkpoints/step_000001000/state.pt              torch.save: optimisers, counters, RNG, replay
    run_dir/checkpoints/latest                               "step_000001000": a pointer for other processes

Weights are in safetensors so a policy server can load them without unpickling anything; the training state
needs pickle (optimiser and RNG states), so load ``state.pt`` only from runs you trust. A checkpoint is built in a
temporary directory and renamed into place, so every ``step_*`` directory is complete: a crash mid-save leaves only
a ``.tmp-*`` directory, which readers ignore and the next save removes.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from inril_core.fsutil import fsync_path

FORMAT = "inril-checkpoint-1"
WEIGHTS = "weights.safetensors"
STATE = "state.pt"
LATEST = "latest"
_TMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"^step_(\d{9})$")

Checkpoint = tuple[int, dict[str, torch.Tensor], dict[str, Any]]


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def _step_name(step: int) -> str:
    return f"step_{step:09d}"


def weights_file(run_dir: str | os.PathLike, step: int | None = None) -> Path | None:
    """The weights file of checkpoint ``step`` of a run (whether or not it exists), or with ``step`` None that of
    the newest complete checkpoint (None when the run has none yet, e.g. a crash mid-save left only a temp dir).

    The file another process loads on its own (a policy server), so the layout is spelt out in one place.
    """
    root = checkpoint_dir(run_dir)
    if step is None:
        found = _step_dirs(root)
        return found[-1][1] / WEIGHTS if found else None
    return root / _step_name(step) / WEIGHTS


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights files run to hundreds of MB): what a checkpoint
    announcement carries, so the loader can tell the file it reads is the one announced."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _step_dirs(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temp directories do not match the name pattern)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found)


def _write_latest(root: Path, name: str) -> None:
    tmp = root / f"{_TMP_PREFIX}{LATEST}"
    tmp.write_text(name + "\n")
    fsync_path(tmp)
    os.replace(tmp, root / LATEST)


def save_checkpoint(
    run_dir: str | os.PathLike, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any], keep: int = 3
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it and keep only the newest ``keep``.

    Only one process (the learner) may save into a run directory.
    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0; got {step}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the checkpoint just written is always kept); got {keep}")
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(f"{_TMP_PREFIX}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()

    final = root / _step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{final.name}-", dir=root))
    try:
        # A clone per tensor: safetensors refuses tensors that share storage (tied weights, views).
        weights = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
        save_file(weights, tmp / WEIGHTS, metadata={"format": FORMAT, "step": str(step)})
        torch.save(state, tmp / STATE)
        for path in (tmp / WEIGHTS, tmp / STATE, tmp):
            fsync_path(path)
        if final.exists():  # re-saving a step after resuming from an older checkpoint
            stale = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}old-", dir=root))
            os.replace(final, stale / final.name)
            shutil.rmtree(stale)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(root)
    _write_latest(root, final.name)

    for _, old in _step_dirs(root)[:-keep]:
        if old != final:
            shutil.rmtree(old)
    return final


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Checkpoint:
    """Load one ``step_*`` directory as ``(step, tensors, state)``; tensors are placed on ``device``."""
    path = Path(path)
    for name in (WEIGHTS, STATE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"checkpoint {path} has no {name}: pass a checkpoints/step_* directory")
    with safe_open(str(path / WEIGHTS), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path / WEIGHTS} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(path / WEIGHTS, device=device)
    state = torch.load(path / STATE, map_location=device, weights_only=False)
    return int(metadata["step"]), tensors, state


def load_latest(run_dir: str | os.PathLike, device: str = "cpu") -> Checkpoint | None:
    """The newest complete checkpoint of a run, or None when it has none yet.

    The highest ``step_*`` directory wins over the ``latest`` pointer: a crash between the rename and the pointer
    update must not roll training back.
    """
    found = _step_dirs(checkpoint_dir(run_dir))
    return load_checkpoint(found[-1][1], device) if found else None


def rng_state() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch, CUDA) for ``state.pt``.

    Code that owns a ``numpy.random.Generator`` or ``torch.Generator`` saves that generator's state itself.
    """
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state()`` captured; CUDA states are restored only where CUDA is available."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
