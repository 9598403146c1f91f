"""The action filter: NaN refused, shapes checked, the workspace never left, steps limited, safe actions untouched."""
from __future__ import annotations

import numpy as np
import pytest

from inril_core.safety import SafetyLimits, filter_action, hold_action, load_limits

LIMITS = SafetyLimits(workspace_min_m=np.array([-0.3, -0.3, 0.8]), workspace_max_m=np.array([0.3, 0.3, 1.2]),
                      max_step_m=0.03, max_rotation_rad=0.2, pos_scale_m=0.05, rot_scale_rad=0.5)
CENTRE = np.array([0.0, 0.0, 1.0])


def test_nan_action_is_rejected_with_the_hold_action() -> None:
    action = np.array([0.1, np.nan, 0.0, 0.0, 0.0, 0.0, 1.0])
    safe, report = filter_action(action, CENTRE, LIMITS)
    assert report.rejected and "NaN" in report.reason
    np.testing.assert_array_equal(safe, hold_action())
    assert safe[6] == 0.0  # gripper left as it is


def test_inf_end_effector_position_is_rejected() -> None:
    safe, report = filter_action(np.zeros(7), np.array([0.0, np.inf, 1.0]), LIMITS)
    assert report.rejected and "end-effector" in report.reason
    np.testing.assert_array_equal(safe, hold_action())


@pytest.mark.parametrize("shape", [(6,), (1, 7), (8,)])
def test_wrong_action_shape_is_a_clear_error(shape) -> None:
    with pytest.raises(ValueError, match=r"action must have shape \(7,\)"):
        filter_action(np.zeros(shape), CENTRE, LIMITS)


def test_wrong_position_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"eef_pos must have shape \(3,\)"):
        filter_action(np.zeros(7), np.zeros(2), LIMITS)


def test_workspace_is_never_left_from_inside() -> None:
    rng = np.random.default_rng(0)
    low, high = LIMITS.workspace_min_m, LIMITS.workspace_max_m
    for _ in range(2000):
        eef = rng.uniform(low, high)
        action = rng.uniform(-3, 3, 7)  # also outside the action bounds
        safe, report = filter_action(action, eef, LIMITS)
        target = eef + LIMITS.pos_scale_m * safe[:3]
        assert (target >= low - 1e-12).all() and (target <= high + 1e-12).all()
        assert np.abs(safe).max() <= 1.0 and not report.rejected


def test_end_effector_outside_the_box_never_moves_further_out() -> None:
    rng = np.random.default_rng(1)
    low, high = LIMITS.workspace_min_m, LIMITS.workspace_max_m
    for _ in range(2000):
        eef = rng.uniform(low - 0.1, high + 0.1)
        safe, _ = filter_action(rng.uniform(-1, 1, 7), eef, LIMITS)
        before = np.maximum(low - eef, 0) + np.maximum(eef - high, 0)
        target = eef + LIMITS.pos_scale_m * safe[:3]
        after = np.maximum(low - target, 0) + np.maximum(target - high, 0)
        assert (after <= before + 1e-12).all()


def test_zero_action_outside_the_box_adds_no_motion() -> None:
    safe, report = filter_action(np.zeros(7), np.array([0.0, 0.0, 0.5]), LIMITS)
    np.testing.assert_array_equal(safe, np.zeros(7))
    assert not report.changed


def test_translation_and_rotation_per_step_are_limited_keeping_direction() -> None:
    action = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, -1.0])
    safe, report = filter_action(action, CENTRE, LIMITS)
    assert report.step_scaled and report.rotation_scaled and not report.workspace_clipped
    assert np.linalg.norm(LIMITS.pos_scale_m * safe[:3]) == pytest.approx(LIMITS.max_step_m)
    assert np.linalg.norm(LIMITS.rot_scale_rad * safe[3:6]) == pytest.approx(LIMITS.max_rotation_rad)
    np.testing.assert_allclose(safe[:3] / np.linalg.norm(safe[:3]), action[:3] / np.linalg.norm(action[:3]))
    assert safe[6] == -1.0


