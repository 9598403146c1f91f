"""The `inril` command: the one thin layer that wires config, core and simulator together.

Every command takes config overrides as `key.sub=value` arguments (see config/defaults.yaml), e.g.
`inril train task=can method=rl-only interleave.m=5 seed=1`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from inril_core.config import ConfigError, load_config, load_run_config

app = typer.Typer(help="IN-RIL: interleaved RL + imitation fine-tuning of diffusion policies.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
demos_app = typer.Typer(help="Make and inspect demonstration stores.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: simulator speed, sample efficiency.", no_args_is_help=True)
expert_app = typer.Typer(help="Experts for tasks without a scripted one (locomotion): trained here, from scratch.",
                         no_args_is_help=True)
app.add_typer(demos_app, name="demos")
app.add_typer(expert_app, name="expert")
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
OVERRIDES = typer.Argument(None, help="config overrides key.sub=value (see config/defaults.yaml)")


def _config(overrides: list[str] | None, aliases: dict[str, str] | None = None):
    """Load the config; `aliases` maps shorthand keys of a command (e.g. n -> demos.n) onto real ones."""
    items = []
    for item in overrides or []:
        key, sep, value = item.partition("=")
        items.append(f"{(aliases or {}).get(key, key)}{sep}{value}")
    return load_config(items)


def _fail(message: str) -> None:
    # one line whatever the terminal width (no hard wrap), and the message printed as is (no rich markup in it)
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def _guarded(fn):
    """Known user errors print one clear line (what is wrong and how to fix it) instead of a traceback."""
    from inril_core.agent import NonFiniteError
    from inril_core.buffers import EmptyDemoStoreError

    try:
        return fn()
    except (ConfigError, FileNotFoundError, FileExistsError, EmptyDemoStoreError, NonFiniteError) as exc:
        _fail(str(exc))


@app.command(context_settings=EXTRA)
def train(overrides: Optional[list[str]] = OVERRIDES,
          resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory")):
    """Fine-tune the pre-trained policy with IN-RIL (method=in-ril), RL-only or BC-reg, with any algo=dppo |
    residual_ppo | idql | rlpd. Data-parallel over N processes (GPUs, or CPU on gloo):
    `torchrun --nproc-per-node N -m inril_core.cli train ...`."""
    from inril_core.training import train as run_train

    if resume:  # the run's own config.yaml, with any overrides on top (e.g. a larger train.env_steps)
        cfg = _guarded(lambda: load_run_config(resume, overrides or []))
    else:
        cfg = _guarded(lambda: _config(overrides))
    report = _guarded(lambda: run_train(cfg, resume=resume is not None))
    if "rank" in report:  # a data-parallel rank other than 0: rank 0 reports
        return
    key = "return" if cfg.train.metric == "mean_return" else "success"
    console.print(f"{key}: pre-trained {report[f'pretrained_{key}']:.2f} -> final {report[f'final_{key}']:.2f} "
                  f"after {report['env_steps']} env steps; {cfg.run.dir}/report.json, learning_curve.png")


@app.command(context_settings=EXTRA)
def pretrain(overrides: Optional[list[str]] = OVERRIDES):
    """Behaviour-clone the diffusion policy on the demo store until the held-out loss plateaus; evaluate it."""
    from inril_core.training import pretrain as run_pretrain

    cfg = _guarded(lambda: _config(overrides))
    report = _guarded(lambda: run_pretrain(cfg))
    console.print(f"pre-trained on {report['demos']} demos for {report['epochs']} epochs "
                  f"({report['seconds']} s): {_pretrained_result(cfg, report)} over "
                  f"{report['eval']['n_episodes']} episodes -> {cfg.pretrain.run_dir}")


def _pretrained_result(cfg, report: dict) -> str:
    """The pre-trained policy's evaluation in the task's own metric (success rate, or return for locomotion)."""
    if cfg.train.metric == "mean_return":
        return f"mean return {report['eval']['mean_return']:.1f}"
    return f"success {report['eval']['success_rate']:.2f}"


@app.command("eval", context_settings=EXTRA)
def evaluate_cmd(run: Path = typer.Argument(..., help="a run or pretrain directory (uses its newest checkpoint)"),
                 overrides: Optional[list[str]] = OVERRIDES):
    """Evaluate a checkpoint's deterministic policy (its algorithm's: DDIM eta=0 diffusion, greedy IDQL pick, base +
    residual mean, Gaussian mean) on the run's own task and evaluation seeds; task=lift@robosuite runs it on the
    robosuite backend, rl.* keys change how it acts (rl.n_candidates=1: IDQL's mode alone)."""
    from inril_core.envs import eval_vector
    from inril_core.evaluate import evaluate
    from inril_core.training import load_policy

    overrides = list(overrides or [])
    cfg = _guarded(lambda: _eval_config(run, overrides))
    policy = _guarded(lambda: load_policy(run, overrides=[o for o in overrides if o.startswith("rl.")]))
    result = evaluate(policy, cfg.env.id, cfg.env.max_episode_steps, policy.act_steps, cfg.train.eval_episodes,
                      cfg.train.eval_n_envs, seed=cfg.seed, on_ended=policy.episodes_ended,
                      vector=eval_vector(cfg.env.vector))
    print(json.dumps({"run": str(run), "env": cfg.env.id, **result.as_dict()}, indent=2))


def _eval_config(run: Path, overrides: list[str]):
    """The run's own config (its task, env and seed, so its final evaluation's episodes) with the overrides on top.
    A task= override composes that task's files instead, keeping the run's algorithm, method and seed: the same
    policy on another backend. A directory without config.yaml takes the files' defaults, as before."""
    if not (run / "config.yaml").is_file():
        return _config(overrides)
    if not any(o.partition("=")[0] == "task" for o in overrides):
        return load_run_config(run, overrides)
    own = load_run_config(run)
    return _config([f"algo={own.algo}", f"method={own.method}", f"seed={own.seed}", *overrides])


@app.command("config", context_settings=EXTRA)
def show_config(overrides: Optional[list[str]] = OVERRIDES):
    """Print the resolved config (files + overrides) as YAML."""
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(_guarded(lambda: _config(overrides))))


