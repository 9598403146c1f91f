"""The two training loops: behaviour-cloning pre-training and IN-RIL / RL-only / BC-reg fine-tuning.

Each loop is a short sequence of named steps (collect, update, evaluate, checkpoint); the progress bar shows what
a user waits for (env steps and the latest success rate). A run directory holds config.yaml, checkpoints/, CSV
files, TensorBoard events and report.json; `resume=True` continues a run from its newest checkpoint and ends with
the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.buffers import build_demo_splits, fixed_noise_loss, load_demo_episodes
from inril_core.checkpoint import load_latest, rng_state, save_checkpoint, set_rng_state
from inril_core.config import interleave_m, resolve_device
from inril_core.envs import make_vector_env, step_outcome
from inril_core.evaluate import evaluate
from inril_core.interleave import InterleaveSchedule
from inril_core.learner import ImitationUpdater, Learner
from inril_core.rl.dppo import DPPO, Rollout
from inril_core.run_log import RunLog


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn())


def _write_config(cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml")


# ================================================================================================ pre-training


def pretrain(cfg: DictConfig) -> dict:
    """Behaviour cloning on the demo store until the held-out loss plateaus, then a success evaluation."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, cfg.threads)
    run_dir = Path(cfg.pretrain.run_dir)
    episodes = load_demo_episodes(cfg.demos.path, cfg.env.obs_dim, cfg.env.act_dim)
    agent = DiffusionAgent.from_config(cfg)
    agent.obs_norm.fit(np.concatenate([e.observations for e in episodes]))
    agent.act_norm.fit(np.concatenate([e.actions for e in episodes]))
    agent.to(device)
    train, holdout = build_demo_splits(episodes, cfg.policy.horizon, agent.obs_norm, agent.act_norm,
                                       cfg.demos.holdout_fraction, cfg.seed, device)
    _write_config(cfg, run_dir)
    p = cfg.pretrain
    optimizer = torch.optim.AdamW(agent.policy.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, p.max_epochs, eta_min=p.lr_min)
    history, best, best_epoch, best_tensors = [], math.inf, 0, None
    start = time.time()
    with progress_bar() as bar:
        task = bar.add_task("pretrain", total=p.max_epochs, status="")
        for epoch in range(p.max_epochs):
            train_loss = _bc_epoch(agent, train, optimizer, p.batch_size)
            scheduler.step()
            held = fixed_noise_loss(agent.policy, holdout if len(holdout) else train, max_samples=4096)
            history.append({"epoch": epoch, "train_loss": train_loss, "heldout_loss": held})
            if held < best:
                best, best_epoch = held, epoch
                best_tensors = {k: v.detach().clone() for k, v in agent.tensors().items()}
            bar.update(task, advance=1, status=f"loss {train_loss:.4f} held-out {held:.4f} (best {best:.4f})")
            if epoch - best_epoch >= p.patience:
                break
    agent.load_tensors(best_tensors)
    seconds = time.time() - start
    result = evaluate(agent.act_deterministic, cfg.env.id, cfg.env.max_episode_steps, cfg.policy.act_steps,
                      p.eval_episodes, cfg.train.eval_n_envs, seed=cfg.seed)
    report = {"task": cfg.task, "demos": len(episodes), "epochs": len(history), "best_epoch": best_epoch,
              "best_heldout_loss": best, "seconds": round(seconds, 1), "eval": result.as_dict()}
    save_checkpoint(run_dir, len(history), {k: v.cpu() for k, v in agent.tensors().items()},
                    {"history": history, "report": report}, keep=1)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    _plot_pretrain(history, run_dir / "pretrain_loss.png")
    return report


