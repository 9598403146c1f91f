"""The MuJoCo port of FurnitureBench's round_table (sim/furniture/round_table_scene.py on the shared scene, screw.py):
the scene compiles from the furniture_bench package's assets, the env keeps FurnitureBench's contract, and both
threads (leg into the top, base onto the leg) behave like threads: turn to descend, seat at furniture_bench's
assembled poses that both success checks accept."""
import gymnasium as gym
import mujoco
import numpy as np
import pytest
import yaml
from furniture_bench.utils import transform as T

from inril_sim.furniture.contracts import ACTION_DIM, assembled_pairs, assembled_rel_pose, furniture_spec
from inril_sim.furniture.expert import FurnitureExpert
from inril_sim.furniture.frames import pose_to_mat
from inril_sim.furniture.mujoco_env import FurnitureMujocoEnv
from inril_sim.furniture.round_table_scene import (BASE_MASS, BASE_NAME, BASE_THREAD_START, BOSS_TOP_Z, LEG_MASS,
                                                   LEG_NAME, LEG_THREAD_START, LEG_TIP_Y, TOP_MASS, TOP_NAME)
from test_furniture_mujoco import check_seeded_resets

HOLD = np.array([0, 0, 0, 0, 0, 0, 1, -1.0])  # no motion, gripper open
LEG_THREAD, BASE_THREAD = 0, 1
TWIST = 0.04  # N m, as the one_leg thread test


@pytest.fixture(scope="module")
def env():
    env = FurnitureMujocoEnv("round_table")
    yield env
    env.close()


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _place(env, thread: int, height: float, yaw: float = 0.0, lateral: float = 0.0) -> None:
    """Put the part that screws into ``thread`` on its axis (``lateral`` off it), ``height`` above its seat and
    turned ``yaw`` about the axis, at rest."""
    host = env.ids.thread_hosts[thread]
    axis = env.threads.axis[thread]
    offset = np.eye(4)
    offset[:3, :3] = _axis_rotation(axis, yaw)
    sideways = np.cross(axis, [1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    offset[:3, 3] = axis * height + lateral * sideways / np.linalg.norm(sideways)
    pose = pose_to_mat(env.data.xpos[host], env.data.xquat[host]) @ env.ids.threads[thread].seat @ offset
    part = list(env.ids.part_bodies).index(env.ids.thread_parts[thread, 0])
    qpos = env.ids.part_qpos[part]
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(pose[:3, :3]).reshape(-1))
    env.data.qpos[qpos[:3]], env.data.qpos[qpos[3:]] = pose[:3, 3], quat
    env.data.qvel[env.ids.part_dof[part]] = 0.0
    mujoco.mj_forward(env.model, env.data)


def _twist(env, thread: int, torque: float) -> None:
    """``torque`` about the thread's outward axis on the screwing part (negative = clockwise seen from the way it
    backs out = screw in), and the opposite on the top, as a hand holding it: a free top would spin on the table."""
    body = env.ids.thread_parts[thread, 0]
    axis = env.data.xmat[body].reshape(3, 3) @ env.threads.axis[thread]
    env.data.xfrc_applied[body] = np.r_[0, 0, 0, torque * axis]
    env.data.xfrc_applied[env.ids.top_body] = np.r_[0, 0, 0, -torque * axis]


def _height_and_yaw(env, thread: int) -> tuple[float, float]:
    heights, yaws = env.threads.heights_and_yaws()
    return float(heights[thread, 0]), float(yaws[thread, 0])


def _screw_in(env, thread: int, steps: int) -> int:
    """Twist until FurnitureBench's strict check passes for the thread's pair (its expert screws until then), then
    20 steps more against the seat; the steps it took to pass."""
    pair = ((0, 1), (1, 2))[thread]
    for step in range(steps):
        _twist(env, thread, -TWIST)
        env.step(HOLD)
        if pair in assembled_pairs(env.contract, env.parts_poses(), strict=True):
            break
    for _ in range(20):
        _twist(env, thread, -TWIST)
        env.step(HOLD)
    env.data.xfrc_applied[:] = 0.0
    return step + 1


def test_scene_is_built_from_the_packages_round_table_assets(env):
    model = env.model
    meshes = {model.mesh(i).name for i in range(model.nmesh)}
    assert {TOP_NAME, LEG_NAME, BASE_NAME, "table", "link0"} <= meshes
    for name in (TOP_NAME, LEG_NAME, BASE_NAME):
        body = model.body(name)
        visual = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body.id and model.geom_group[g] == 2]
        colliding = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body.id and model.geom_contype[g]]
        assert len(visual) == 1 and model.geom_contype[visual[0]] == 0 and len(colliding) >= 7
    masses = [float(model.body(n).mass[0]) for n in (TOP_NAME, LEG_NAME, BASE_NAME)]
    assert masses == pytest.approx([TOP_MASS, LEG_MASS, BASE_MASS])
    assert masses == pytest.approx([0.12169, 0.03228, 0.03396])  # sim_config's masses
    assert [model.body(f"carrier{k}").parentid[0] for k in (0, 1)] == [model.body(TOP_NAME).id,
                                                                      model.body(LEG_NAME).id]