@demos_app.command("make", context_settings=EXTRA)
def demos_make(overrides: Optional[list[str]] = OVERRIDES):
    """Store n demos: the scripted expert's successful episodes at mixed noise (`inril demos make task=can n=300`),
    or, for tasks with demos.expert_run (locomotion), the trained expert's episodes at mixed noise."""
    from inril_core.episodes.store import EpisodeStore

    cfg = _guarded(lambda: _config(overrides, {"n": "demos.n"}))
    task = cfg.task.partition("@")[0]
    store = EpisodeStore(cfg.demos.path)
    if len(store):
        console.print(f"{cfg.demos.path} already holds {len(store)} episodes; adding {cfg.demos.n} more")
    if cfg.demos.expert_run:
        from inril_core.training import load_policy
        from inril_sim.demos import make_policy_demos

        expert = _guarded(lambda: load_policy(cfg.demos.expert_run))
        report = make_policy_demos(cfg.env.id, cfg.env.max_episode_steps, lambda obs: expert(obs[None])[0, 0],
                                   cfg.demos.n, store, task, seed=cfg.seed,
                                   noise_levels=tuple(cfg.demos.noise_levels))
    else:
        from inril_sim.demos import make_demos

        from inril_core.training import progress_bar

        with progress_bar() as bar:  # FurnitureBench demos take seconds each: show how it goes
            row = bar.add_task(f"demos {cfg.task}", total=cfg.demos.n, status="")
            report = make_demos(
                task, cfg.demos.n, store, seed=cfg.seed, noise_levels=tuple(cfg.demos.noise_levels),
                env_id=cfg.env.id.split(":", 1)[-1],
                progress=lambda stored, tried: bar.update(row, completed=stored, status=f"{tried} attempts"))
    print(json.dumps({"store": cfg.demos.path, **report}, indent=2))


@expert_app.command("train", context_settings=EXTRA)
def expert_train(overrides: Optional[list[str]] = OVERRIDES):
    """Train the expert of a task with demos.expert_run (e.g. task=hopper) from scratch: SAC (algo=rlpd, method=expert,
    no demos) for demos.expert_env_steps env steps into demos.expert_run; resumes an interrupted one."""
    from inril_core.checkpoint import load_latest
    from inril_core.training import train as run_train

    args = ["algo=rlpd", "method=expert", *(overrides or [])]
    cfg = _guarded(lambda: _config(args))
    if not cfg.demos.expert_run:
        _fail(f"task {cfg.task} has no demos.expert_run: its demos come from its scripted expert "
              f"('inril demos make task={cfg.task}')")
    run_dir = Path(cfg.demos.expert_run)
    expert_cfg = _guarded(lambda: _config([*args, f"run.dir={run_dir}", f"train.env_steps={cfg.demos.expert_env_steps}"]))
    report = _guarded(lambda: run_train(expert_cfg, resume=load_latest(run_dir) is not None))
    console.print(f"expert {run_dir}: mean return {report['final_return']:.1f} after {report['env_steps']} env steps")


