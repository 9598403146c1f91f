"""The robosuite-backed tasks honour the env contract (docs/contracts.md) and line up with the fast tasks."""
from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from inril_sim.parity import BACKEND_IDS
from inril_sim.robosuite_tasks import register_robosuite_envs

TASKS = ("lift", "can", "square")
HORIZONS = {"lift": 300, "can": 300, "square": 400}


@pytest.fixture(scope="module")
def envs() -> dict[str, gym.Env]:
    """One robosuite env per task, shared: building one takes about a second."""
    register_robosuite_envs()
    made = {task: gym.make(BACKEND_IDS[task]["robosuite"]) for task in TASKS}
    yield made
    for env in made.values():
        env.close()


def test_registering_does_not_import_robosuite() -> None:
    code = (
        "import sys; from inril_sim.robosuite_tasks import register_robosuite_envs; register_robosuite_envs(); "
        "import gymnasium; assert 'inril/Lift-robosuite-v0' in gymnasium.registry; "
        "assert 'robosuite' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("task", TASKS)
def test_observation_layout_matches_fast_env(envs: dict[str, gym.Env], task: str) -> None:
    import inril_sim

    inril_sim.register_envs()
    fast = gym.make(BACKEND_IDS[task]["fast"])
    try:
        assert envs[task].unwrapped.obs_layout == fast.unwrapped.obs_layout
        assert envs[task].observation_space.shape == fast.observation_space.shape
    finally:
        fast.close()


@pytest.mark.parametrize("task", TASKS)
def test_observation_is_flat_float32_covering_layout(envs: dict[str, gym.Env], task: str) -> None:
    env = envs[task]
    obs, info = env.reset(seed=0)
    layout = env.unwrapped.obs_layout
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    assert list(layout)[-3:] == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert max(s.stop for s in layout.values()) == obs.shape[0]
    assert info == {"success": False}


@pytest.mark.parametrize("task", TASKS)
def test_action_space_is_unit_box_of_seven(envs: dict[str, gym.Env], task: str) -> None:
    space = envs[task].action_space
    assert space.shape == (7,)
    assert np.all(space.low == -1.0) and np.all(space.high == 1.0)


@pytest.mark.parametrize("task", TASKS)
def test_horizon_is_the_contract_time_limit(envs: dict[str, gym.Env], task: str) -> None:
    assert envs[task].spec.max_episode_steps == HORIZONS[task]


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_repeats_the_episode(envs: dict[str, gym.Env], task: str) -> None:
    env = envs[task]
    action = np.array([0.5, -0.3, -0.2, 0.1, 0.0, 0.2, 1.0], dtype=np.float32)

    def rollout(seed: int) -> np.ndarray:
        first, _ = env.reset(seed=seed)
        return np.stack([first] + [env.step(action)[0] for _ in range(3)])

    assert np.array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7)[0], rollout(8)[0])


@pytest.mark.parametrize("task", TASKS)
def test_object_features_are_valid_right_after_reset(envs: dict[str, gym.Env], task: str) -> None:
    """robosuite 1.5.2's own object-to-eef observables read zeros at reset; ours must not."""
    env = envs[task]
    obs, _ = env.reset(seed=1)
    layout = env.unwrapped.obs_layout
    objects, eef_pos = obs[layout["object"]], obs[layout["robot0_eef_pos"]]
    assert np.isclose(np.linalg.norm(objects[3:7]), 1.0, atol=1e-4)
    if task == "lift":
        np.testing.assert_allclose(objects[7:10], eef_pos - objects[0:3], atol=1e-6)
    else:
        assert np.linalg.norm(objects[7:10]) > 0.05
        assert np.isclose(np.linalg.norm(objects[10:14]), 1.0, atol=1e-4)


def test_success_gives_reward_one_and_terminates(envs: dict[str, gym.Env]) -> None:
    env = envs["lift"]
    env.reset(seed=2)
    suite_env = env.unwrapped.robosuite_env
    cube_joint = suite_env.cube.joints[0]
    lifted = suite_env.sim.data.get_joint_qpos(cube_joint).copy()
    lifted[2] += 0.2
    suite_env.sim.data.set_joint_qpos(cube_joint, lifted)
    suite_env.sim.forward()
    _, reward, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
