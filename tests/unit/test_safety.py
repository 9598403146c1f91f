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
