"""How much decision latency a chunk policy tolerates: offline rollouts on the real-time graph's schedule.

In real time the policy server decides a chunk from the observation at step ``t`` every ``h`` steps, and the
executor can use it only once it arrives, ``L`` steps later; until then it runs the previous chunk's later points
(the server's ``publish_steps``) or holds. On one_leg the node graph scored 0/8 in real time on this 2-core
machine (decisions ~5 steps late) against 5/10 in lock-step, and a graph run cannot say which part of that is the
latency itself: the graph's noise (timer phase, contention) comes with it. Here the same schedule runs in the
offline env, deterministic and without ROS: the chunk decided at step ``t`` is usable from step ``t + L``, and step
``s`` runs point ``s - t`` of the newest usable chunk, or the hold action (the executor's: no motion, gripper
unchanged) when it has no such point. ``L = 0`` is the ordinary evaluation, on its seeds. Decisions stay every ``h``
steps at any ``L``: for ``L >= h`` that is a server deciding several chunks at once, where the graph's one-at-a-time
server decides less often (and does worse). The table (success per
delay and DDIM step count, with the measured decision time) says what latency a policy needs before it goes on a
robot, and whether fewer DDIM steps buy it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from omegaconf import DictConfig

from inril_core.agent import DiffusionAgent
from inril_core.config import resolve_device
from inril_core.envs import eval_vector, make_env
from inril_core.evaluate import evaluate
from inril_core.safety import hold_action, load_limits
from inril_core.training import load_pretrained_agent, seed_everything

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Decide = Callable[[np.ndarray], np.ndarray]  # raw obs (B, obs_dim) -> raw chunks (B, points, A)
Progress = Callable[[str], None]  # one line per finished row


class DelayedChunkPolicy:
    """One action per step, (B, 1, A), from chunks decided every ``decide_every`` steps and usable ``delay`` steps
    after the observation they answer (the module docstring); ``episodes_ended`` starts an env's schedule over, as
    the graph's executor does at an episode boundary (no chunk of the previous episode drives the next)."""

    def __init__(self, decide: Decide, n_envs: int, delay: int, decide_every: int, hold: np.ndarray) -> None:
        if delay < 0 or decide_every < 1:
            raise ValueError(f"delay must be >= 0 and decide_every >= 1 steps, got {delay} and {decide_every}")
        self.decide, self.delay, self.decide_every, self.hold = decide, delay, decide_every, hold
        self.steps = np.zeros(n_envs, dtype=int)  # step within each env's episode
        self.chunks: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n_envs)]  # (decided at step, points)
        self.holds = 0
        self.actions = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        due = np.nonzero(self.steps % self.decide_every == 0)[0]
        if len(due):
            kept = self.delay // self.decide_every + 1  # older chunks can no longer be the newest usable one
            for i, chunk in zip(due, self.decide(obs[due])):
                self.chunks[i] = self.chunks[i][-kept:] + [(int(self.steps[i]), chunk)]
        actions = np.stack([self._point(i) for i in range(len(self.steps))])
        self.steps += 1
        return actions[:, None]

    def _point(self, i: int) -> np.ndarray:
        s = self.steps[i]
        usable = [(t, points) for t, points in self.chunks[i] if t + self.delay <= s]
        self.actions += 1
        if usable and s - usable[-1][0] < len(usable[-1][1]):
            t, points = usable[-1]
            return points[s - t]
        self.holds += 1
        return self.hold

    def episodes_ended(self, ended: np.ndarray) -> None:
        for i in np.nonzero(ended)[0]:
            self.steps[i], self.chunks[i] = 0, []


