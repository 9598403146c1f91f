"""Rollout workers on Ray: the local vector env, split over actors that may live on other machines.

One machine steps only as many simulators as it has cores. `RayVectorEnv` spreads the n envs over W Ray actors
(`RolloutWorker`), each holding a contiguous slice of them as the *same* local vector env the single-machine path
uses (`make_vector_env(..., vector="sync")`), so there is one worker code path, not two. A step sends each worker
its slice of the actions, waits for all of them at once, and concatenates their outputs exactly as gymnasium's
SyncVectorEnv would have: same observations, rewards, terminated/truncated, and the same info keys and masks
(`final_obs`, `final_info`, `env_steps`, `success`) — the learner cannot tell which vector env it was given.

Ray is an optional dependency imported only here, and only when a Ray vector env is asked for: the rest of the
core stays torch + numpy. Every node of a cluster needs inril (and the simulator package named in env.id)
installed in the same versions as the driver, since a worker imports them to build its envs.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from inril_core.envs import make_vector_env

RAY_REQUIREMENT = "ray==2.60.0"  # the version pinned in requirements.txt
# Ray's own switch for a single-machine session: with it off, Ray takes 127.0.0.1 as the node address and its
# servers listen on loopback only, instead of on every interface (a local session needs no one else to reach it).
# Ray reads it when it is first imported, and its processes inherit it from the environment.
_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(local: bool) -> ModuleType:
    """Import Ray, or say how to install it; `local` makes a session started by this process loopback-only."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(_LOCAL_ONLY_ENV, "0")
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"env.vector=ray needs Ray: `pip install {RAY_REQUIREMENT}` (pinned in requirements.txt) "
                          "here and on every machine of the cluster, or use env.vector=sync") from exc
    return ray


def connect_ray(address: str | None, num_cpus: int | None = None) -> ModuleType:
    """The `ray` module, connected: to the session already open in this process, to the cluster at `address`
    ("auto", "host:port" or "ray://host:port"), or else to a new local single-machine session on loopback.

    `num_cpus` sizes a new local session only (Ray's logical CPUs: one per rollout worker).
    """
    ray = import_ray(local=address is None)
    if ray.is_initialized():
        return ray
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
        return ray
    try:
        ray.init(address=address)
    except Exception as exc:  # Ray raises ConnectionError, ValueError or RuntimeError depending on the address kind
        raise ConnectionError(
            f"cannot connect to the Ray cluster at '{address}' (env.ray_address): {exc}. Start one with "
            "`ray start --head` on the head node (and `ray start --address=<head>:6379` on the others), or leave "
            "env.ray_address empty to run the workers on this machine") from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """`connect_ray` for the duration of a block; a session this block started is shut down at its end."""
    ray = import_ray(local=address is None)
    started = not ray.is_initialized()
    connect_ray(address, num_cpus)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


class RolloutWorker:
    """One Ray actor's slice of the envs, held as the local synchronous vector env (same code as one machine)."""

    def __init__(self, env_id: str, n_envs: int, max_episode_steps: int, act_steps: int) -> None:
        self.envs = make_vector_env(env_id, n_envs, max_episode_steps, act_steps, vector="sync")

    def spaces(self) -> dict[str, Any]:
        """What the driver needs to present itself as the same vector env: single spaces and metadata."""
        return {"observation": self.envs.single_observation_space, "action": self.envs.single_action_space,
                "metadata": self.envs.metadata, "render_mode": self.envs.render_mode}

    def reset(self, seed: list[int | None], options: dict | None) -> tuple[Any, dict]:
        return self.envs.reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        return self.envs.step(actions)

    def close(self) -> None:
        self.envs.close()


def merge_infos(parts: list[dict], sizes: list[int]) -> dict:
    """Concatenate the vector infos of consecutive env slices into the info one vector env over all of them gives.

    gymnasium builds a vector info key by key: an array over all envs, typed by the first env that reported the key
    (None-filled for objects such as `final_obs`, zero-filled otherwise), a `_key` mask beside it, and nested dicts
    (`final_info`) built the same way. Taking each key's dtype from the first slice that has it and the key order of
    first appearance reproduces that exactly.
    """
    offsets = np.cumsum([0, *sizes])
    merged: dict = {}
    for key in dict.fromkeys(k for part in parts for k in part):
        present = [(part[key], offsets[i]) for i, part in enumerate(parts) if key in part]
        first = present[0][0]
        if isinstance(first, dict):
            merged[key] = merge_infos([part.get(key, {}) for part in parts], sizes)
            continue
        if first.dtype == object:  # per-env objects (final_obs): Ray returns arrays read-only, gymnasium writable
            out = np.full(offsets[-1], None, dtype=object)
            present = [(copy.deepcopy(value), start) for value, start in present]
        else:
            out = np.zeros((offsets[-1], *first.shape[1:]), dtype=first.dtype)
        for value, start in present:
            out[start:start + len(value)] = value
        merged[key] = out
    return merged