@demos_app.command("info")
def demos_info(path: Path):
    """Episode count, success rate and sources of a demo store."""
    from collections import Counter

    from inril_core.episodes.store import EpisodeStore

    meta = _guarded(lambda: EpisodeStore(path, create=False).metadata())
    print(json.dumps({"episodes": len(meta), "success_rate": sum(bool(m.get("success")) for m in meta) / max(1, len(meta)),
                      "sources": Counter(m.get("source") for m in meta)}, indent=2))


def _ensure_pretrained(cfg, overrides: list[str]) -> None:
    """Make the demos and the pre-trained policy a fine-tuning run needs, when they are missing."""
    from inril_core.checkpoint import load_latest
    from inril_core.episodes.store import EpisodeStore
    from inril_core.training import pretrain as run_pretrain

    if not Path(cfg.demos.path).exists() or len(EpisodeStore(cfg.demos.path)) == 0:
        if cfg.demos.expert_run and load_latest(cfg.demos.expert_run) is None:
            console.print(f"no expert at {cfg.demos.expert_run}: training it from scratch (inril expert train)")
            expert_train([o for o in overrides if o.partition("=")[0] in ("task", "seed", "device", "threads")])
        console.print(f"no demos at {cfg.demos.path}: making {cfg.demos.n} with the "
                      f"{'trained' if cfg.demos.expert_run else 'scripted'} expert")
        demos_make(overrides)
    if load_latest(cfg.train.pretrained) is None:
        console.print(f"no pre-trained policy at {cfg.train.pretrained}: pre-training")
        report = run_pretrain(cfg)
        console.print(f"pre-trained: {_pretrained_result(cfg, report)}")


SIM_MODES = ("lockstep", "realtime")
CHECK_BUDGET_S = 120.0  # --check fails when the one short episode has not ended by then
# --check: one short episode, as node parameters (sim_bridge's time limit, the episode manager's episode count)
CHECK_NODE_PARAMS = {"sim_bridge": {"max_episode_steps": "30"}, "episode_manager": {"max_episodes": "1"}}


@app.command(context_settings=EXTRA)
def sim(overrides: Optional[list[str]] = OVERRIDES,
        minutes: float = typer.Option(20.0, "--minutes", help="wall-clock budget of the run"),
        check: bool = typer.Option(False, "--check", help="the whole graph, one 30-step episode: exit 0 or the reason"),
        mode: str = typer.Option("lockstep", "--mode", help="lockstep (deterministic) | realtime (wall-clock rate)"),
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="default runs/sim/<timestamp>")):
    """The main job: the ROS 2 node graph (simulated robot, policy server, executor, learner, safety) fine-tuning live
    with IN-RIL on the default task, then a report (run_dir/report.md).

    Overrides are config keys (task=can interleave.m=5) or node parameters (sim_bridge.max_episode_steps=50).
    Makes the demos and the pre-trained policy first when they are missing. No ROS distro needed: the nodes run
    as plain processes from config/graph.yaml (the file ros2 launch uses on the robot).
    """
    from inril_ros.graph import GraphError, load_graph
    from inril_ros.report import write_report
    from inril_ros.supervisor import Supervisor, SupervisorError, check_verdict, split_overrides

    if mode not in SIM_MODES:
        _fail(f"--mode {mode}: choose one of {', '.join(SIM_MODES)}")
    if minutes <= 0:
        _fail(f"--minutes {minutes}: the time budget must be positive")
    try:
        graph = load_graph()
    except GraphError as exc:
        _fail(str(exc))
    node_params, config_overrides = split_overrides(overrides or [], [n.name for n in graph.nodes_for("sim")])
    for node, params in node_params.items():
        spec = graph.node(node)
        for name in sorted(set(params) - spec.parameter_names()):
            console.print(f"warning: {node}.{name} is not set in {spec.params_file}; a node ignores parameters it "
                          "does not declare: check the name", soft_wrap=True)
    cfg = _guarded(lambda: _config(config_overrides))
    _guarded(lambda: _ensure_pretrained(cfg, config_overrides))
    if check:
        node_params = {node: {**CHECK_NODE_PARAMS.get(node, {}), **node_params.get(node, {})}
                       for node in {*CHECK_NODE_PARAMS, *node_params}}
    run_dir = run_dir or Path("runs/sim") / time.strftime("%Y%m%d-%H%M%S")
    # every node gets these; each uses the ones it declares (the learner and policy server load the config with
    # the same overrides, so all processes agree on task, algorithm and policy)
    parameters = {"task": cfg.task, "mode": mode, "seed": cfg.seed, "policy_dir": str(cfg.train.pretrained),
                  "config_overrides": [f"task={cfg.task}", *(o for o in config_overrides if not o.startswith("task="))]}
    try:
        supervisor = Supervisor(graph, "sim", run_dir, parameters=parameters, node_overrides=node_params,
                                console=console)
        console.print(f"graph: {len(supervisor.specs)} nodes, task {cfg.task}, mode {mode}, run dir {run_dir} "
                      "(Ctrl-C stops it)", soft_wrap=True)
        result = supervisor.run(CHECK_BUDGET_S if check else minutes * 60, until_done=check)
    except (GraphError, SupervisorError) as exc:
        _fail(str(exc))
    ok, line = check_verdict(result, [s.name for s in supervisor.specs]) if check else (result.ok, result.summary())
    report = write_report(run_dir, summary=line.splitlines()[0])
    if ok:
        console.print(f"{escape(line)}; report {report}", soft_wrap=True)
    else:
        console.print(f"[bold red]{'check failed' if check else 'stopped'}:[/] {escape(line)}\nreport {report}",
                      soft_wrap=True)
    raise typer.Exit(0 if ok else (result.stop.exit_code or 1))