def test_the_threads_seat_at_furniture_benchs_assembled_poses(env):
    for thread, pair in ((LEG_THREAD, (0, 1)), (BASE_THREAD, (1, 2))):
        np.testing.assert_allclose(env.ids.threads[thread].seat, assembled_rel_pose("round_table", pair))
    assert {LEG_THREAD_START, BASE_THREAD_START} == {0.0117, 0.011}


def test_observation_and_action_follow_the_round_table_contract(env):
    spec = furniture_spec("round_table")
    obs, info = env.reset(seed=0)
    assert spec.part_names == (TOP_NAME, LEG_NAME, BASE_NAME) and spec.should_be_assembled == ((0, 1), (1, 2))
    assert obs.shape == (spec.obs_dim,) == (35,) and env.observation_space.shape == (35,)
    assert env.action_space.shape == (ACTION_DIM,) == (8,)
    assert info == {"success": False, "success_strict": False}
    layout = spec.layout()
    for part in env.furniture.parts:  # where furniture_bench's randomized reset put them (AprilTag frame)
        np.testing.assert_allclose(obs[layout[f"pose/{part.name}"]][:3], part.reset_pos[0], atol=1e-6)


def test_parts_rest_where_they_were_reset(env):
    """The leg lies on its side and the base stands on its bolt tip (FurnitureBench's reset poses): neither may
    roll, topple or creep."""
    for seed in (0, 1):
        env.reset(seed=seed)
        start = env.parts_poses().reshape(-1, 7)
        for _ in range(40):
            env.step(HOLD)
        end = env.parts_poses().reshape(-1, 7)
        assert np.linalg.norm(end[:, :3] - start[:, :3], axis=1).max() < 0.002
        assert np.abs(np.abs((end[:, 3:] * start[:, 3:]).sum(1)) - 1).max() < 1e-3


def test_seeded_resets_repeat_and_differ(env):
    check_seeded_resets(env)