class RayVectorEnv(VectorEnv):
    """n envs in W Ray actors (contiguous slices, sizes differing by at most one), stepped in parallel.

    Behaves as `make_vector_env(..., vector="sync")` with same-step autoreset. Each worker reserves one Ray CPU,
    so Ray places at most one worker per CPU of the cluster; a local session is started with at least W CPUs.
    """

    def __init__(self, env_id: str, n_envs: int, max_episode_steps: int, act_steps: int, workers: int,
                 ray_address: str | None = None, ready_timeout_s: float = 120.0) -> None:
        self.closed = True  # nothing to close until the workers are up (VectorEnv.__del__ closes what is open)
        if not 1 <= workers <= n_envs:
            raise ValueError(f"env.workers must be between 1 and env.n_envs={n_envs}, got {workers}")
        ray = connect_ray(ray_address, num_cpus=max(os.cpu_count() or 1, workers))
        self._ray = ray
        self.num_envs = n_envs
        self.sizes = [len(s) for s in np.array_split(np.arange(n_envs), workers)]
        self._offsets = np.cumsum([0, *self.sizes])
        actor = ray.remote(num_cpus=1)(RolloutWorker)
        tag = uuid.uuid4().hex[:8]
        self.workers = [actor.options(name=f"inril-rollout-{tag}-{i}").remote(env_id, size, max_episode_steps,
                                                                             act_steps)
                        for i, size in enumerate(self.sizes)]
        try:
            spaces = ray.get([w.spaces.remote() for w in self.workers], timeout=ready_timeout_s)[0]
        except ray.exceptions.GetTimeoutError as exc:
            self._kill_workers()
            raise TimeoutError(
                f"Ray did not start {workers} rollout workers (1 CPU each) within {ready_timeout_s:.0f} s: the "
                f"cluster has {ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
                f"{ray.available_resources().get('CPU', 0):.0f} free. Lower env.workers or add nodes") from exc
        except Exception:
            self._kill_workers()
            raise
        self.single_observation_space = spaces["observation"]
        self.single_action_space = spaces["action"]
        self.observation_space = batch_space(self.single_observation_space, n_envs)
        self.action_space = batch_space(self.single_action_space, n_envs)
        self.metadata = dict(spaces["metadata"], autoreset_mode=AutoresetMode.SAME_STEP)
        self.render_mode = spaces["render_mode"]
        self._worker_obs_spaces = [batch_space(self.single_observation_space, size) for size in self.sizes]
        self._worker_obs: list[Any] = [None] * workers
        self.closed = False

    def _slices(self) -> Iterator[slice]:
        for start, stop in zip(self._offsets[:-1], self._offsets[1:]):
            yield slice(int(start), int(stop))

    def _concat_obs(self) -> Any:
        items = [o for obs, space in zip(self._worker_obs, self._worker_obs_spaces) for o in iterate(space, obs)]
        return concatenate(self.single_observation_space, items,
                           create_empty_array(self.single_observation_space, self.num_envs, fn=np.zeros))

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every env (or those in options["reset_mask"]); seed i goes to env i, wherever it lives."""
        if seed is None:
            seed = [None] * self.num_envs
        elif isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        if len(seed) != self.num_envs:
            raise ValueError(f"reset got {len(seed)} seeds for {self.num_envs} envs")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        calls = {}
        for i, (worker, part) in enumerate(zip(self.workers, self._slices())):
            worker_options = options or None
            if mask is not None:
                if not mask[part].any():
                    continue  # the local vector env rejects a mask that resets nothing
                worker_options = dict(options, reset_mask=mask[part])
            calls[i] = worker.reset.remote(list(seed[part]), worker_options)
        results = dict(zip(calls, self._ray.get(list(calls.values()))))
        for i, (obs, _) in results.items():
            self._worker_obs[i] = obs
        infos = [results[i][1] if i in results else {} for i in range(len(self.workers))]
        return self._concat_obs(), merge_infos(infos, self.sizes)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Send each worker its slice of the actions, wait for all, and concatenate as one vector env would."""
        per_env = list(iterate(self.action_space, actions))
        futures = [worker.step.remote(concatenate(self.single_action_space, per_env[part],
                                                  create_empty_array(self.single_action_space, len(per_env[part]))))
                   for worker, part in zip(self.workers, self._slices())]
        results = self._ray.get(futures)
        self._worker_obs = [r[0] for r in results]
        rewards, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in (1, 2, 3))
        return self._concat_obs(), rewards, terminated, truncated, merge_infos([r[4] for r in results], self.sizes)

    def close_extras(self, **kwargs: Any) -> None:
        """Close each worker's envs, then end the actors; the Ray session itself stays for whoever else uses it."""
        try:
            self._ray.get([w.close.remote() for w in self.workers])
        finally:
            self._kill_workers()

    def _kill_workers(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker)
        self.workers = []
