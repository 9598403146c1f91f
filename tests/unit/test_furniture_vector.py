"""FurnitureSim's own batching behind the vector-env contract (sim/furniture/isaac_vector.py), run against a stand-in
with FurnitureSim's batched API whose envs are the MuJoCo port (IsaacGym is not installable here): chunks, holds
after an episode's end inside a chunk, same-step autoreset with final_obs / final_info, and the path from the
config (`env.vector: native`) to the real FurnitureSim with its install hint."""
from __future__ import annotations

import numpy as np
import pytest

from inril_core.config import load_config
from inril_core.envs import make_vector_env
from inril_sim.furniture.contracts import flatten_observation
from inril_sim.furniture.isaac_vector import HOLD, FurnitureSimVectorEnv
from inril_sim.furniture.mujoco_env import FurnitureMujocoEnv

DOWN = np.array([0, 0, -0.005, 0, 0, 0, 1, -1], dtype=np.float32)


class _Furniture:
    """FurnitureSim's per-env furniture object: ``all_assembled`` as FurnitureSim's _reward leaves it."""

    def __init__(self) -> None:
        self.assembled = False

    def all_assembled(self) -> bool:
        return self.assembled


class _IsaacGym:
    def __init__(self) -> None:
        self.destroyed = []

    def destroy_sim(self, sim) -> None:
        self.destroyed.append(sim)


class StandInFurnitureSim:
    """FurnitureSim's batched state API (reset, step, reset_env, refresh, _get_observation, furnitures) over MuJoCo
    port envs. Part poses are drawn from numpy's global generator, as FurnitureSim draws them. ``assembled_at``
    scripts FurnitureSim's success check (env -> its episode step), which the port's physics reach only after a
    whole expert episode; the actions each env received are kept."""

    def __init__(self, num_envs: int, assembled_at: dict[int, int] | None = None) -> None:
        self.envs = [FurnitureMujocoEnv("one_leg") for _ in range(num_envs)]
        self.furnitures = [_Furniture() for _ in range(num_envs)]
        self.assembled_at = assembled_at or {}
        self.episode_steps = [0] * num_envs
        self.received: list[np.ndarray] = []
        self.isaac_gym, self.sim = _IsaacGym(), object()

    def _get_observation(self) -> dict[str, np.ndarray]:
        robot = [np.concatenate([np.atleast_1d(v) for v in env.robot_state().values()]) for env in self.envs]
        return {"robot_state": np.stack(robot), "parts_poses": np.stack([env.parts_poses() for env in self.envs])}

    def reset_env(self, i: int) -> None:
        self.envs[i].reset(seed=int(np.random.randint(2 ** 31)))
        self.furnitures[i].assembled = False
        self.episode_steps[i] = 0

    def reset(self) -> dict[str, np.ndarray]:
        for i in range(len(self.envs)):
            self.reset_env(i)
        return self._get_observation()

    def refresh(self) -> None:
        pass  # a MuJoCo reset is visible at once

    def step(self, actions: np.ndarray):
        assert actions.dtype == np.float32 and actions.shape == (len(self.envs), 8)
        self.received.append(actions.copy())
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            env.step(action)
            self.episode_steps[i] += 1
            self.furnitures[i].assembled = self.episode_steps[i] >= self.assembled_at.get(i, 10 ** 9)
        n = len(self.envs)
        return self._get_observation(), np.zeros((n, 1)), np.zeros((n, 1), bool), {}


def _vector(sim: StandInFurnitureSim, act_steps: int, max_episode_steps: int) -> FurnitureSimVectorEnv:
    return FurnitureSimVectorEnv(len(sim.envs), "one_leg", act_steps, max_episode_steps, sim_factory=lambda: sim)


def _own_obs(sim: StandInFurnitureSim, i: int) -> np.ndarray:
    env = sim.envs[i]
    return flatten_observation(env.contract, {"robot_state": env.robot_state(), "parts_poses": env.parts_poses()})


def test_chunks_run_in_one_batched_sim_and_observations_are_each_envs_own() -> None:
    sim = StandInFurnitureSim(2)
    vec = _vector(sim, act_steps=4, max_episode_steps=50)
    obs, info = vec.reset(seed=[3, 4])
    assert obs.shape == (2, 49) and info["env_steps"].tolist() == [0, 0]
    obs, reward, terminated, truncated, info = vec.step(np.tile(DOWN, (2, 4, 1)))
    assert len(sim.received) == 4 and info["env_steps"].tolist() == [4, 4]
    assert not (terminated.any() or truncated.any()) and reward.tolist() == [0, 0]
    for i in range(2):
        np.testing.assert_array_equal(obs[i], _own_obs(sim, i))


def test_an_episode_that_ends_inside_a_chunk_is_held_then_reset_with_its_final_observation() -> None:
    sim = StandInFurnitureSim(2, assembled_at={0: 3})
    vec = _vector(sim, act_steps=4, max_episode_steps=6)
    vec.reset(seed=0)
    obs, reward, terminated, truncated, info = vec.step(np.tile(DOWN, (2, 4, 1)))
    # env 0 assembles at its third step: reward 1, terminated, and held for the chunk's last step
    assert terminated.tolist() == [True, False] and reward.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(sim.received[3][0], HOLD)
    np.testing.assert_allclose(sim.received[3][1], DOWN)
    assert info["final_info"]["env_steps"][0] == 3 and info["final_info"]["success"][0]
    assert info["_final_obs"].tolist() == [True, False]
    assert info["env_steps"].tolist() == [0, 4]  # env 0 reports its new episode, as same-step autoreset does
    np.testing.assert_array_equal(obs[0], _own_obs(sim, 0))  # the reset's observation
    assert sim.episode_steps[0] == 0
    # env 1 reaches the 6-step limit after two more steps: truncated, not a success; env 0's new episode ends as
    # its first did (the stand-in assembles env 0 at step 3 of every episode)
    obs, reward, terminated, truncated, info = vec.step(np.tile(DOWN, (2, 4, 1)))
    assert truncated.tolist() == [False, True] and terminated.tolist() == [True, False]
    assert info["final_info"]["env_steps"][1] == 2 and not info["final_info"]["success"][1]
    np.testing.assert_array_equal(sim.received[6][1], HOLD)


def test_a_chunk_of_the_wrong_shape_is_refused() -> None:
    vec = _vector(StandInFurnitureSim(1), act_steps=2, max_episode_steps=10)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"chunks must have shape \(1, 2, 8\)"):
        vec.step(np.zeros((1, 2, 7)))


def test_close_destroys_the_sim() -> None:
    sim = StandInFurnitureSim(1)
    vec = _vector(sim, act_steps=1, max_episode_steps=10)
    vec.close()
    assert sim.isaac_gym.destroyed == [sim.sim]


def test_isaac_config_selects_native_batching_and_without_isaacgym_says_how_to_install_it() -> None:
    cfg = load_config(["task=furniture/one_leg@isaac"])
    assert cfg.env.vector == "native"
    with pytest.raises(ImportError, match=r"isaac-gym.*pip install -e isaacgym/python"):
        make_vector_env(cfg.env.id, 2, cfg.env.max_episode_steps, cfg.policy.act_steps, cfg.env.vector)


def test_native_vectors_need_a_batched_implementation() -> None:
    with pytest.raises(ValueError, match="no batched implementation"):
        make_vector_env("inril_sim:inril/Lift-v0", 2, 10, 4, "native")