@bench_app.command("sim")
def bench_sim(tasks: str = typer.Option("lift,can,square,transport", help="comma-separated tasks"),
              steps: int = typer.Option(3000, help="env steps per measurement"),
              robosuite: bool = typer.Option(False, help="also measure the robosuite backend (slow)"),
              out: Path = typer.Option(Path("docs/results/sim_speed.json"))):
    """Env steps per second of each task on one core (random actions); writes a JSON next to the docs."""
    from inril_sim.speed import measure_env_steps_per_s

    results = {}
    for task in tasks.split(","):
        cfg = load_config([f"task={task}"])
        results[task] = round(measure_env_steps_per_s(cfg.env.id.split(":", 1)[1], steps), 1)
        if robosuite:
            rcfg = load_config([f"task={task}@robosuite"])
            results[f"{task}@robosuite"] = round(measure_env_steps_per_s(rcfg.env.id.split(":", 1)[1], steps // 20), 1)
        console.print(f"{task}: {results[task]} env steps/s")
    out.parent.mkdir(parents=True, exist_ok=True)
    # the load average says whether other work shared the cores during the measurement
    out.write_text(json.dumps({"env_steps_per_s": results, "load_average_1min": os.getloadavg()[0],
                               "command": "inril bench sim " + " ".join(sys.argv[3:])}, indent=2))


@bench_app.command("furniture-expert")
def bench_furniture_expert(furniture: str = typer.Option("one_leg", help="FurnitureBench furniture (MuJoCo port)"),
                           randomness: str = typer.Option("low,med", help="comma-separated randomness levels"),
                           n: int = typer.Option(50, help="seeded resets per level"),
                           horizon: int = typer.Option(700, help="env steps per episode (ResiP's one_leg: 700)"),
                           out: Path = typer.Option(Path("docs/results/furniture-one_leg/expert.json"))):
    """Success rate of FurnitureBench's scripted expert on the MuJoCo port under both of FurnitureBench's checks
    (reward check and the stricter scripted-demo check), per randomness level; writes a JSON."""
    from inril_core.training import progress_bar
    from inril_sim.furniture.expert import measure_expert
    from inril_sim.furniture.mujoco_env import RANDOMNESS, SCENES

    levels = randomness.split(",")
    if furniture not in SCENES or not set(levels) <= set(RANDOMNESS):
        _fail(f"--furniture {furniture} --randomness {randomness}: the MuJoCo port has furniture "
              f"{', '.join(SCENES)} and randomness {', '.join(RANDOMNESS)}")
    results = []
    with progress_bar() as bar:
        for level in levels:
            row = bar.add_task(f"expert {furniture} {level}", total=n, status="")
            results.append(measure_expert(furniture, level, n, horizon,
                                          progress=lambda done, row=row: bar.update(row, completed=done)))
            r = results[-1]
            bar.console.print(f"{furniture} {level}: reward check {r['reward_check']:.2f}, strict check "
                              f"{r['strict_check']:.2f}, scripted pairs (strict) {r['scripted_pairs_strict']:.2f}, "
                              f"mean steps to success {r['mean_steps_to_reward_check']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "load_average_1min": os.getloadavg()[0],
                               "command": "inril bench furniture-expert " + " ".join(sys.argv[3:])}, indent=2))