def test_out_of_bounds_action_is_clipped_and_reported() -> None:
    safe, report = filter_action(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]), CENTRE, LIMITS)
    assert report.clipped and safe[6] == 1.0 and report.changes


def test_safe_action_passes_bit_exact() -> None:
    rng = np.random.default_rng(2)
    action = rng.uniform(-0.3, 0.3, 7)
    action[:3] *= 0.5  # well inside the step limit
    safe, report = filter_action(action, CENTRE, LIMITS)
    assert not report.changed and report.changes == []
    assert safe.tobytes() == action.tobytes() and safe is not action


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_safety_yaml_boxes_are_the_fast_envs_workspaces(task) -> None:
    from inril_sim.tasks import CanEnv, LiftEnv, SquareEnv

    env_cls = {"lift": LiftEnv, "can": CanEnv, "square": SquareEnv}[task]
    limits = load_limits(task)
    np.testing.assert_allclose(limits.workspace_min_m, env_cls.workspace[0])
    np.testing.assert_allclose(limits.workspace_max_m, env_cls.workspace[1])


def test_safety_yaml_scales_are_the_envs_and_never_bind_on_in_bounds_sim_actions() -> None:
    from inril_sim.base_env import POS_SCALE, ROT_SCALE

    limits = load_limits("lift@robosuite")
    assert (limits.pos_scale_m, limits.rot_scale_rad) == (POS_SCALE, ROT_SCALE)
    full = np.array([1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0])
    _, report = filter_action(full, (limits.workspace_min_m + limits.workspace_max_m) / 2, limits)
    assert not report.changed


def test_unknown_task_names_the_file_and_the_fix() -> None:
    with pytest.raises(ValueError, match="no workspace box for task 'stack'.*add workspace.stack"):
        load_limits("stack")


def test_limits_with_an_empty_box_are_refused() -> None:
    with pytest.raises(ValueError, match="min < max"):
        SafetyLimits(np.ones(3), np.zeros(3), 0.05, 0.5, 0.05, 0.5)


# -- FurnitureBench's delta-pose convention (rotation: quaternion) -------------------------------------------------

QUAT_LIMITS = SafetyLimits(workspace_min_m=np.array([0.3, -0.55, 0.005]), workspace_max_m=np.array([0.8, 0.55, 0.4]),
                           max_step_m=0.1, max_rotation_rad=0.5, pos_scale_m=1.0, rot_scale_rad=1.0,
                           rotation="quaternion")
QUAT_CENTRE = np.array([0.5, 0.0, 0.2])


def _rotation_angle(quat_xyzw: np.ndarray) -> float:
    return 2.0 * float(np.arctan2(np.linalg.norm(quat_xyzw[:3]), abs(quat_xyzw[3])))


def test_quaternion_hold_is_the_identity_rotation_with_the_gripper_kept() -> None:
    np.testing.assert_array_equal(hold_action("quaternion"), [0, 0, 0, 0, 0, 0, 1, 0])
    safe, report = filter_action(np.full(8, np.nan), QUAT_CENTRE, QUAT_LIMITS)
    assert report.rejected
    np.testing.assert_array_equal(safe, hold_action("quaternion"))


def test_quaternion_rotation_beyond_the_limit_is_shortened_about_the_same_axis() -> None:
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    angle = 1.2
    action = np.concatenate([[0.0, 0.0, 0.0], axis * np.sin(angle / 2), [np.cos(angle / 2)], [1.0]])
    safe, report = filter_action(action, QUAT_CENTRE, QUAT_LIMITS)
    assert report.rotation_scaled and not report.step_scaled
    assert _rotation_angle(safe[3:7]) == pytest.approx(0.5)
    np.testing.assert_allclose(safe[3:6] / np.linalg.norm(safe[3:6]), axis)
    assert safe[7] == 1.0