def _bc_epoch(agent: DiffusionAgent, data, optimizer, batch_size: int) -> float:
    agent.train()
    order = torch.randperm(len(data), device=data.obs.device)
    losses = []
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        loss = agent.policy.denoising_loss(data.obs[idx], data.chunks[idx])
        if not torch.isfinite(loss):
            raise NonFiniteError(f"BC loss is {loss.item()}: lower pretrain.lr or check the demos for NaN")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.policy.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def _plot_pretrain(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["train_loss"] for h in history], label="train")
    ax.plot([h["heldout_loss"] for h in history], label="held-out demos")
    ax.set(xlabel="epoch", ylabel="denoising loss", yscale="log", title="BC pre-training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ================================================================================================ fine-tuning


def load_pretrained_agent(pretrained_dir: str | Path, task: str) -> DiffusionAgent:
    """The policy of the newest checkpoint in a pre-training (or fine-tuning) run directory, on the CPU."""
    found = load_latest(pretrained_dir)
    if found is None:
        raise FileNotFoundError(
            f"no pre-trained policy in {pretrained_dir}: run 'inril pretrain task={task}' first (or set "
            "train.pretrained=<pretrain run dir>; the learner node's policy_dir parameter)"
        )
    return DiffusionAgent.from_tensors(found[1])


def build_learner(cfg: DictConfig, agent: DiffusionAgent, device: str) -> Learner:
    """DPPO around ``agent`` (already on ``device``), the IN-RIL schedule and the imitation updater on the demo
    store, wired as every fine-tuning loop needs them; one place, so the offline run (FineTuneRun) and the live
    learner (inril_core.live) learn the same way. The learner reaches the algorithm as ``.algo``."""
    episodes = load_demo_episodes(cfg.demos.path, cfg.env.obs_dim, cfg.env.act_dim)
    demos, holdout = build_demo_splits(episodes, cfg.policy.horizon, agent.obs_norm, agent.act_norm,
                                       cfg.demos.holdout_fraction, cfg.seed, device)
    algo = DPPO(agent, cfg.rl)
    schedule = InterleaveSchedule(interleave_m(cfg), cfg.interleave.schedule == "adaptive", cfg.interleave.m_min,
                                  cfg.interleave.m_max)
    imitation = ImitationUpdater(algo, demos, holdout, cfg.il.lr, cfg.il.batch_size, cfg.separation,
                                 k_max=None if cfg.il.denoising_steps == "all" else cfg.rl.ft_denoising_steps,
                                 success_capacity=int(cfg.il.success_capacity))
    return Learner(algo, schedule, imitation, cfg.bc_reg["lambda"], cfg.bc_reg.batch_size,
                   cfg.il.steps_per_injection)


class FineTuneRun:
    """Everything one fine-tuning run owns; built fresh or restored from its newest checkpoint."""

    def __init__(self, cfg: DictConfig, resume: bool) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.run.dir)
        self.device = resolve_device(cfg.device, cfg.threads)
        seed_everything(cfg.seed)
        self.agent = load_pretrained_agent(cfg.train.pretrained, cfg.task).to(self.device)
        self.learner = build_learner(cfg, self.agent, self.device)
        self.algo = self.learner.algo
        self.iteration, self.env_steps = 0, 0
        self.recent: dict = {"success": float("nan")}
        self.last_eval: dict | None = None
        checkpoint = load_latest(self.run_dir, self.device) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume: {self.run_dir} has no checkpoint yet; start it without --resume")
        if not resume and checkpoint is None and (self.run_dir / "checkpoints").exists():
            raise FileExistsError(f"{self.run_dir} already holds a run: pass --resume to continue it or pick "
                                  "another run.dir")
        if checkpoint is not None:
            self._restore(checkpoint)
        _write_config(cfg, self.run_dir)
        self.log = RunLog(self.run_dir, resume_iteration=self.iteration if checkpoint else None)
        n_chunks = cfg.rl.n_chunk_steps or math.ceil(cfg.env.max_episode_steps / cfg.policy.act_steps)
        self.n_chunk_steps = int(n_chunks)
        self.envs = make_vector_env(cfg.env.id, cfg.env.n_envs, cfg.env.max_episode_steps, cfg.policy.act_steps,
                                    cfg.env.vector)

    # ------------------------------------------------------------------------------------------------ state

    def _restore(self, checkpoint) -> None:
        _, tensors, state = checkpoint
        self.agent.load_tensors(tensors)
        self.algo.load_tensors(tensors)
        self.learner.load_state_dict(state["learner"])
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.recent, self.last_eval = state["recent"], state["last_eval"]
        set_rng_state(state["rng"])

    def save(self) -> None:
        tensors = {**self.agent.tensors(), **self.algo.tensors()}
        state = {"learner": self.learner.state_dict(), "iteration": self.iteration, "env_steps": self.env_steps,
                 "recent": self.recent, "last_eval": self.last_eval, "rng": rng_state()}
        save_checkpoint(self.run_dir, self.iteration, tensors, state, keep=self.cfg.run.keep_checkpoints)

    # ------------------------------------------------------------------------------------------------ steps

    def collect(self) -> Rollout:
        """One iteration of rollouts from envs reset with seeds fixed by (seed, iteration): resumable exactly."""
        cfg, E = self.cfg, self.cfg.env.n_envs
        obs, _ = self.envs.reset(seed=[int(cfg.seed) * 1_000_000 + self.iteration * 1000 + i for i in range(E)])
        obs_t, chains, rewards, dones = [], [], [], []
        finished: list[bool] = []
        keep_successes = self.learner.imitation.successes.capacity > 0  # else no per-env bookkeeping
        episode_pairs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(E)]
        for _ in range(self.n_chunk_steps):
            o = self.agent.obs_tensor(obs)
            chunk, chain = self.algo.explore(o)
            if keep_successes:
                for i in range(E):
                    episode_pairs[i].append((o[i], chunk[i]))
            obs, reward, terminated, truncated, info = self.envs.step(self.agent.to_env_actions(chunk))
            reward = reward.astype(np.float64)
            ended = terminated | truncated
            steps, success = step_outcome(info, ended)
            timed_out = truncated & ~terminated
            if timed_out.any():  # bootstrap a time-out with the value of the state it stopped in
                final = np.stack([info["final_obs"][i] for i in np.nonzero(timed_out)[0]])
                reward[timed_out] += cfg.rl.gamma * self.algo.values(self.agent.obs_tensor(final)).cpu().numpy()
            for i in np.nonzero(ended)[0]:
                finished.append(bool(success[i]))
                if keep_successes and success[i]:
                    pair_obs, pair_chunks = zip(*episode_pairs[i])
                    self.learner.imitation.add_success(torch.stack(pair_obs), torch.stack(pair_chunks))
                episode_pairs[i] = []
            self.env_steps += int(steps.sum())
            obs_t.append(o)
            chains.append(chain)
            rewards.append(torch.as_tensor(reward, dtype=torch.float32))
            dones.append(torch.as_tensor(ended, dtype=torch.float32))
        if finished:
            self.recent = {"success": float(np.mean(finished)), "episodes": len(finished)}
        dev = self.device
        return Rollout(torch.stack(obs_t), torch.stack(chains), torch.stack(rewards).to(dev),
                       torch.stack(dones).to(dev), self.agent.obs_tensor(obs))

    def evaluate(self) -> dict:
        c = self.cfg
        result = evaluate(lambda o: self.agent.act_deterministic(o, self.algo.denoiser_for_step), c.env.id,
                          c.env.max_episode_steps, c.policy.act_steps, c.train.eval_episodes, c.train.eval_n_envs,
                          seed=c.seed)
        self.last_eval = {"iteration": self.iteration, "env_steps": self.env_steps, **result.as_dict()}
        row = {"iteration": self.iteration, "env_steps": self.env_steps, "success_rate": result.success_rate,
               "ci_low": result.success_ci95[0], "ci_high": result.success_ci95[1],
               "mean_return": result.mean_return, "mean_length": result.mean_length,
               "heldout_il_loss": self.learner.imitation.heldout_loss()}
        self.log.write("evals", row, self.env_steps)
        return row

    def update(self, rollout: Rollout) -> None:
        c = self.cfg
        train_actor = self.iteration >= c.rl.critic_warmup_iters
        metrics, injections = self.learner.update(rollout, c.rl.update_epochs, train_actor, c.rl.target_kl)
        # Rows are labelled like evaluations and checkpoints: by the iterations completed with this one, so that a
        # resume from checkpoint k keeps exactly the rows with iteration <= k (RunLog) and no row is duplicated.
        base = {"iteration": self.iteration + 1, "env_steps": self.env_steps,
                "rollout_success": self.recent.get("success", float("nan"))}
        self.log.write("metrics", {**base, **metrics}, self.env_steps)
        for record in injections:
            self.log.write("injections", {**base, **record}, self.env_steps)

    # ------------------------------------------------------------------------------------------------ loop

    def run(self) -> dict:
        """Train to the env-step budget; the log and the envs are closed however the run ends."""
        try:
            self._train_to_budget()
            return self._report()
        finally:
            self.log.close()
            self.envs.close()

    def _train_to_budget(self) -> None:
        c = self.cfg
        budget = int(c.train.env_steps)
        if self.iteration == 0 and self.last_eval is None:
            self.evaluate()
            self.save()
        with progress_bar() as bar:
            task = bar.add_task(f"{c.method} {c.task}", total=budget, completed=min(self.env_steps, budget),
                                status="")
            while self.env_steps < budget:
                rollout = self.collect()
                self.update(rollout)
                self.iteration += 1
                done = self.env_steps >= budget
                if self.iteration % c.train.eval_every == 0 or done:
                    self.evaluate()
                if self.iteration % c.run.checkpoint_every == 0 or done:
                    self.save()
                bar.update(task, completed=min(self.env_steps, budget), status=self._status())

    def _status(self) -> str:
        ev = self.last_eval or {}
        return (f"rollout success {self.recent.get('success', float('nan')):.2f} | "
                f"eval {ev.get('success_rate', float('nan')):.2f} @ {ev.get('env_steps', 0)}")

    def _report(self) -> dict:
        from inril_core.run_log import read_csv
        from inril_core.plots import plot_run

        evals = read_csv(self.run_dir / "evals.csv")
        report = {"task": self.cfg.task, "method": self.cfg.method, "seed": self.cfg.seed,
                  "env_steps": self.env_steps, "iterations": self.iteration,
                  "pretrained_success": evals[0]["success_rate"], "final_success": evals[-1]["success_rate"],
                  "evals": evals}
        (self.run_dir / "report.json").write_text(json.dumps(report, indent=2))
        plot_run(self.run_dir)
        return report


def train(cfg: DictConfig, resume: bool = False) -> dict:
    return FineTuneRun(cfg, resume).run()