def decision_seconds(agent: DiffusionAgent, obs: np.ndarray, ddim_steps: int | None, repeats: int = 10) -> float:
    """Median seconds of one deterministic decision for one observation (B = 1: what a policy server pays per
    chunk)."""
    agent.act_deterministic(obs, ddim_steps=ddim_steps)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        agent.act_deterministic(obs, ddim_steps=ddim_steps)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure_latency_tolerance(cfg: DictConfig, delays: Sequence[int], ddim_steps: Sequence[int],
                              publish_steps: int, episodes: int, control_rate_hz: float, out_dir: str | Path,
                              command: str, progress: Progress | None = None, hold: np.ndarray | None = None) -> dict:
    """Success of the pre-trained policy (deterministic DDIM) per (DDIM steps, delay in steps) on the evaluation
    seeds; writes summary.json, report.md and latency.png under ``out_dir`` and returns the summary. ``hold`` is
    the action while no chunk covers a step; default the executor's, from the task's safety limits."""
    say = progress or (lambda line: None)
    agent = load_pretrained_agent(cfg.train.pretrained, cfg.task).to(resolve_device(cfg.device, cfg.threads))
    h, horizon, n_steps = agent.act_steps, agent.spec["horizon"], agent.spec["n_steps"]
    publish_steps = publish_steps or h
    if not h <= publish_steps <= horizon:
        raise ValueError(f"--publish-steps {publish_steps}: from the policy's chunk length h={h} to its predicted "
                         f"horizon {horizon} (0 = h)")
    if not ddim_steps or any(not 1 <= k <= n_steps for k in ddim_steps):
        raise ValueError(f"--ddim-steps {','.join(map(str, ddim_steps))}: each from 1 to the policy's {n_steps} "
                         "denoising steps")
    if not delays or min(delays) < 0:
        raise ValueError(f"--delays {','.join(map(str, delays))}: steps from the observation to the chunk's use, "
                         "each >= 0")
    if hold is None:
        hold = hold_action(load_limits(cfg.task).rotation)
    if hold.shape != (agent.spec["act_dim"],):
        raise ValueError(f"the hold action of task {cfg.task} (config/safety.yaml) has {hold.size} components, the "
                         f"policy's actions {agent.spec['act_dim']}: measure the policy on its own task")
    n_envs = min(int(cfg.train.eval_n_envs), episodes)
    env = make_env(cfg.env.id, cfg.env.max_episode_steps, 1)
    try:
        first_obs = env.reset(seed=cfg.seed)[0][None]
    finally:
        env.close()
    rows, decision_ms = [], {}
    for k in ddim_steps:
        ms = decision_ms[str(k)] = 1e3 * decision_seconds(agent, first_obs, k)
        say(f"DDIM {k} steps: one decision takes {ms:.0f} ms here ({ms * control_rate_hz / 1e3:.1f} steps at "
            f"{control_rate_hz:g} Hz)")
        for delay in delays:
            seed_everything(cfg.seed)
            policy = DelayedChunkPolicy(
                lambda obs, k=k: agent.act_deterministic(obs, steps=publish_steps, ddim_steps=k),
                n_envs, delay, h, hold)
            result = evaluate(policy, cfg.env.id, cfg.env.max_episode_steps, 1, episodes, n_envs, seed=cfg.seed,
                              on_ended=policy.episodes_ended, vector=eval_vector(cfg.env.vector))
            rows.append({"ddim_steps": k, "delay_steps": delay, "delay_ms": 1e3 * delay / control_rate_hz,
                         **result.as_dict(), "hold_fraction": policy.holds / max(policy.actions, 1)})
            say(f"DDIM {k}, delay {delay} steps: success {result.success_rate:.2f} "
                f"({result.success_ci95[0]:.2f}-{result.success_ci95[1]:.2f}), holds {rows[-1]['hold_fraction']:.1%}")
    summary = {"task": cfg.task, "pretrained": str(cfg.train.pretrained), "h": h, "publish_steps": publish_steps,
               "denoising_steps": n_steps, "episodes": episodes, "control_rate_hz": control_rate_hz,
               "threads": int(cfg.threads), "decision_ms": decision_ms, "rows": rows, "command": command}
    write_report(summary, Path(out_dir))
    return summary


def write_report(summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    rate = summary["control_rate_hz"]
    lines = [f"# Latency tolerance: {summary['task']}", "", f"    {summary['command']}", "",
             f"The pre-trained policy ({summary['pretrained']}, deterministic DDIM) on the real-time graph's "
             f"schedule, offline: a chunk decided every h={summary['h']} steps from the observation at step t is "
             f"used from step t + delay, its {summary['publish_steps']} published points covering the wait; hold "
             f"when none does. {summary['episodes']} episodes per row on the evaluation seeds; {rate:g} Hz.", "",
             "Decision time here (one observation, " + f"{summary['threads']} torch thread(s)): " + ", ".join(
                 f"{k} DDIM steps {ms:.0f} ms" for k, ms in summary["decision_ms"].items()) + ".", "",
             "| DDIM steps | delay (steps) | delay (ms) | success (95% CI) | mean length | holds |",
             "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['ddim_steps']} | {r['delay_steps']} | {r['delay_ms']:.0f} | {r['success_rate']:.2f} "
                     f"({r['success_ci95'][0]:.2f}–{r['success_ci95'][1]:.2f}) | {r['mean_length']:.0f} | "
                     f"{r['hold_fraction']:.1%} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in sorted({r["ddim_steps"] for r in summary["rows"]}, reverse=True):
        rows = [r for r in summary["rows"] if r["ddim_steps"] == k]
        x = [r["delay_steps"] for r in rows]
        y = [r["success_rate"] for r in rows]
        err = [[r["success_rate"] - r["success_ci95"][0] for r in rows],
               [r["success_ci95"][1] - r["success_rate"] for r in rows]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3,
                    label=f"DDIM {k} steps ({summary['decision_ms'][str(k)]:.0f} ms per decision here)")
    ax.set(xlabel=f"decision delay (steps at {rate:g} Hz)", ylabel="success rate", ylim=(-0.02, 1.02),
           title=f"{summary['task']}: success against decision latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)
