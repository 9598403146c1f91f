"""The config system: YAML files + key=value overrides, and errors that name the key at fault and the fix."""
import math

import pytest

from inril_core.config import ConfigError, interleave_m, load_config


def test_overrides_change_values():
    cfg = load_config(["interleave.m=5", "seed=3", "rl.actor_lr=2.0e-4", "policy.denoiser.hidden_dims=[64,64,64]"])
    assert cfg.interleave.m == 5 and cfg.seed == 3 and cfg.rl.actor_lr == 2.0e-4
    assert list(cfg.policy.denoiser.hidden_dims) == [64, 64, 64]


def test_command_line_overrides_win_over_the_method_preset():
    cfg = load_config(["method=bc-reg", "bc_reg.lambda=0.5"])
    assert cfg.bc_reg["lambda"] == 0.5 and math.isinf(interleave_m(cfg))


def test_method_preset_rl_only_sets_m_inf():
    assert math.isinf(interleave_m(load_config(["method=rl-only"])))


def test_task_selects_its_env_id():
    assert load_config(["task=can"]).env.id == "inril_sim:inril/Can-v0"


def test_task_at_robosuite_picks_the_robosuite_env_id():
    cfg = load_config(["task=lift@robosuite"])
    assert cfg.env.id == "inril_sim:inril/Lift-robosuite-v0" and cfg.env.obs_dim == 19


def test_derived_paths_follow_task_method_and_seed():
    cfg = load_config(["task=can@robosuite", "method=rl-only", "seed=2"])
    assert cfg.run.dir == "runs/can-robosuite-dppo-rl-only-s2"
    assert cfg.demos.path == "runs/demos/can" and cfg.train.pretrained == cfg.pretrain.run_dir == "runs/pretrain/can"


def config_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(list(overrides))
    return str(info.value)


def test_unknown_key_names_the_key_and_lists_the_valid_ones():
    message = config_error("interleave.mm=3")
    assert "interleave.mm" in message and "ema, m, m_max, m_min, rho_scale, schedule" in message


def test_unknown_top_level_key_names_the_key():
    message = config_error("lerning_rate=1")
    assert "'lerning_rate'" in message and "valid keys" in message and "interleave" in message


def test_unknown_task_lists_the_tasks():
    message = config_error("task=nope")
    assert "unknown task 'nope'" in message and "'can'" in message and "'lift'" in message


def test_unknown_backend_lists_the_backends():
    message = config_error("task=lift@isaac")
    assert "no backend 'isaac'" in message and "robosuite" in message


def test_unknown_method_lists_the_methods():
    message = config_error("method=nope")
    assert "unknown method 'nope'" in message and "rl-only" in message and "in-ril" in message


@pytest.mark.parametrize("value", ["0", "2.5", "-1", "abc"])
def test_bad_interleave_m_says_what_m_may_be(value):
    message = config_error(f"interleave.m={value}")
    assert "interleave.m" in message and "positive integer or inf" in message


def test_interleave_m_inf_is_accepted():
    assert math.isinf(interleave_m(load_config(["interleave.m=inf"])))


def test_override_without_equals_sign_shows_the_expected_form():
    message = config_error("interleave.m")
    assert "'interleave.m'" in message and "key=value" in message


def test_override_with_unparseable_value_names_the_key():
    message = config_error("policy.denoiser.hidden_dims=[64,64")
    assert "policy.denoiser.hidden_dims" in message and "not valid YAML" in message


@pytest.mark.parametrize("override, phrase", [
    ("separation=pcgard", "separation must be none, pcgrad or network"),
    ("policy.act_steps=9", "policy.act_steps"),
    ("rl.ft_denoising_steps=50", "rl.ft_denoising_steps"),
    ("interleave.schedule=sometimes", "interleave.schedule"),
])
def test_nonsensical_values_are_refused_with_the_key(override, phrase):
    assert phrase in config_error(override)


def _paper_runs() -> list[list[str]]:
    """Every (task budget, arm) of config/bench/paper.yaml as the override list `inril bench paper` runs it with."""
    from omegaconf import OmegaConf

    from inril_core.config import config_dir

    plan = OmegaConf.to_container(OmegaConf.load(config_dir() / "bench" / "paper.yaml"))
    arms = {tuple(arm) for spec in plan["experiments"].values() for arm in spec["arms"].values()}
    return [[f"task={task}", *overrides, *arm] for task, budget in plan["budgets"].items()
            for overrides in budget.values() for arm in sorted(arms)]


@pytest.mark.parametrize("overrides", _paper_runs(), ids=" ".join)
def test_every_paper_budget_and_arm_is_a_valid_config(overrides):
    cfg = load_config(overrides)
    assert cfg.task == overrides[0].removeprefix("task=")


def test_a_task_tunes_one_algorithm_without_touching_the_others():
    assert load_config(["task=transport", "algo=dppo"]).rl.min_sampling_std == 0.05
    assert load_config(["task=lift", "algo=dppo"]).rl.min_sampling_std == 0.1
    residual = load_config(["task=transport", "algo=residual_ppo"]).rl
    assert residual.gamma == 0.999 and "min_sampling_std" not in residual
    assert load_config(["task=transport", "algo=rlpd"]).rl.gamma == load_config(["task=lift", "algo=rlpd"]).rl.gamma


def test_a_task_section_for_an_unknown_algorithm_is_named(tmp_path, monkeypatch):
    import shutil

    import inril_core.config as config

    shutil.copytree(config.config_dir(), tmp_path / "config")
    with open(tmp_path / "config" / "tasks" / "lift.yaml", "a") as f:
        f.write("algos:\n  dpo:\n    rl:\n      min_sampling_std: 0.05\n")
    monkeypatch.setattr(config, "config_dir", lambda: tmp_path / "config")
    with pytest.raises(ConfigError, match=r"lift.yaml: algos.dpo names no algorithm; choose one of .*dppo"):
        load_config(["task=lift"])
