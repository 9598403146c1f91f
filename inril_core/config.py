"""The one config system: YAML files in `config/`, merged, then `key.sub=value` overrides from the command line.

Order of merging (later wins): `defaults.yaml`, `tasks/<task>.yaml` (plus its backend block for `task@backend`),
`algos/<algo>.yaml`, the `methods.yaml` preset named by `method`, then the command line. The result is in struct
mode, so a mistyped key fails loudly with the list of valid keys instead of silently doing nothing.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Iterable

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

SELECTOR_KEYS = ("task", "algo", "method")


class ConfigError(ValueError):
    """A config problem, with the file or key at fault and what to do about it."""


def config_dir() -> Path:
    """Where the YAML files live: $INRIL_CONFIG_DIR, the source tree, or the ament share directory."""
    candidates = []
    if os.environ.get("INRIL_CONFIG_DIR"):
        candidates.append(Path(os.environ["INRIL_CONFIG_DIR"]))
    candidates.append(Path(__file__).resolve().parents[1] / "config")
    candidates.append(Path(sys.prefix) / "share" / "inril" / "config")
    for candidate in candidates:
        if (candidate / "defaults.yaml").is_file():
            return candidate
    raise ConfigError(
        f"config/defaults.yaml not found in {', '.join(map(str, candidates))}: set INRIL_CONFIG_DIR to the "
        "folder holding defaults.yaml"
    )


def _choices(folder: Path) -> list[str]:
    """Names of the yaml files under ``folder``, sub-folders included (tasks/furniture/one_leg.yaml is
    ``furniture/one_leg``)."""
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def _load_yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, ValueError) as exc:  # yaml errors surface as ValueError subclasses
        raise ConfigError(f"{path}: cannot be read as YAML ({exc})") from exc


def _task_config(root: Path, task: str, algo: str) -> DictConfig:
    """The task file, with its `backends.<backend>` section (task=name@backend) and its `algos.<algo>` section merged
    in: a task may tune one algorithm's keys (DPPO's sampling-std floor on Transport) that other algorithms lack."""
    name, _, backend = task.partition("@")
    path = root / "tasks" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown task '{name}': choose one of {_choices(root / 'tasks')} (config/tasks/)")
    cfg = _load_yaml(path)
    backends = cfg.pop("backends", OmegaConf.create({}))
    if backend:
        if backend not in backends:
            raise ConfigError(
                f"task '{name}' has no backend '{backend}': available {sorted(backends) or 'none'} ({path})"
            )
        cfg = OmegaConf.merge(cfg, backends[backend])
    per_algo = cfg.pop("algos", OmegaConf.create({}))
    unknown = sorted(set(per_algo) - set(_choices(root / "algos")))
    if unknown:
        raise ConfigError(f"{path}: algos.{unknown[0]} names no algorithm; choose one of {_choices(root / 'algos')}")
    return OmegaConf.merge(cfg, per_algo[algo]) if algo in per_algo else cfg


def _named_file(root: Path, kind: str, name: str) -> DictConfig:
    path = root / kind / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {kind[:-1]} '{name}': choose one of {_choices(root / kind)} (config/{kind}/)")
    return _load_yaml(path)


def _method_preset(root: Path, method: str) -> DictConfig:
    presets = _load_yaml(root / "methods.yaml")
    if method not in presets:
        raise ConfigError(f"unknown method '{method}': choose one of {sorted(presets)} (config/methods.yaml)")
    return presets[method]


def _merge_strict(base: DictConfig, update: DictConfig, source: str) -> DictConfig:
    """Merge `update` into struct-mode `base`; a key that `base` does not define is an error naming `source`."""
    try:
        return OmegaConf.merge(base, update)
    except ConfigKeyError as exc:
        key = exc.full_key or exc.key
        parent, _, _ = str(key).rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
        raise ConfigError(
            f"unknown config key '{key}' (from {source}); valid keys{' under ' + parent if parent else ''}: "
            f"{', '.join(map(str, valid))}. See config/defaults.yaml"
        ) from exc


def _parse_overrides(overrides: list[str]) -> DictConfig:
    """`key.sub=value` strings -> a config; values are YAML, and a bad one is reported with its key."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. interleave.m=5)")
    cli = OmegaConf.create()
    for item in overrides:  # one at a time, so a bad value is reported with its key
        try:
            cli.merge_with_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError) as exc:  # e.g. hidden_dims=[64,64 (unclosed list)
            key = item.partition("=")[0]
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"override '{item}': the value of {key} is not valid YAML ({reason}); close its brackets or "
                "quotes (a list is written key=[64,64])"
            ) from exc
    return cli


