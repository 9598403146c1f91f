"""The one episode store: demos, live rollouts and evaluations (docs/contracts.md, "Episode store").

Why HDF5, one file per episode: an episode is written once and never changed, so a file per episode makes each
append an atomic rename (a crash mid-write leaves at most a stray ``*.tmp`` and never touches recorded episodes),
readers in other processes see new episodes by listing the directory, and ``metadata()`` reads only small HDF5
attributes instead of the arrays. h5py is a single well-kept dependency that robomimic datasets already use.

One writer process per store; any number of readers.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from inril_core.fsutil import fsync_path

FORMAT = "inril-episode-1"
SOURCES = ("scripted", "teleop", "policy", "eval")
ROBOMIMIC_OBS_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")

_NAME = re.compile(r"^episode_(\d{6})\.h5$")


def _as_float32(name: str, value: Any, ndim: int) -> np.ndarray:
    """Coerce one array field and check its rank and values, naming the field in the error."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != ndim:
        want = "(T, dim)" if ndim == 2 else "(T,)"
        raise ValueError(f"Episode.{name} must have shape {want}; found shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"Episode.{name} has a NaN or Inf value at index {bad}; clean the data before storing it")
    return array


@dataclass
class Episode:
    """One episode: per-step observations, actions and rewards, plus free-form JSON metadata.

    Metadata keys used across inril: task, source (scripted|teleop|policy|eval), success, seed,
    policy_version, created. Arrays are converted to float32 and validated on construction so bad data fails
    where it is made, not later in the learner.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = _as_float32("observations", self.observations, 2)
        self.actions = _as_float32("actions", self.actions, 2)
        self.rewards = _as_float32("rewards", self.rewards, 1)
        length = self.observations.shape[0]
        if length == 0:
            raise ValueError("Episode.observations has shape (0, ...); an episode needs at least one step")
        for name in ("actions", "rewards"):
            found = getattr(self, name).shape
            if found[0] != length:
                expected = (length,) + found[1:]
                raise ValueError(
                    f"Episode.{name} has shape {found}, expected {expected}: its length must match "
                    f"observations {self.observations.shape}"
                )
        if not isinstance(self.metadata, dict):
            raise TypeError(f"Episode.metadata must be a dict; found {type(self.metadata).__name__}")
        source = self.metadata.get("source")
        if source is not None and source not in SOURCES:
            raise ValueError(f"Episode.metadata['source'] is {source!r}; use one of {', '.join(SOURCES)}")

    def __len__(self) -> int:
        return self.observations.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]


class EpisodeStore:
    """A directory of ``episode_%06d.h5`` files, indexed in name order.

    The directory is listed on every access, so a reader sees episodes appended by a writer in another process.
    """

    def __init__(self, path: str | os.PathLike, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(
                    f"episode store {self.path} does not exist: check the path, or record episodes into it first "
                    f"(e.g. 'inril record --sim')"
                )
            self.path.mkdir(parents=True)
        elif not self.path.is_dir():
            raise NotADirectoryError(f"episode store {self.path} is a file; an episode store is a directory")
        self._dims: tuple[int, int] | None = None

    def _files(self) -> list[Path]:
        """Final episode files in index order; ``*.tmp`` leftovers of a crashed append are not episodes."""
        return sorted(p for p in self.path.iterdir() if _NAME.match(p.name))

    def __len__(self) -> int:
        return len(self._files())

    def _file(self, index: int) -> Path:
        files = self._files()
        if not -len(files) <= index < len(files):
            raise IndexError(f"episode index {index} out of range: store {self.path} has {len(files)} episodes")
        return files[index]

    def __getitem__(self, index: int) -> Episode:
        return _read(self._file(index))

    def __iter__(self) -> Iterator[Episode]:
        for path in self._files():
            yield _read(path)

    def metadata(self) -> list[dict]:
        """Metadata of every episode, read from HDF5 attributes only (cheap: no arrays are loaded)."""
        result = []
        for path in self._files():
            with h5py.File(path, "r") as f:
                result.append(json.loads(f.attrs["metadata"]))
        return result

    def _store_dims(self) -> tuple[int, int] | None:
        if self._dims is None:
            files = self._files()
            if files:
                with h5py.File(files[0], "r") as f:
                    self._dims = (int(f.attrs["obs_dim"]), int(f.attrs["act_dim"]))
        return self._dims

    @property
    def obs_dim(self) -> int | None:
        """Observation width shared by all episodes; None while the store is empty."""
        dims = self._store_dims()
        return None if dims is None else dims[0]

    @property
    def act_dim(self) -> int | None:
        """Action width shared by all episodes; None while the store is empty."""
        dims = self._store_dims()
        return None if dims is None else dims[1]

    def append(self, episode: Episode) -> int:
        """Write ``episode`` durably and return its index.

        Written to ``episode_%06d.h5.tmp``, fsynced, then renamed: a crash leaves the recorded episodes intact.
        """
        dims = self._store_dims()
        if dims is not None and dims != (episode.obs_dim, episode.act_dim):
            raise ValueError(
                f"episode has obs_dim={episode.obs_dim}, act_dim={episode.act_dim} but store {self.path} holds "
                f"obs_dim={dims[0]}, act_dim={dims[1]}: use a separate store for a different task or observation layout"
            )
        metadata = dict(episode.metadata)
        metadata.setdefault("created", datetime.now(timezone.utc).isoformat())
        try:
            metadata_json = json.dumps(metadata)
        except TypeError as error:
            raise TypeError(f"Episode.metadata must be JSON-serialisable: {error}") from error

        files = self._files()
        index = int(_NAME.match(files[-1].name).group(1)) + 1 if files else 0
        final = self.path / f"episode_{index:06d}.h5"
        tmp = final.with_name(final.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("observations", data=episode.observations)
            f.create_dataset("actions", data=episode.actions)
            f.create_dataset("rewards", data=episode.rewards)
            f.attrs["format"] = FORMAT
            f.attrs["metadata"] = metadata_json
            f.attrs["length"] = len(episode)
            f.attrs["obs_dim"] = episode.obs_dim
            f.attrs["act_dim"] = episode.act_dim
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(self.path)
        self._dims = (episode.obs_dim, episode.act_dim)
        return len(files)



def _read(path: Path) -> Episode:
    with h5py.File(path, "r") as f:
        return Episode(
            observations=f["observations"][()],
            actions=f["actions"][()],
            rewards=f["rewards"][()],
            metadata=json.loads(f.attrs["metadata"]),
        )


def load_robomimic_hdf5(
    path: str | os.PathLike, obs_keys: Sequence[str] = ROBOMIMIC_OBS_KEYS, source: str = "teleop"
) -> list[Episode]:
    """Import a robomimic dataset (``data/demo_i/{obs/<key>, actions, rewards}``) as episodes.

    Observation keys are concatenated in ``obs_keys`` order, which by default is the low-dim layout of the
    ``inril/*-v0`` tasks, so imported demos line up with the simulated observations.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"robomimic dataset {path} not found")
    episodes = []
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise KeyError(f"robomimic dataset {path} has no 'data' group; found top-level keys {sorted(f.keys())}")
        data = f["data"]
        env_name = json.loads(data.attrs["env_args"]).get("env_name") if "env_args" in data.attrs else None
        demos = sorted(data.keys(), key=lambda name: int(name.rsplit("_", 1)[-1]))
        if not demos:
            raise ValueError(f"robomimic dataset {path} has no demos under 'data'")
        for name in demos:
            demo = data[name]
            missing = [key for key in ("obs", "actions", "rewards") if key not in demo]
            missing += [f"obs/{key}" for key in obs_keys if "obs" in demo and key not in demo["obs"]]
            if missing:
                present = sorted(demo["obs"].keys()) if "obs" in demo else sorted(demo.keys())
                raise KeyError(
                    f"robomimic dataset {path}: data/{name} lacks {missing}; it has {present}. "
                    f"Pass obs_keys that exist in the file (a low-dim dataset is needed, not image-only)"
                )
            length = demo["actions"].shape[0]
            parts = []
            for key in obs_keys:
                part = np.asarray(demo["obs"][key])
                if part.shape[0] != length:
                    raise ValueError(f"robomimic dataset {path}: data/{name}/obs/{key} has {part.shape[0]} steps, "
                                     f"expected {length} (the length of data/{name}/actions)")
                parts.append(part.reshape(length, -1))
            observations = np.concatenate(parts, axis=1)
            rewards = demo["rewards"][()]
            episodes.append(Episode(
                observations=observations,
                actions=demo["actions"][()],
                rewards=rewards,
                metadata={
                    "task": env_name,
                    "source": source,
                    "success": bool(np.any(rewards > 0)),
                    "seed": None,
                    "policy_version": None,
                    "imported_from": f"{path}:data/{name}",
                },
            ))
    return episodes