def check_screws_in_only_when_turned_seats_and_unscrews(env, thread: int, height: float, thread_start: float) -> None:
    """A part stood on ``thread`` ``height`` above its seat engages at the thread start, does not descend when
    pushed along its axis, screws in when turned, seats assembled at the identity rotation, and unscrews in reverse
    (shared with the lamp's bulb)."""
    env.reset(seed=0)
    _place(env, thread, height=height, yaw=0.7)
    for _ in range(10):
        env.step(HOLD)
    engaged_height, _ = _height_and_yaw(env, thread)
    assert env.threads.engaged[thread] == 0 and engaged_height <= thread_start + 1e-3
    assert not assembled_pairs(env.contract, env.parts_poses())
    part = env.ids.thread_parts[thread, 0]
    env.data.xfrc_applied[part, :3] = -5.0 * env.data.xmat[part].reshape(3, 3)[:, 1]  # push along the axis, no turn
    for _ in range(10):
        env.step(HOLD)
    env.data.xfrc_applied[:] = 0.0
    assert _height_and_yaw(env, thread)[0] > engaged_height - 0.002
    assert _screw_in(env, thread, 200) < 200
    seated, yaw = _height_and_yaw(env, thread)
    assert abs(seated) < 0.002 and abs(yaw) < np.radians(5)
    poses = env.parts_poses()
    assert assembled_pairs(env.contract, poses) == [(0, 1)] == assembled_pairs(env.contract, poses, strict=True)
    part_up = env.data.xmat[part].reshape(3, 3)[:, 1]
    for _ in range(200):  # reverse, lifting gently: it climbs the thread and is let go past the thread start
        _twist(env, thread, TWIST)
        env.data.xfrc_applied[part, :3] = 0.5 * part_up
        env.step(HOLD)
        if env.threads.engaged[thread] < 0:
            break
    env.data.xfrc_applied[:] = 0.0
    assert env.threads.engaged[thread] == -1 and _height_and_yaw(env, thread)[0] > thread_start - 1e-3
    assert not assembled_pairs(env.contract, env.parts_poses())


def test_the_leg_screws_into_the_top_only_when_turned_and_seats_assembled(env):
    check_screws_in_only_when_turned_seats_and_unscrews(env, LEG_THREAD, 0.02, LEG_THREAD_START)


def test_a_leg_let_go_above_the_hole_is_caught_by_the_thread_not_seen_below_it(env):
    """FurnitureBench's expert lets the leg go 5 cm above the hole; it falls 8 mm per physics step, past the
    thread start, and must show up where the thread catches it (within a pitch below the start), never near the
    seat, where the strict check would pass on an unscrewed leg."""
    for yaw in (-0.13, 1.0, 2.5):
        env.reset(seed=0)
        _place(env, LEG_THREAD, height=0.05, yaw=yaw)
        for _ in range(10):
            env.step(HOLD)
            height = _height_and_yaw(env, LEG_THREAD)[0]
            assert height > LEG_THREAD_START - env.threads.pitch[LEG_THREAD] - 0.001
            assert not assembled_pairs(env.contract, env.parts_poses(), strict=True)
        assert env.threads.engaged[LEG_THREAD] == 0


def test_the_base_screws_onto_the_seated_leg_and_the_table_counts_as_assembled(env):
    env.reset(seed=0)
    _place(env, LEG_THREAD, height=0.001)  # engages at once and is pulled onto the seat
    _place(env, BASE_THREAD, height=0.02, yaw=-1.0)
    for _ in range(10):
        _, _, terminated, _, info = env.step(HOLD)
    engaged_height, _ = _height_and_yaw(env, BASE_THREAD)
    assert list(env.threads.engaged) == [0, 0] and engaged_height <= BASE_THREAD_START + 1e-3
    assert not terminated and not info["success"]
    assert assembled_pairs(env.contract, env.parts_poses(), strict=True) == [(0, 1)]
    base = env.ids.thread_parts[BASE_THREAD, 0]
    env.data.xfrc_applied[base, :3] = -5.0 * env.data.xmat[base].reshape(3, 3)[:, 2]  # push along the axis
    for _ in range(10):
        env.step(HOLD)
    env.data.xfrc_applied[:] = 0.0
    assert _height_and_yaw(env, BASE_THREAD)[0] > engaged_height - 0.002
    assert _screw_in(env, BASE_THREAD, 200) < 200
    _, reward, terminated, _, info = env.step(HOLD)
    height, yaw = _height_and_yaw(env, BASE_THREAD)
    assert abs(height) < 0.002 and abs(yaw) < np.radians(5)
    assert terminated and reward == 1.0 and info["success"] and info["success_strict"]


