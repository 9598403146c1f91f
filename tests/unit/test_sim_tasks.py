"""The fast direct-MuJoCo tasks honour the env contract (docs/contracts.md) and simulate a real grasp."""
from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import inril_sim
from inril_sim.experts import make_expert
from inril_sim.layout import obs_layout
from inril_sim.rotations import quat_to_mat, xyzw_to_wxyz
from inril_sim.speed import measure_env_steps_per_s
from inril_sim.tasks import CAN_GOAL_CENTER, PEG_POS, CanEnv, LiftEnv, SquareEnv

TASKS = ("lift", "can", "square")
HORIZONS = {"lift": 300, "can": 300, "square": 400}
OBS_DIMS = {"lift": 19, "can": 23, "square": 23}


@pytest.fixture(params=TASKS)
def task(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def env(task: str) -> gym.Env:
    made = gym.make(inril_sim.fast_env_id(task))
    yield made
    made.close()


def test_gymnasium_make_needs_only_the_package_import() -> None:
    """gymnasium 1.2 loads no entry-point plugins: importing inril_sim (explicitly or via the id) registers."""
    code = (
        "import sys, gymnasium; gymnasium.make('inril_sim:inril/Lift-v0').close(); "
        "gymnasium.make('inril/Square-v0').close(); assert 'robosuite' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_package_does_not_load_mujoco() -> None:
    code = "import sys, inril_sim; assert 'mujoco' not in sys.modules and 'robosuite' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_register_envs_twice_is_harmless() -> None:
    inril_sim.register_envs()
    inril_sim.register_envs()
    assert "inril/Can-v0" in gym.registry and "inril/Can-robosuite-v0" in gym.registry


def test_horizon_is_the_contract_time_limit(env: gym.Env, task: str) -> None:
    assert env.spec.max_episode_steps == HORIZONS[task]


def test_observation_is_flat_float32_in_contract_layout(env: gym.Env, task: str) -> None:
    obs, info = env.reset(seed=0)
    layout = env.unwrapped.obs_layout
    assert info == {"success": False}
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape == (OBS_DIMS[task],)
    assert layout == obs_layout(task)
    assert list(layout) == ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    np.testing.assert_allclose(obs[layout["robot0_gripper_qpos"]], [0.020833, -0.020833], atol=1e-4)


def test_object_block_has_robomimic_meaning(env: gym.Env, task: str) -> None:
    obs, _ = env.reset(seed=3)
    layout = env.unwrapped.obs_layout
    objects, eef_pos = obs[layout["object"]], obs[layout["robot0_eef_pos"]]
    eef_quat = obs[layout["robot0_eef_quat"]]
    np.testing.assert_allclose(objects[0:3], env.unwrapped.object_pos, atol=1e-6)
    assert np.isclose(np.linalg.norm(objects[3:7]), 1.0, atol=1e-5)
    if task == "lift":
        np.testing.assert_allclose(objects[7:10], eef_pos - objects[0:3], atol=1e-6)
    else:  # the object position expressed in the eef frame
        eef_mat = quat_to_mat(xyzw_to_wxyz(eef_quat.astype(np.float64)))
        np.testing.assert_allclose(eef_pos + eef_mat @ objects[7:10], objects[0:3], atol=1e-5)
        assert np.isclose(np.linalg.norm(objects[10:14]), 1.0, atol=1e-5)


def test_gripper_starts_pointing_down(env: gym.Env) -> None:
    obs, _ = env.reset(seed=1)
    eef_mat = quat_to_mat(xyzw_to_wxyz(obs[env.unwrapped.obs_layout["robot0_eef_quat"]].astype(np.float64)))
    assert eef_mat[2, 2] < -0.95  # eef z axis (along the fingers) points down, as robosuite's Panda at reset


def test_same_seed_repeats_the_episode(env: gym.Env) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 7)).astype(np.float32)

    def rollout(seed: int) -> np.ndarray:
        first, _ = env.reset(seed=seed)
        return np.stack([first] + [env.step(a)[0] for a in actions])

    assert np.array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7)[0], rollout(8)[0])


def test_out_of_range_actions_act_as_clipped(env: gym.Env) -> None:
    big = np.array([5.0, -3.0, 2.0, 0.0, 0.0, 9.0, 4.0], dtype=np.float32)
    env.reset(seed=2)
    after_big = env.step(big)[0]
    env.reset(seed=2)
    after_clipped = env.step(np.clip(big, -1, 1))[0]
    np.testing.assert_array_equal(after_big, after_clipped)