def test_quaternion_and_its_negative_are_filtered_to_the_same_short_rotation() -> None:
    quat = np.array([0.0, 0.0, np.sin(0.1), np.cos(0.1)])  # 0.2 rad about z
    a, ra = filter_action(np.concatenate([[0.01, 0, 0], quat, [0.0]]), QUAT_CENTRE, QUAT_LIMITS)
    b, rb = filter_action(np.concatenate([[0.01, 0, 0], -quat, [0.0]]), QUAT_CENTRE, QUAT_LIMITS)
    np.testing.assert_allclose(a, b)
    assert not (ra.rotation_scaled or rb.rotation_scaled)


def test_quaternion_without_a_direction_sends_no_rotation() -> None:
    safe, report = filter_action(np.array([0.02, 0, 0, 0, 0, 0, 0, -1.0]), QUAT_CENTRE, QUAT_LIMITS)
    assert report.rotation_scaled and "no direction" in report.changes[0]
    np.testing.assert_array_equal(safe, [0.02, 0, 0, 0, 0, 0, 1, -1.0])


def test_quaternion_translation_is_limited_in_metres_and_kept_in_the_box() -> None:
    safe, report = filter_action(np.array([0.3, 0, 0, 0, 0, 0, 1, 0]), QUAT_CENTRE, QUAT_LIMITS)
    assert report.step_scaled and safe[0] == pytest.approx(0.1)
    low = np.array([0.5, 0.0, 0.01])
    safe, report = filter_action(np.array([0, 0, -0.05, 0, 0, 0, 1, 0]), low, QUAT_LIMITS)
    assert report.workspace_clipped and low[2] + safe[2] == pytest.approx(0.005)


def test_a_seven_d_action_is_refused_by_the_quaternion_filter() -> None:
    with pytest.raises(ValueError, match=r"shape \(8,\) \(dx, dy, dz, qx, qy, qz, qw, gripper\)"):
        filter_action(np.zeros(7), QUAT_CENTRE, QUAT_LIMITS)


@pytest.mark.parametrize("task", ["furniture/one_leg", "furniture/round_table", "furniture/lamp"])
def test_furniture_box_is_furniture_benchs_controller_limits_but_for_a_floor_the_expert_presses_through(task) -> None:
    """FurnitureSim never clips a commanded goal to these limits (only the initial pose), and its expert presses
    parts onto the table with goals below the robot-base plane (config/safety.yaml), so the sim floor is lower."""
    from furniture_bench.config import config

    limits = load_limits(task)
    box = np.asarray(config["robot"]["position_limits"], dtype=float)
    np.testing.assert_array_equal(limits.workspace_min_m[:2], box[:2, 0])
    np.testing.assert_array_equal(limits.workspace_max_m, box[:, 1])
    assert limits.workspace_min_m[2] < 0.0 < box[2, 0]
    assert limits.rotation == "quaternion" and limits.pos_scale_m == 1.0


@pytest.mark.parametrize(("furniture", "horizon"), [("one_leg", 700), ("lamp", 1000)])
def test_the_furniture_expert_is_never_slowed_by_the_sim_limits(furniture: str, horizon: int) -> None:
    """In sim the filter must leave the scripted expert's actions alone, its large goal-chasing deltas and its
    presses below the table alike, or graph rollouts would not be the env's (with furniture_bench's 0.005 m floor
    the workspace clip altered 72% of a one_leg policy's commands in the graph)."""
    from inril_sim.furniture.expert import FurnitureExpert
    from inril_sim.furniture.mujoco_env import FurnitureMujocoEnv

    limits = load_limits(f"furniture/{furniture}")
    env, expert = FurnitureMujocoEnv(furniture), FurnitureExpert(furniture, seed=2)
    try:
        obs, _ = env.reset(seed=2)
        for _ in range(horizon):
            action = expert.act(obs)
            _, report = filter_action(action, obs[:3].astype(np.float64), limits)
            assert not report.changed, report.changes
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        assert terminated  # the whole assembly, every phase of the expert, was checked
    finally:
        env.close()