def load_config(overrides: Iterable[str] = ()) -> DictConfig:
    """Build the run config from the YAML files and `key=value` overrides (values parsed as YAML)."""
    cli = _parse_overrides(list(overrides))
    root = config_dir()
    cfg = _load_yaml(root / "defaults.yaml")
    selected = {key: str(cli.get(key, cfg[key])) for key in SELECTOR_KEYS}
    # The algorithm file defines the whole `rl` section (each algorithm has its own keys), so it merges before
    # struct mode; everything after it may only set keys that already exist.
    cfg = OmegaConf.merge(cfg, _named_file(root, "algos", selected["algo"]))
    OmegaConf.set_struct(cfg, True)
    cfg = _merge_strict(cfg, _task_config(root, selected["task"], selected["algo"]),
                       f"config/tasks/{selected['task']}.yaml")
    cfg = _merge_strict(cfg, _method_preset(root, selected["method"]), f"method preset '{selected['method']}'")
    cfg = _merge_strict(cfg, cli, "the command line")
    _fill_defaults(cfg)
    validate(cfg)
    return cfg


def load_run_config(run_dir: str | Path, overrides: Iterable[str] = ()) -> DictConfig:
    """The config a run was started with (its config.yaml), with `overrides` on top (e.g. a larger budget)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --resume takes the directory of a run started with 'inril train'")
    cfg = _load_yaml(path)
    OmegaConf.set_struct(cfg, True)
    cfg = _merge_strict(cfg, _parse_overrides(list(overrides)), "the command line")
    validate(cfg)
    return cfg


def _fill_defaults(cfg: DictConfig) -> None:
    """Derived defaults: paths that depend on the task, method and seed."""
    task_name = cfg.task.replace("@", "-")
    if cfg.run.dir is None:
        cfg.run.dir = f"runs/{task_name}-{cfg.algo}-{cfg.method}-s{cfg.seed}"
    base_task = cfg.task.partition("@")[0]
    if cfg.demos.path is None:
        cfg.demos.path = f"runs/demos/{base_task}"
    if cfg.pretrain.run_dir is None:
        cfg.pretrain.run_dir = f"runs/pretrain/{base_task}"
    if cfg.train.pretrained is None:
        cfg.train.pretrained = cfg.pretrain.run_dir
    if cfg.separation == "auto":
        from inril_core.rl import algorithm_class  # pulls in torch: only here

        cfg.separation = algorithm_class(cfg.rl.name).default_separation


def interleave_m(cfg: DictConfig) -> float:
    """`interleave.m` as a number; `inf` (YAML `inf` or `.inf`) means RL-only."""
    value = cfg.interleave.m
    try:
        m = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"interleave.m={value!r} is not a number: use a positive integer or inf") from exc
    if not (m >= 1 and (math.isinf(m) or m == int(m))):
        raise ConfigError(f"interleave.m={value!r}: use a positive integer or inf (RL-only)")
    return m


def validate(cfg: DictConfig) -> None:
    """Check values a typo could make nonsensical, before any work starts."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"config keys without a value: {', '.join(missing)}; set them in a task file or override")
    interleave_m(cfg)
    checks = [
        (cfg.separation in ("none", "pcgrad", "network"), "separation must be none, pcgrad or network"),
        (cfg.il.denoising_steps in ("all", "finetuned"), "il.denoising_steps must be all or finetuned"),
        (cfg.il.denoising_steps == "all" or cfg.rl.name == "dppo",
         "il.denoising_steps: finetuned restricts the demo loss to DPPO's K' fine-tuned steps: only with algo=dppo"),
        (cfg.train.metric in ("success_rate", "mean_return"), "train.metric must be success_rate or mean_return"),
        (cfg.demos.use or (math.isinf(interleave_m(cfg)) and cfg.bc_reg["lambda"] == 0
                           and cfg.rl.get("demo_ratio", 0.0) == 0 and cfg.il.success_capacity == 0),
         "demos.use=false leaves no demos: use method=rl-only (interleave.m=inf, bc_reg.lambda=0) and rl.demo_ratio=0"),
        (cfg.interleave.schedule in ("fixed", "adaptive"), "interleave.schedule must be fixed or adaptive"),
        (cfg.env.vector in ("sync", "async", "ray", "native"), "env.vector must be sync, async, ray or native"),
        (1 <= cfg.env.workers <= cfg.env.n_envs, "env.workers must be in 1..env.n_envs"),
        (cfg.policy.denoiser.type in ("mlp", "unet"), "policy.denoiser.type must be mlp or unet"),
        (0 < cfg.policy.act_steps <= cfg.policy.horizon, "policy.act_steps must be in 1..policy.horizon"),
        (cfg.bc_reg["lambda"] >= 0, "bc_reg.lambda must be >= 0"),
        (cfg.il.steps_per_injection >= 1, "il.steps_per_injection must be >= 1"),
        (cfg.env.n_envs >= 1 and cfg.train.eval_episodes >= 1, "env.n_envs and train.eval_episodes must be >= 1"),
        (cfg.train.eval_every_steps >= 1, "train.eval_every_steps must be >= 1"),
        (cfg.il.success_capacity == 0 or cfg.rl.name != "residual_ppo",
         "il.success_capacity keeps (obs, chunk) pairs: residual_ppo acts one step at a time, set it to 0"),
    ]
    if cfg.rl.name == "idql":
        checks += [(cfg.rl.n_candidates >= 1, "rl.n_candidates must be >= 1 (1: no resampling by Q)"),
                   (cfg.rl.get("actor_weighting", "denoise") in ("denoise", "advantage"),
                    "rl.actor_weighting must be denoise (plain, DPPO's IDQL) or advantage (AWR weights)"),
                   (cfg.rl.critic_pretrain_steps == 0 or cfg.demos.use,
                    "rl.critic_pretrain_steps fits the critics to the demos: with demos.use=false set it to 0")]
    if cfg.rl.name == "dppo":
        checks.append(
            (
                0 < cfg.rl.ft_denoising_steps <= cfg.policy.n_steps,
                "rl.ft_denoising_steps must be in 1..policy.n_steps",
            )
        )
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{message} (see config/defaults.yaml)")
    _check_algorithm(cfg)


def _check_algorithm(cfg: DictConfig) -> None:
    """The algorithm exists and supports the run's separation (imported here: it pulls in torch)."""
    from inril_core.rl import algorithm_class

    try:
        cls = algorithm_class(cfg.rl.name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if cfg.separation not in cls.separations:  # "auto" was resolved by _fill_defaults
        raise ConfigError(f"separation={cfg.separation} does not apply to algo={cfg.algo}: choose one of "
                          f"{', '.join(cls.separations)} (network separation needs algo=residual_ppo)")


def resolve_device(name: str, threads: int = 0) -> str:
    """`auto` -> cuda when present, else cpu; anything else is passed to torch as given. Sets torch's CPU threads."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but torch sees no CUDA device: use device=cpu or device=auto")
    return name