def _seeds_arg(args: list[str], default: int) -> tuple[list[int], list[str]]:
    """`seeds=N` among the overrides (a benchmark option, not a config key): the seeds and the other overrides."""
    n = next((int(a.split("=", 1)[1]) for a in args if a.startswith("seeds=")), default)
    return list(range(n)), [a for a in args if not a.startswith("seeds=")]


def _pretrain_history(cfg) -> list[dict] | None:
    """The BC pre-training curve of the task's pre-trained policy (for the IL-loss plot), if it has one."""
    from inril_core.checkpoint import load_latest

    found = load_latest(cfg.train.pretrained)
    return found[2].get("history") if found else None


def _run_benchmark(task_overrides: list[str], arms, seeds, runs_root: Path, out_dir: Path, jobs: int,
                   title: str, baseline: str, threshold: float | None = None,
                   only: set[str] | None = None) -> dict:
    """Demos and pre-training for the task (once), every (arm, seed) run, then the summary in out_dir. With
    ``only``, just those arms run; the others keep the evaluations out_dir's all_evals.csv already holds, and a
    summary made afresh (an ablation's own out_dir) holds those arms alone."""
    from inril_core import bench

    base = _guarded(lambda: _config(task_overrides))
    to_run = [a for a in arms if only is None or a.label in only]
    if not (out_dir / "all_evals.csv").exists():
        arms = to_run
    try:
        kept = bench.kept_evals(out_dir, [a.label for a in arms if a not in to_run], seeds)
    except bench.BenchError as exc:  # before hours of runs, not after
        _fail(str(exc))
    _guarded(lambda: _ensure_pretrained(base, task_overrides))
    for arm in to_run:  # a typo in an arm fails here, before hours of runs
        _guarded(lambda: _config([*task_overrides, *arm.overrides]))
    try:
        bench.run_all(runs_root, to_run, seeds, task_overrides, jobs, echo=console.print)
    except bench.BenchError as exc:
        _fail(str(exc))
    command = "inril bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return bench.summarise(runs_root, out_dir, arms, seeds, base.task, command, base.train.eval_episodes,
                           base.train.metric, threshold, baseline, title, _pretrain_history(base), kept)


JOBS = typer.Option(1, "--jobs", help="runs at a time, each its own process (2 on a 2-core machine)")


@bench_app.command("sample-efficiency", context_settings=EXTRA)
def bench_sample_efficiency(overrides: Optional[list[str]] = OVERRIDES,
                            out: Optional[Path] = typer.Option(None, help="default docs/results/<task>-<algo>"),
                            methods: str = typer.Option(",".join(("in-ril", "rl-only", "bc-reg"))),
                            threshold: Optional[float] = typer.Option(None, help="default: RL-only's final mean"),
                            jobs: int = JOBS):
    """IN-RIL vs RL-only vs BC-reg, same pre-trained policy and env-step budget: `... task=can algo=dppo seeds=3`.

    Makes the demos and the pre-trained policy first when they are missing; skips finished runs and resumes
    interrupted ones, so it can be stopped and continued.
    """
    from inril_core import bench

    seeds, args = _seeds_arg(list(overrides or []), 3)
    base = _guarded(lambda: _config(args))
    name = f"{base.task.replace('@', '-').replace('/', '-')}-{base.algo}"  # furniture/one_leg: one folder
    summary = _run_benchmark(args, bench.method_arms(methods.split(",")), seeds, Path("runs/bench") / name,
                             out or Path("docs/results") / name, jobs, f"{base.task} / {base.algo}", "rl-only",
                             threshold)
    print(json.dumps(summary["methods"], indent=2))
    console.print(f"wrote {out or Path('docs/results') / name}/summary.json, all_evals.csv, learning_curves.png, "
                  "il_loss_rho.png")


PAPER_RESULTS = Path("docs/results/paper")