def test_success_fires_for_the_assembled_table_and_not_for_near_misses(env):
    env.reset(seed=0)
    _place(env, LEG_THREAD, height=0.001)
    _place(env, BASE_THREAD, height=0.001)
    for _ in range(5):
        _, reward, terminated, _, info = env.step(HOLD)
    assert terminated and reward == 1.0 and info["success"] and info["success_strict"]
    seated = env.parts_poses().reshape(-1, 7)
    heights, yaws = env.threads.heights_and_yaws()
    assert np.abs(heights).max() < 0.001 and np.abs(yaws).max() < np.radians(2)
    base_up = seated.copy()  # the base 6 mm up the leg's axis: past the reward check's 5 mm along it
    base_up[2, :3] += 0.006 * (env.frames.sim_to_april[:3, :3] @ env.data.xmat[env.ids.part_bodies[1]].reshape(3, 3)
                               [:, 1])
    assert assembled_pairs(env.contract, base_up.reshape(-1)) == [(0, 1)]
    leg_turned = seated.copy()  # the leg turned 25 degrees about its axis: past the reward check's ~20 degrees
    quat = np.array([0.0, np.sin(np.radians(12.5)), 0.0, np.cos(np.radians(12.5))])  # about the leg's own y
    rot = T.quat2mat(leg_turned[1, 3:]) @ T.quat2mat(quat)
    leg_turned[1, 3:] = T.mat2quat(rot)
    assert (0, 1) not in assembled_pairs(env.contract, leg_turned.reshape(-1))


def test_a_leg_dropped_off_the_hole_neither_engages_nor_succeeds(env):
    env.reset(seed=0)
    _place(env, LEG_THREAD, height=0.03, lateral=0.02)  # 2 cm off the hole axis: onto the boss's rim
    for _ in range(20):
        _, _, terminated, _, info = env.step(HOLD)
    assert (env.threads.engaged == -1).all() and not terminated and not info["success"]
    assert not assembled_pairs(env.contract, env.parts_poses())


def test_round_table_is_registered_with_its_task_config(env):
    import inril_sim  # noqa: F401  registers the ids

    spec = gym.spec("inril/Furniture-round_table-v0")
    assert spec.max_episode_steps == 1000 and spec.kwargs == {"furniture": "round_table"}
    with open("config/tasks/furniture/round_table.yaml") as f:
        task = yaml.safe_load(f)
    contract = furniture_spec("round_table")
    assert task["env"]["id"] == "inril_sim:inril/Furniture-round_table-v0"
    assert (task["env"]["obs_dim"], task["env"]["act_dim"], task["env"]["max_episode_steps"]) == (
        contract.obs_dim, ACTION_DIM, 1000)


# Low-randomness seeds on which the expert screwed the leg in (docs/results/furniture-round_table/): 0 and 3 failed
# before the round table's leg got its own state machine (the leg bounced out of the hole; the top spun with it).
EXPERT_SEEDS = (0, 3)
EXPERT_STEPS = 400


def _top_yaw(env) -> float:
    rot = env.data.xmat[env.ids.top_body].reshape(3, 3)
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


@pytest.fixture(scope="module")
def expert_episodes(env):
    """The expert's episode on each of ``EXPERT_SEEDS``: what the tests below read off it."""
    episodes = []
    for seed in EXPERT_SEEDS:
        obs, _ = env.reset(seed=seed)
        expert = FurnitureExpert("round_table", seed=seed)
        leg = expert.furniture.parts[1]
        seen: dict[str, tuple[float, int, float]] = {}  # leg state -> (height above the seat, engaged, top yaw)
        info = {}
        for step in range(EXPERT_STEPS):
            obs, _, _, _, info = env.step(expert.act(obs))
            if leg._state not in seen:
                seen[leg._state] = (_height_and_yaw(env, LEG_THREAD)[0], int(env.threads.engaged[LEG_THREAD]),
                                    _top_yaw(env))
            if expert.assembled:  # the leg: the base's state machine takes over from here
                break
        episodes.append({"seed": seed, "expert": expert, "steps": step + 1, "seen": seen, "info": info,
                         "strict": assembled_pairs(env.contract, env.parts_poses(), strict=True),
                         "top_turn": np.angle(np.exp(1j * (_top_yaw(env) - seen["screw"][2])))})
    return episodes