def test_full_action_moves_about_robosuites_distance(env: gym.Env) -> None:
    """8 steps of a = +1 along x move robosuite's Panda 8.6 cm; the fast hand must be close (same action scale)."""
    obs, _ = env.reset(seed=0)
    eef = env.unwrapped.obs_layout["robot0_eef_pos"]
    start = obs[eef].copy()
    for _ in range(8):
        obs = env.step(np.array([1, 0, 0, 0, 0, 0, -1], dtype=np.float32))[0]
    assert 0.075 < obs[eef][0] - start[0] < 0.095


def test_hand_stays_in_workspace_when_pushed_down() -> None:
    env = LiftEnv()
    env.reset(seed=0)
    for _ in range(40):
        env.step(np.array([0, 0, -1, 0, 0, 0, -1], dtype=np.float32))
    assert env.eef_pos[2] > env.workspace[0][2] - 0.005


def test_expert_episode_ends_in_success_with_reward_one(task: str) -> None:
    """Drive the noise-free expert: success must fire within the horizon, with reward 1 and termination."""
    env = gym.make(inril_sim.fast_env_id(task))
    expert = make_expert(task, noise=0.0, seed=0)
    obs, _ = env.reset(seed=11)
    rewards = []
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        rewards.append(reward)
    env.close()
    assert terminated and not truncated and info["success"]
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0


def _lift_cube(seed: int) -> tuple[LiftEnv, np.ndarray]:
    env = LiftEnv()
    expert = make_expert("lift", noise=0.0, seed=0)
    obs, _ = env.reset(seed=seed)
    terminated = False
    while not terminated:
        obs, _, terminated, _, _ = env.step(expert.act(obs))
    for _ in range(15):  # carry it well clear of the table
        obs = env.step(np.array([0, 0, 1, 0, 0, 0, 1], dtype=np.float32))[0]
    return env, obs


def test_grasped_cube_moves_with_the_hand_by_finger_contact_only() -> None:
    env, _ = _lift_cube(seed=4)
    offset = env.eef_pos - env.object_pos
    for action in ([1, 0, 0, 0, 0, 0, 1], [-1, 1, 0, 0, 0, 1, 1]):
        for _ in range(10):
            env.step(np.array(action, dtype=np.float32))
    np.testing.assert_allclose(env.eef_pos - env.object_pos, offset, atol=0.005)
    assert env.model.neq == 1  # the only equality constraint is the hand's weld: nothing welds the cube
    cube_body = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, "object")
    touching = {env.model.geom(c.geom[k]).name for c in env.data.contact[: env.data.ncon] for k in (0, 1)
                if cube_body in (env.model.geom_bodyid[c.geom[0]], env.model.geom_bodyid[c.geom[1]])}
    assert touching == {"cube", "finger1_pad", "finger2_pad"}


def test_lifted_cube_falls_when_the_gripper_opens() -> None:
    env, _ = _lift_cube(seed=5)
    assert env.object_pos[2] > 0.95
    for _ in range(15):
        env.step(np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32))
    assert env.object_pos[2] < 0.83  # back on the table (top at 0.8, cube half size <= 0.022)


@pytest.mark.parametrize("env_class, goal", [(CanEnv, CAN_GOAL_CENTER), (SquareEnv, PEG_POS)])
def test_placement_counts_only_after_the_gripper_lets_go(env_class: type, goal: np.ndarray) -> None:
    """robosuite's Can and Square success needs the object in place and the eef more than 4.2 cm away."""
    env = env_class()
    env.reset(seed=0)
    resting_z = env.object_pos[2]
    env._set_object_pose(np.array([goal[0], goal[1], resting_z]), 0.0)
    env.data.qpos[env._hand_qpos:env._hand_qpos + 3] = [goal[0], goal[1], resting_z + 0.02]
    mujoco.mj_forward(env.model, env.data)
    assert not env._is_success()
    env.data.qpos[env._hand_qpos + 2] = resting_z + 0.2
    assert env._is_success()
    env._set_object_pose(np.array([goal[0] + 0.1, goal[1], resting_z]), 0.0)
    assert not env._is_success()


def _offscreen_gl_available() -> bool:
    """Probe in a child process: a failed GL context leaves a half-built Renderer that warns when collected."""
    probe = "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).close()"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def test_render_returns_an_rgb_image() -> None:
    if not _offscreen_gl_available():
        pytest.skip("no offscreen OpenGL here (set MUJOCO_GL=egl or osmesa on a machine that has it)")
    env = CanEnv(render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    image = env.render()
    env.close()
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 0


def test_speed_measurement_reports_a_positive_rate() -> None:
    assert measure_env_steps_per_s("inril/Lift-v0", n_steps=50) > 0