@bench_app.command("paper", context_settings=EXTRA)
def bench_paper(overrides: Optional[list[str]] = OVERRIDES,
                full: bool = typer.Option(False, "--full", help="every task at the real budgets (days of CPU)"),
                only: Optional[str] = typer.Option(None, help="comma-separated experiments of config/bench/paper.yaml"),
                tasks: Optional[str] = typer.Option(
                    None, help="comma-separated tasks instead of the budget's list (e.g. walker2d,halfcheetah); "
                               "m-sweep and separation take the first two"),
                jobs: int = JOBS,
                out: Path = typer.Option(PAPER_RESULTS, help="summaries go to <out>/<experiment>-<task>"),
                arms: Optional[str] = typer.Option(
                    None, help="comma-separated arm labels to run (e.g. idql/in-ril,idql/rl-only); the other arms "
                               "keep the evaluations their summary's all_evals.csv already holds"),
                readme: Optional[Path] = typer.Option(
                    None, help="README whose results block to rewrite from <out>'s summaries (default: README.md "
                               "when --out is docs/results/paper, none when it is elsewhere, as for an ablation)")):
    """The paper's matrix in one command (config/bench/paper.yaml): algorithm x method on every task with the RLPD
    baseline, the m sweep with adaptive m(t), the separation ablation; >= 5 seeds, mean and 95% CI, rho(t) and
    held-out IL-loss curves. Reduced budget by default, --full for the real one. Resumable: finished runs are kept.
    Overrides apply to every arm and get runs of their own (an ablation: `rl.actor_weighting=advantage --out DIR`)."""
    from omegaconf import OmegaConf

    from inril_core import bench
    from inril_core.config import config_dir

    plan = OmegaConf.to_container(OmegaConf.load(config_dir() / "bench" / "paper.yaml"), resolve=True)
    mode = "full" if full else "reduced"
    seeds, args = _seeds_arg(list(overrides or []), plan["seeds"])
    chosen = only.split(",") if only else list(plan["experiments"])
    unknown = sorted(set(chosen) - set(plan["experiments"]))
    if unknown:
        _fail(f"--only {','.join(unknown)}: config/bench/paper.yaml has {', '.join(plan['experiments'])}")
    task_list = tasks.split(",") if tasks else plan["tasks"][mode]
    unbudgeted = [t for t in task_list if mode not in plan["budgets"].get(t, {})]
    if unbudgeted:
        _fail(f"--tasks {','.join(unbudgeted)}: config/bench/paper.yaml gives no {mode} budget for it; tasks with "
              f"one: {', '.join(t for t, b in plan['budgets'].items() if mode in b)}")
    only = set(arms.split(",")) if arms else None
    labels = {label for name in chosen for label in plan["experiments"][name]["arms"]}
    if only is not None and not only <= labels:
        _fail(f"--arms {','.join(sorted(only - labels))}: the chosen experiments have arms {', '.join(sorted(labels))}")
    summaries = []
    for name in chosen:
        spec = plan["experiments"][name]
        exp_arms = [bench.Arm(label, tuple(o)) for label, o in spec["arms"].items()]
        if only is not None and not only & set(spec["arms"]):
            continue  # nothing of this experiment to re-run: its summary stays as it is
        for task in (task_list if spec["tasks"] == "all" else task_list[:2]):
            task_args = [f"task={task}", *plan["budgets"].get(task, {}).get(mode, []), *args]
            console.print(f"[bold]{name} on {task}[/]: {len(exp_arms)} arms x {len(seeds)} seeds ({mode} budget)")
            runs_root = Path("runs/bench/paper") / mode / task / (bench.overrides_slug(args) if args else "")
            summaries.append(_run_benchmark(task_args, exp_arms, seeds, runs_root,
                                            out / f"{name}-{task}", jobs, f"{name} / {task}", spec["baseline"],
                                            only=only))
    readme = readme or (Path("README.md") if out == PAPER_RESULTS else None)
    if readme is not None:
        _guarded_value(lambda: bench.write_readme_table(readme, _table_of(out)))
        console.print(f"results table rewritten in {readme}")


def _table_of(results: Path) -> str:
    from inril_core.bench import markdown_table

    paths = sorted(results.glob("*/summary.json"))
    if not paths:
        _fail(f"no summary.json under {results}: run 'inril bench paper' or 'inril bench sample-efficiency ...'")
    return markdown_table([json.loads(p.read_text()) for p in paths])


def _guarded_value(fn):
    try:
        return fn()
    except ValueError as exc:
        _fail(str(exc))


