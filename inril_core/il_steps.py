"""Does an IL injection preserve the pre-trained policy? Success after k IL steps, per IL learning rate and priming.

IN-RIL's IL steps start from a policy that already sits at a behaviour-cloning optimum, where the demo gradient is
mostly minibatch noise. If the steps are too large, or shaped wrongly (a fresh Adam's first step is lr * sign(g) on
every weight), imitation itself walks the policy off its optimum and IN-RIL loses to RL-only for reasons that have
nothing to do with interleaving. This probe measures that directly, before a long fine-tuning run is spent on it:
the task's fine-tuning learner (``training.build_learner``: the algorithm, its IL parameters and the same
``ImitationUpdater``) takes IL steps only, and the deployed policy (``FineTuneRun.evaluate``'s) is evaluated after
each milestone. Writes summary.json, report.md and il_steps.png under the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import torch
from omegaconf import DictConfig, OmegaConf

from inril_core.config import resolve_device
from inril_core.training import build_learner, evaluate_algorithm, load_pretrained_agent, seed_everything

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Progress = Callable[[str], None]  # one line per finished evaluation


def il_step_plan(lrs: Sequence[float], primes: Sequence[int], steps: Sequence[int]) -> tuple[list[dict], list[int]]:
    """The arms (every (il.lr, il.prime_batches) pair) and the sorted cumulative IL step counts to evaluate at."""
    if not lrs or not primes or any(lr <= 0 for lr in lrs) or any(p < 0 for p in primes):
        raise ValueError(f"--lrs must be > 0 and --primes >= 0, one or more of each; got lrs {list(lrs)}, "
                         f"primes {list(primes)}")
    milestones = sorted(set(int(k) for k in steps))
    if not milestones or milestones[0] < 1:
        raise ValueError(f"--steps must be positive IL step counts, got {list(steps)}")
    return [{"lr": float(lr), "prime_batches": int(p)} for lr in lrs for p in primes], milestones


def _evaluate(cfg: DictConfig, learner) -> dict:
    """The deployed policy's evaluation, on RNG streams of its own: the IL draws after a milestone are the ones a
    run without that evaluation would make, so the step counts in the table mean what they say."""
    with torch.random.fork_rng():
        result = evaluate_algorithm(cfg, learner.algo)
    return {**result.as_dict(), "heldout_il_loss": learner.imitation.heldout_loss()}


def measure_il_steps(cfg: DictConfig, milestones: Sequence[int], arms: Sequence[dict], out_dir: str | Path,
                     command: str, progress: Progress | None = None) -> dict:
    """Evaluate the pre-trained policy, then for each arm take IL steps (one per injection, as a run with
    ``il.steps_per_injection: 1`` does) from the same weights and evaluate after each milestone (sorted cumulative
    step counts, ``il_step_plan``). Returns and writes the summary."""
    device = resolve_device(cfg.device, cfg.threads)
    say = progress or (lambda line: None)

    def fresh_learner(arm: dict):
        seed_everything(cfg.seed)
        arm_cfg = OmegaConf.merge(cfg, {"il": arm})
        agent = load_pretrained_agent(cfg.train.pretrained, cfg.task).to(device)
        return build_learner(arm_cfg, agent, device)

    base = _evaluate(cfg, fresh_learner(arms[0]))
    say(f"pre-trained: success {base['success_rate']:.2f}")
    rows = []
    for arm in arms:
        learner, done = fresh_learner(arm), 0
        for k in milestones:
            for _ in range(k - done):
                learner.imitation.inject(1)
            done = k
            result = _evaluate(cfg, learner)
            rows.append({**arm, "il_steps": k, **result})
            say(f"lr {arm['lr']:g}, prime {arm['prime_batches']}, {k} IL steps: success {result['success_rate']:.2f}")
    summary = {"task": cfg.task, "algo": cfg.algo, "separation": cfg.separation, "pretrained": cfg.train.pretrained,
               "eval_episodes": cfg.train.eval_episodes, "pretrained_eval": base, "rows": rows, "command": command}
    _write(summary, Path(out_dir))
    return summary


def _write(summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    base = summary["pretrained_eval"]
    lines = [f"# IL steps from the pre-trained policy: {summary['task']} ({summary['algo']}, separation "
             f"{summary['separation']})", "", f"    {summary['command']}", "",
             f"Pre-trained: success {base['success_rate']:.2f} (95% CI {base['success_ci95'][0]:.2f}–"
             f"{base['success_ci95'][1]:.2f}), held-out IL loss {base['heldout_il_loss']:.4f}; "
             f"{summary['eval_episodes']} episodes per evaluation.", "",
             "| il.lr | il.prime_batches | IL steps | success (95% CI) | held-out IL loss |", "|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['lr']:g} | {r['prime_batches']} | {r['il_steps']} | {r['success_rate']:.2f} "
                     f"({r['success_ci95'][0]:.2f}–{r['success_ci95'][1]:.2f}) | {r['heldout_il_loss']:.4f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    arms = sorted({(r["lr"], r["prime_batches"]) for r in summary["rows"]})
    for lr, prime in arms:
        rows = [r for r in summary["rows"] if (r["lr"], r["prime_batches"]) == (lr, prime)]
        ax.plot([0] + [r["il_steps"] for r in rows], [base["success_rate"]] + [r["success_rate"] for r in rows],
                marker="o", label=f"lr {lr:g}, " + (f"primed ({prime})" if prime else "fresh Adam"))
    ax.set_xscale("symlog", linthresh=1)
    ax.set(xlabel="IL steps from the pre-trained policy", ylabel="success rate", ylim=(-0.02, 1.02),
           title=f"{summary['task']}: success after IL steps only")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "il_steps.png", dpi=100)
    plt.close(fig)