def test_round_table_brings_its_own_leg_and_base_state_machines_and_one_leg_keeps_furniture_benchs():
    round_table, one_leg = FurnitureExpert("round_table"), FurnitureExpert("one_leg")
    leg, base = round_table.furniture.parts[1], round_table.furniture.parts[2]
    assert type(leg).__module__ == "inril_sim.furniture.round_table_expert" and leg.name == LEG_NAME
    assert type(base).__module__ == "inril_sim.furniture.round_table_expert" and base.name == BASE_NAME
    assert leg.top_shown_higher == pytest.approx(0.0304, abs=5e-4)  # the tip 2 mm above the mouth, as on one_leg
    assert all(type(p).__module__.startswith("furniture_bench.") for p in one_leg.furniture.parts)
    assert (round_table.pairs, one_leg.pairs) == ([(0, 1), (1, 2)], [(0, 4)])


def test_the_expert_screws_the_leg_into_the_top_first(expert_episodes):
    for episode in expert_episodes:
        assert episode["expert"].assembled == [(0, 1)] and episode["steps"] < EXPERT_STEPS, episode["seed"]
        assert episode["strict"] == [(0, 1)] and not episode["info"]["success"]  # the base is still to come


def test_the_expert_assembles_the_whole_table_tipping_pinching_and_screwing_the_base(env):
    """Seed 0 (low): the base is tipped onto its rim, pinched by the raised rim, carried bolt down over the leg,
    let go above the thread and screwed in by chord pinches; both of FurnitureBench's checks pass (665 steps)."""
    obs, _ = env.reset(seed=0)
    expert = FurnitureExpert("round_table", seed=0)
    info = {}
    for _ in range(1000):
        obs, _, _, _, info = env.step(expert.act(obs))
        if expert.done:
            break
    assert expert.done and info["success"] and info["success_strict"]
    assert assembled_pairs(env.contract, env.parts_poses(), strict=True) == [(0, 1), (1, 2)]
    base_states = [line.split()[-1] for line in expert.transitions if line.startswith("Changing state")]
    for state in ("tip_press", "pinch_grasp", "let_go", "screw"):
        assert state in base_states, state


def test_the_leg_is_let_go_inside_the_holes_mouth_and_the_thread_catches_it(expert_episodes):
    """Let go of at furniture_bench's square-table height the leg hung 5 cm above its seat, 2.4 cm above the mouth,
    and bounced out of the hole; lowered, its tip is a few millimetres into the mouth and the thread holds it when
    the hand comes back to twist."""
    mouth = BOSS_TOP_Z - (assembled_rel_pose("round_table", (0, 1))[2, 3] + LEG_TIP_Y)  # tip at the mouth: seat + 26 mm
    for episode in expert_episodes:
        height, engaged, _ = episode["seen"]["insert_release"]
        assert LEG_THREAD_START < height < mouth, (episode["seed"], height)
        assert episode["seen"]["pre_grasp"][1] == 0, episode["seed"]


def test_pressing_while_twisting_keeps_the_round_top_from_spinning(expert_episodes):
    """Twisted with furniture_bench's light push, the free round top turned ~50 degrees with each 95-degree twist;
    pressed down, it holds while the leg screws in (several twists)."""
    for episode in expert_episodes:
        twists = sum(line.endswith("to screw") for line in episode["expert"].transitions)
        assert twists >= 3 and abs(np.degrees(episode["top_turn"])) < 30, (episode["seed"], twists,
                                                                            np.degrees(episode["top_turn"]))