@bench_app.command("live", context_settings=EXTRA)
def bench_live(overrides: Optional[list[str]] = OVERRIDES,
               env_steps: int = typer.Option(80_000, "--env-steps", help="env-step budget"),
               episodes_per_update: int = typer.Option(16, "--episodes-per-update",
                                                       help="as the learner node's parameter"),
               env_steps_per_update: int = typer.Option(4800, "--env-steps-per-update",
                                                        help="as the learner node's parameter"),
               run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="default runs/live-inprocess/<time>")):
    """The graph's live learner fed in this process by one env, episode after episode (no ROS, ~3x the graph's
    speed here): tune what the graph learns with, then confirm with `inril sim`. Writes the graph's report.md."""
    from inril_core.live_inprocess import run_live_inprocess
    from inril_core.training import progress_bar
    from inril_ros.report import write_report

    cfg = _guarded(lambda: _config(overrides))
    _guarded(lambda: _ensure_pretrained(cfg, overrides or []))
    run_dir = run_dir or Path("runs/live-inprocess") / time.strftime("%Y%m%d-%H%M%S")
    if (run_dir / "learner" / "checkpoints").exists():
        _fail(f"{run_dir} already holds a live run: pick another --run-dir")

    with progress_bar() as bar:
        task = bar.add_task(f"live {cfg.method} {cfg.task}", total=env_steps, status="")

        def progress(steps: int, m: dict | None) -> None:
            if m is not None:
                bar.console.print(f"version {m['version']}: success of the {m['episodes_used']} episodes it "
                                  f"learned from {m['success_rate']:.2f}, update {m['update_s']:.1f} s")
                bar.update(task, status=f"v{m['version']}, last batch success {m['success_rate']:.2f}")
            bar.update(task, completed=min(steps, env_steps))

        summary = _guarded(lambda: run_live_inprocess(cfg, run_dir, env_steps, episodes_per_update,
                                                      env_steps_per_update, progress))
    report = write_report(run_dir, summary=f"in-process live run (`inril bench live`): {summary['episodes']} "
                                           f"episodes, {summary['updates']} updates, {summary['env_steps']} env "
                                           f"steps in {summary['seconds']} s")
    console.print(f"report {report}")


@bench_app.command("rollout-workers", context_settings=EXTRA)
def bench_rollout_workers(overrides: Optional[list[str]] = OVERRIDES,
                          workers: str = typer.Option("1,2,4", help="comma-separated Ray worker counts"),
                          seconds: float = typer.Option(20.0, help="stepping time per row"),
                          out: Path = typer.Option(Path("docs/results/rollout-scaling"))):
    """Env steps/s of the local vector env vs Ray rollout workers (env.ray_address: a cluster, default a local
    session): summary.json, report.md and scaling.png."""
    from inril_core.rollout_bench import measure_rollout_scaling
    from inril_core.training import progress_bar

    cfg = _guarded(lambda: _config(overrides))
    with progress_bar() as bar:
        task = bar.add_task("rollout workers", total=1.0, status="")
        summary = measure_rollout_scaling(
            cfg.env.id, cfg.env.n_envs, [int(w) for w in workers.split(",")], seconds, cfg.env.max_episode_steps,
            cfg.policy.act_steps, out, cfg.env.ray_address,
            progress=lambda row, done: bar.update(task, completed=done, status=row),
            command="inril bench rollout-workers " + " ".join(shlex.quote(a) for a in sys.argv[3:]))
    console.print(f"wrote {out}/report.md ({len(summary['rows'])} rows)")


@bench_app.command("il-steps", context_settings=EXTRA)
def bench_il_steps(overrides: Optional[list[str]] = OVERRIDES,
                   steps: str = typer.Option("1,10,30", help="comma-separated cumulative IL step counts"),
                   lrs: str = typer.Option("", help="comma-separated il.lr values (default: the config's)"),
                   primes: str = typer.Option("", help="comma-separated il.prime_batches (default: 0 and the "
                                                       "config's)"),
                   out: Optional[Path] = typer.Option(None, help="default docs/results/<task>-il-steps")):
    """Success of the pre-trained policy after IL steps alone, per il.lr and Adam priming: whether IN-RIL's
    imitation keeps the base where it is before a long run is spent finding out (`task=furniture/one_leg
    algo=residual_ppo`)."""
    from inril_core.il_steps import il_step_plan, measure_il_steps
    from inril_core.training import progress_bar

    cfg = _guarded(lambda: _config(overrides))
    _guarded(lambda: _ensure_pretrained(cfg, overrides or []))
    arms, milestones = _guarded_value(lambda: il_step_plan(
        [float(v) for v in lrs.split(",")] if lrs else [float(cfg.il.lr)],
        [int(v) for v in primes.split(",")] if primes else sorted({0, int(cfg.il.prime_batches)}),
        [int(v) for v in steps.split(",")]))
    out = out or Path("docs/results") / f"{cfg.task.replace('/', '-')}-il-steps"
    command = "inril bench il-steps " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    with progress_bar() as bar:
        task = bar.add_task("IL steps", total=1 + len(arms) * len(milestones), status="")

        def progress(line: str) -> None:
            bar.console.print(line)
            bar.update(task, advance=1, status=line)

        _guarded(lambda: measure_il_steps(cfg, milestones, arms, out, command, progress))
    console.print(f"wrote {out}/report.md")


@bench_app.command("latency-tolerance", context_settings=EXTRA)
def bench_latency_tolerance(
        overrides: Optional[list[str]] = OVERRIDES,
        delays: str = typer.Option("0,1,2,3,5", help="comma-separated decision delays, in control steps"),
        ddim_steps: str = typer.Option("", "--ddim-steps", help="comma-separated DDIM step counts per decision "
                                                                "(default: the policy's T and 5)"),
        publish_steps: int = typer.Option(0, "--publish-steps", help="points per chunk, h up to the predicted "
                                                                     "horizon (policy_server publish_steps; 0 = h)"),
        episodes: int = typer.Option(20, help="episodes per row, on the evaluation seeds"),
        control_rate_hz: float = typer.Option(20.0, "--control-rate-hz", help="control steps per second (delay in "
                                                                              "ms, decision time in steps)"),
        out: Optional[Path] = typer.Option(None, help="default docs/results/<task>/latency")):
    """Success of the pre-trained policy when each chunk is used some steps after the observation it answers, as
    in the real-time graph (the chunk's later points cover the wait): what decision latency the policy needs, and
    what fewer DDIM steps buy. Offline and deterministic; the policy server's parameters of the same names."""
    from inril_core.latency_tolerance import measure_latency_tolerance
    from inril_core.training import progress_bar

    cfg = _guarded(lambda: _config(overrides))
    _guarded(lambda: _ensure_pretrained(cfg, overrides or []))
    delay_list = _guarded_value(lambda: [int(v) for v in delays.split(",")])
    ddim_list = _guarded_value(lambda: [int(v) for v in ddim_steps.split(",")] if ddim_steps
                               else sorted({int(cfg.policy.n_steps), 5}, reverse=True))
    out = out or Path("docs/results") / cfg.task.replace("/", "-") / "latency"
    command = "inril bench latency-tolerance " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    with progress_bar() as bar:
        row = bar.add_task("latency tolerance", total=len(ddim_list) * (len(delay_list) + 1), status="")

        def progress(line: str) -> None:
            bar.console.print(line)
            bar.update(row, advance=1, status=line)

        _guarded_value(lambda: _guarded(lambda: measure_latency_tolerance(
            cfg, delay_list, ddim_list, publish_steps, episodes, control_rate_hz, out, command, progress)))
    console.print(f"wrote {out}/report.md")


@bench_app.command("latency")
def bench_latency(out: Path = typer.Option(Path("docs/benchmarks.md"), help="Markdown page to write"),
                  quick: bool = typer.Option(False, help="a few samples of each: a smoke run (< 1 min)")):
    """Graph latency between real node processes: obs -> chunk, executor jitter, images, learner rate, weight swaps."""
    from inril_ros.latency_bench import BenchError, run

    try:
        run(out, quick=quick, progress=lambda line: console.print(escape(line), soft_wrap=True))
    except BenchError as error:
        _fail(str(error))


@bench_app.command("table")
def bench_table(results: Path = typer.Option(Path("docs/results/paper"), help="folder of */summary.json"),
                readme: Optional[Path] = typer.Option(None, help="rewrite this README's generated results block")):
    """The benchmark results as a Markdown table (mean, 95% CI, per seed, steps to threshold) from every summary."""
    from inril_core.bench import write_readme_table

    table = _table_of(results)
    if readme is not None:
        _guarded_value(lambda: write_readme_table(readme, table))
        console.print(f"wrote the table into {readme}")
    else:
        print(table)


def main() -> None:
    from inril_sim.furniture.isaac import preload_for_args

    preload_for_args(sys.argv[1:])  # IsaacGym refuses to load after torch: first, when an @isaac task is named
    app()


if __name__ == "__main__":
    main()
