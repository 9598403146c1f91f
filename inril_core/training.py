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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from inril_core import distributed
from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.buffers import build_demo_splits, fixed_noise_loss, load_demo_episodes
from inril_core.checkpoint import load_latest, rng_state, save_checkpoint, set_rng_state
from inril_core.config import interleave_m, resolve_device
from inril_core.envs import eval_vector, make_env, make_vector_env, step_outcome
from inril_core.evaluate import EvalResult, evaluate
from inril_core.interleave import InterleaveSchedule
from inril_core.learner import ImitationUpdater, Learner
from inril_core.replay import ReplayBuffer, ReplayDraw, Transitions, demo_transitions
from inril_core.rl import build_algorithm
from inril_core.rl.base import Actor, RLAlgorithm, Rollout
from inril_core.run_log import RunLog


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(disable: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), disable=disable)


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
            held = fixed_noise_loss(agent.policy.denoising_loss, holdout if len(holdout) else train, max_samples=4096)
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
                      p.eval_episodes, cfg.train.eval_n_envs, seed=cfg.seed, vector=eval_vector(cfg.env.vector))
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


@dataclass
class DeployedPolicy:
    """A policy on raw observations, as evaluation and demo making roll it out: raw obs (B, obs_dim) -> raw actions
    (B, act_steps, A), and ``episodes_ended`` for a policy that keeps per-episode state (residual PPO)."""
    agent: DiffusionAgent
    actor: Actor
    act_steps: int

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.to_env_actions(self.actor.act(self.agent.obs_tensor(obs))[0])

    def episodes_ended(self, ended: np.ndarray) -> None:
        self.actor.episodes_ended(ended)


def load_policy(run_dir: str | Path, explore: bool = False, overrides: Iterable[str] = ()) -> DeployedPolicy:
    """The newest checkpoint's policy: a fine-tuning run's algorithm (built from the run's config.yaml with
    ``overrides`` on top, e.g. rl.n_candidates: residual, Gaussian or diffusion actor) or a pre-training run's
    diffusion policy (DDIM eta=0); on the CPU."""
    run_dir = Path(run_dir)
    found = load_latest(run_dir)
    if found is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint (expected {run_dir}/checkpoints/step_*)")
    tensors = found[1]
    agent = DiffusionAgent.from_tensors(tensors)
    config = run_dir / "config.yaml"
    if config.is_file():
        from inril_core.config import load_run_config

        cfg = load_run_config(run_dir, overrides)
        if any(k.startswith(f"{cfg.rl.name}.") for k in tensors):  # a fine-tuning run: its algorithm acts
            algo = build_algorithm(cfg, agent)
            algo.load_tensors(tensors)
            return DeployedPolicy(agent, algo.actor(explore), algo.env_act_steps)
    return DeployedPolicy(agent, Actor(lambda obs: (agent.policy.sample_ddim(obs, eta=0.0), None)), agent.act_steps)


def evaluate_algorithm(cfg: DictConfig, algo: RLAlgorithm) -> EvalResult:
    """The deterministic evaluation of ``algo``'s deployed policy on the config's fixed seeds (fine-tuning's, and
    the IL-steps probe's)."""
    policy = DeployedPolicy(algo.agent, algo.actor(explore=False), algo.env_act_steps)
    return evaluate(policy, cfg.env.id, cfg.env.max_episode_steps, policy.act_steps, cfg.train.eval_episodes,
                    cfg.train.eval_n_envs, seed=cfg.seed, on_ended=policy.episodes_ended,
                    vector=eval_vector(cfg.env.vector))


def scratch_agent(cfg: DictConfig) -> DiffusionAgent:
    """A fresh policy for RL from scratch (``train.pretrained: scratch``, e.g. the locomotion experts): observations
    pass unscaled (identity normaliser, as SAC on MuJoCo states) and actions map the env's action bounds to [-1, 1]."""
    agent = DiffusionAgent.from_config(cfg)
    env = make_env(cfg.env.id, cfg.env.max_episode_steps, 1)
    try:
        space = env.unwrapped.action_space
        agent.act_norm.fit(np.stack([space.low, space.high]))
    finally:
        env.close()
    agent.obs_norm.fit(np.stack([-np.ones(cfg.env.obs_dim), np.ones(cfg.env.obs_dim)]))
    return agent


def build_learner(cfg: DictConfig, agent: DiffusionAgent, device: str, episodes=None) -> Learner:
    """The RL algorithm of ``cfg.algo`` around ``agent`` (already on ``device``), the IN-RIL schedule and the
    imitation updater on the demo store (``episodes`` when already loaded), wired as every fine-tuning loop needs
    them; one place, so the offline run (FineTuneRun) and the live learner (inril_core.live) learn the same way.
    The learner reaches the algorithm as ``.algo``."""
    if episodes is None:
        episodes = load_demo_episodes(cfg.demos.path, cfg.env.obs_dim, cfg.env.act_dim) if cfg.demos.use else []
    demos, holdout = build_demo_splits(episodes, cfg.policy.horizon, agent.obs_norm, agent.act_norm,
                                       cfg.demos.holdout_fraction, cfg.seed, device, cfg.env.obs_dim,
                                       cfg.env.act_dim)
    algo = build_algorithm(cfg, agent)
    schedule = InterleaveSchedule(interleave_m(cfg), cfg.interleave.schedule == "adaptive", cfg.interleave.m_min,
                                  cfg.interleave.m_max, cfg.interleave.ema, cfg.interleave.rho_scale)
    imitation = ImitationUpdater(algo, demos, holdout, cfg.il.lr, cfg.il.batch_size, cfg.separation,
                                 success_capacity=int(cfg.il.success_capacity),
                                 prime_batches=int(cfg.il.prime_batches))
    return Learner(algo, schedule, imitation, cfg.bc_reg["lambda"], cfg.bc_reg.batch_size,
                   cfg.il.steps_per_injection, cfg.train.skip_rewardless_rollouts)


class EpisodeTally:
    """Success and return of the training episodes that end, per env; an episode may span several iterations
    (off-policy collection), so the running returns live as long as the envs."""

    def __init__(self, n_envs: int) -> None:
        self.running = np.zeros(n_envs)
        self.successes: list[bool] = []
        self.returns: list[float] = []

    def step(self, reward: np.ndarray, ended: np.ndarray, success: np.ndarray) -> None:
        self.running += reward
        for i in np.nonzero(ended)[0]:
            self.successes.append(bool(success[i]))
            self.returns.append(float(self.running[i]))
            self.running[i] = 0.0

    def restart(self) -> None:
        """All envs were reset: episodes in progress are abandoned."""
        self.running[:] = 0.0

    def take(self) -> dict | None:
        """Summary of the episodes that ended since the last call (None if none did)."""
        if not self.successes:
            return None
        out = {"success": float(np.mean(self.successes)), "return": float(np.mean(self.returns)),
               "episodes": len(self.successes)}
        self.successes, self.returns = [], []
        return out


class FineTuneRun:
    """Everything one fine-tuning run owns; built fresh or restored from its newest checkpoint.

    On-policy algorithms (DPPO, residual PPO) learn each iteration from a fresh rollout of full episodes, the envs
    reset from seeds fixed by (seed, iteration), so a resume is exact. Off-policy ones (IDQL, RLPD) step their envs
    on across iterations into a replay buffer (saved with every checkpoint) and take ``rl.replay_ratio`` gradient
    steps per new transition; a resume restores weights, optimisers and replay exactly, and starts new episodes.
    """

    def __init__(self, cfg: DictConfig, resume: bool) -> None:
        self.cfg = cfg
        self.device = distributed.init_from_environment(resolve_device(cfg.device, cfg.threads))
        # Data-parallel ranks (torchrun; inril_core.distributed) act on their own seeds and keep their own logs,
        # checkpoints and replay under run_dir/rank<r>; rank 0 writes the run's own files and evaluates.
        self.rank = distributed.rank()
        self.run_dir = Path(cfg.run.dir) if self.rank == 0 else Path(cfg.run.dir) / f"rank{self.rank}"
        seed_everything(cfg.seed)  # every rank builds identical networks (critics, targets, residual) ...
        scratch = cfg.train.pretrained == "scratch"
        self.agent = (scratch_agent(cfg) if scratch else load_pretrained_agent(cfg.train.pretrained, cfg.task)).to(
            self.device)
        episodes = load_demo_episodes(cfg.demos.path, cfg.env.obs_dim, cfg.env.act_dim) if cfg.demos.use else []
        self.learner = build_learner(cfg, self.agent, self.device, episodes)
        self.algo = self.learner.algo
        self.replay = None if self.algo.on_policy else self._replay(episodes)
        if self.rank:
            seed_everything(cfg.seed + 10_007 * self.rank)  # ... and then explores with its own random draws
        self.obs: np.ndarray | None = None   # off-policy: the envs' current observations between iterations
        self.tally = EpisodeTally(cfg.env.n_envs)
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
        if self.rank == 0:
            _write_config(cfg, self.run_dir)
        self.log = RunLog(self.run_dir, resume_iteration=self.iteration if checkpoint else None)
        act_steps = self.algo.env_act_steps
        if self.algo.on_policy:  # one full episode horizon per iteration
            n_steps = cfg.rl.n_chunk_steps or math.ceil(cfg.env.max_episode_steps / act_steps)
        else:
            n_steps = cfg.rl.n_chunk_steps
        self.n_chunk_steps = int(n_steps)
        self.envs = make_vector_env(cfg.env.id, cfg.env.n_envs, cfg.env.max_episode_steps, act_steps,
                                    cfg.env.vector, workers=cfg.env.workers, ray_address=cfg.env.ray_address)

    def _replay(self, episodes) -> ReplayDraw:
        """The replay buffer and the demo transitions an off-policy algorithm draws its batches from."""
        c, spec = self.cfg, self.agent.spec
        wanted = c.rl.demo_ratio > 0 or c.rl.get("critic_pretrain_steps", 0) > 0
        demos = (demo_transitions(episodes, spec["horizon"], spec["act_steps"], self.agent.obs_norm,
                                  self.agent.act_norm, self.device) if wanted else None)
        buffer = ReplayBuffer(int(c.rl.replay_capacity), spec["obs_dim"], spec["horizon"], spec["act_dim"],
                              self.device)
        return ReplayDraw(buffer, 0, demos, float(c.rl.demo_ratio))

    # ------------------------------------------------------------------------------------------------ state

    def _restore(self, checkpoint) -> None:
        _, tensors, state = checkpoint
        self.agent.load_tensors(tensors)
        self.algo.load_tensors(tensors)
        self.learner.load_state_dict(state["learner"])
        if self.replay is not None:
            self.replay.replay.load_state_dict(state["replay"])
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.recent, self.last_eval = state["recent"], state["last_eval"]
        set_rng_state(state["rng"])

    def save(self) -> None:
        tensors = {**self.agent.tensors(), **self.algo.tensors()}
        state = {"learner": self.learner.state_dict(), "iteration": self.iteration, "env_steps": self.env_steps,
                 "recent": self.recent, "last_eval": self.last_eval, "rng": rng_state()}
        if self.replay is not None:
            state["replay"] = self.replay.replay.state_dict()
        save_checkpoint(self.run_dir, self.iteration, tensors, state, keep=self.cfg.run.keep_checkpoints)

    # ------------------------------------------------------------------------------------------------ steps

    def _reset_seeds(self) -> list[int]:
        """Env seeds fixed by (seed, rank, iteration): an on-policy iteration, or an off-policy (re)start, is
        reproducible, and every data-parallel rank sees other start states."""
        first = int(self.cfg.seed) * 1_000_000 + self.iteration * 1000 + self.rank * 1_000_000_000
        return [first + i for i in range(self.cfg.env.n_envs)]

    def collect(self) -> Rollout | ReplayDraw:
        """One iteration's data: a rollout of full episodes (on-policy) or new replay transitions (off-policy)."""
        return self._collect_rollout() if self.algo.on_policy else self._collect_replay()

    def _collect_rollout(self) -> Rollout:
        """One iteration of rollouts from envs reset with seeds fixed by (seed, iteration): resumable exactly."""
        cfg, E = self.cfg, self.cfg.env.n_envs
        obs, _ = self.envs.reset(seed=self._reset_seeds())
        self.tally.restart()
        actor = self.algo.actor(explore=True)
        obs_t, samples, rewards, dones, bootstraps = [], [], [], [], []
        keep_successes = self.learner.imitation.successes.capacity > 0  # else no per-env bookkeeping
        local_steps = 0
        episode_pairs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(E)]
        for _ in range(self.n_chunk_steps):
            o = self.agent.obs_tensor(obs)
            chunk, sample = actor.act(o)
            if keep_successes:
                for i in range(E):
                    episode_pairs[i].append((o[i], chunk[i]))
            obs, reward, terminated, truncated, info = self.envs.step(self.agent.to_env_actions(chunk))
            ended = terminated | truncated
            actor.episodes_ended(ended)
            steps, success = step_outcome(info, ended)
            self.tally.step(reward, ended, success)
            bootstrap = np.zeros(E)
            timed_out = truncated & ~terminated
            if timed_out.any():  # bootstrap a time-out with the value of the state it stopped in
                final = np.stack([info["final_obs"][i] for i in np.nonzero(timed_out)[0]])
                bootstrap[timed_out] = cfg.rl.gamma * self.algo.values(self.agent.obs_tensor(final)).cpu().numpy()
            for i in np.nonzero(ended)[0]:
                if keep_successes and success[i]:
                    pair_obs, pair_chunks = zip(*episode_pairs[i])
                    self.learner.imitation.add_success(torch.stack(pair_obs), torch.stack(pair_chunks))
                episode_pairs[i] = []
            local_steps += int(steps.sum())
            obs_t.append(o)
            samples.append(sample)
            rewards.append(torch.as_tensor(reward, dtype=torch.float32))
            bootstraps.append(torch.as_tensor(bootstrap, dtype=torch.float32))
            dones.append(torch.as_tensor(ended, dtype=torch.float32))
        self.recent = self.tally.take() or self.recent
        self.env_steps += int(distributed.sum_across_ranks(local_steps))  # all ranks agree on the budget
        dev = self.device
        return Rollout(torch.stack(obs_t), torch.stack(samples), torch.stack(rewards).to(dev),
                       torch.stack(dones).to(dev), self.agent.obs_tensor(obs), torch.stack(bootstraps).to(dev))

    def _collect_replay(self) -> ReplayDraw:
        """``rl.n_chunk_steps`` decisions per env into the replay buffer; episodes carry on across iterations.

        The first ``rl.random_env_steps`` env steps act uniformly at random (in the normalised action range), the
        usual start of an off-policy learner from scratch (RLPD, SAC); a run that starts from a pre-trained policy
        sets it to 0."""
        c = self.cfg
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self._reset_seeds())
            self.tally.restart()
        actor = self.algo.actor(explore=True)
        new = local_steps = 0
        for _ in range(self.n_chunk_steps):
            o = self.agent.obs_tensor(self.obs)
            if self.env_steps < c.rl.random_env_steps:
                chunk = torch.rand(o.shape[0], self.agent.spec["horizon"], self.agent.spec["act_dim"],
                                   device=o.device) * 2 - 1
            else:
                chunk, _ = actor.act(o)
            self.obs, reward, terminated, truncated, info = self.envs.step(self.agent.to_env_actions(chunk))
            ended = terminated | truncated
            actor.episodes_ended(ended)
            steps, success = step_outcome(info, ended)
            self.tally.step(reward, ended, success)
            next_obs = self.obs.copy()
            for i in np.nonzero(ended)[0]:  # the real next observation of an episode that ended, not the reset one
                next_obs[i] = info["final_obs"][i]
            self.replay.replay.add(Transitions(o, chunk, torch.as_tensor(reward, dtype=torch.float32),
                                               self.agent.obs_tensor(next_obs),
                                               torch.as_tensor(terminated, dtype=torch.float32)))
            local_steps += int(steps.sum())
            new += len(reward)
        self.recent = self.tally.take() or self.recent
        self.env_steps += int(distributed.sum_across_ranks(local_steps))
        self.replay.n_steps = max(1, round(c.rl.replay_ratio * new))
        return self.replay

    def evaluate(self) -> dict | None:
        """Deterministic evaluation on fixed seeds (rank 0 only: the ranks hold the same weights)."""
        if self.rank != 0:
            return None
        result = evaluate_algorithm(self.cfg, self.algo)
        self.last_eval = {"iteration": self.iteration, "env_steps": self.env_steps, **result.as_dict()}
        row = {"iteration": self.iteration, "env_steps": self.env_steps, "success_rate": result.success_rate,
               "ci_low": result.success_ci95[0], "ci_high": result.success_ci95[1],
               "mean_return": result.mean_return, "mean_length": result.mean_length,
               "heldout_il_loss": self.learner.imitation.heldout_loss()}
        self.log.write("evals", row, self.env_steps)
        return row

    def update(self, data: Rollout | ReplayDraw) -> None:
        c = self.cfg
        train_actor = self.iteration >= c.rl.critic_warmup_iters
        metrics, injections = self.learner.update(data, train_actor)
        # Rows are labelled like evaluations and checkpoints: by the iterations completed with this one, so that a
        # resume from checkpoint k keeps exactly the rows with iteration <= k (RunLog) and no row is duplicated.
        base = {"iteration": self.iteration + 1, "env_steps": self.env_steps,
                "rollout_success": self.recent.get("success", float("nan")),
                "rollout_return": self.recent.get("return", float("nan"))}
        self.log.write("metrics", {**base, **metrics}, self.env_steps)
        for record in injections:
            self.log.write("injections", {**base, **record}, self.env_steps)

    # ------------------------------------------------------------------------------------------------ loop

    def run(self) -> dict:
        """Train to the env-step budget; the log and the envs are closed however the run ends."""
        try:
            self._train_to_budget()
            return self._report() if self.rank == 0 else {"rank": self.rank, "env_steps": self.env_steps}
        finally:
            self.log.close()
            self.envs.close()

    def _train_to_budget(self) -> None:
        c = self.cfg
        budget = int(c.train.env_steps)
        if self.iteration == 0 and self.last_eval is None:
            self._pretrain_critics()
            self.evaluate()
            self.save()
        with progress_bar(disable=self.rank != 0) as bar:
            task = bar.add_task(f"{c.method} {c.task}", total=budget, completed=min(self.env_steps, budget),
                                status="")
            every = int(c.train.eval_every_steps)
            while self.env_steps < budget:
                before = self.env_steps
                self.update(self.collect())
                self.iteration += 1
                done = self.env_steps >= budget
                if self.env_steps // every > before // every or done:  # crossed an evaluation point
                    self.evaluate()
                if self.iteration % c.run.checkpoint_every == 0 or done:
                    self.save()
                bar.update(task, completed=min(self.env_steps, budget), status=self._status())

    def _pretrain_critics(self) -> None:
        """``rl.critic_pretrain_steps`` offline critic steps on the demos (IDQL), logged to critic_pretrain.csv."""
        steps = int(self.cfg.rl.get("critic_pretrain_steps", 0))
        if steps == 0:
            return
        for i, metrics in enumerate(self.algo.pretrain_critics(self.replay.demos, steps), start=1):
            if i % 100 == 0 or i == steps:
                self.log.write("critic_pretrain", {"iteration": 0, "step": i, **metrics}, 0)

    def _status(self) -> str:
        ev, metric = self.last_eval or {}, self.cfg.train.metric
        rollout = self.recent.get("return" if metric == "mean_return" else "success", float("nan"))
        return (f"rollout {metric.split('_')[-1]} {rollout:.2f} | "
                f"eval {ev.get(metric, float('nan')):.2f} @ {ev.get('env_steps', 0)}")

    def _report(self) -> dict:
        from inril_core.run_log import read_csv
        from inril_core.plots import plot_run

        evals = read_csv(self.run_dir / "evals.csv")
        report = {"task": self.cfg.task, "method": self.cfg.method, "seed": self.cfg.seed,
                  "env_steps": self.env_steps, "iterations": self.iteration,
                  "algo": self.cfg.algo, "metric": self.cfg.train.metric,
                  "pretrained_success": evals[0]["success_rate"], "final_success": evals[-1]["success_rate"],
                  "pretrained_return": evals[0]["mean_return"], "final_return": evals[-1]["mean_return"],
                  "evals": evals}
        (self.run_dir / "report.json").write_text(json.dumps(report, indent=2))
        plot_run(self.run_dir)
        return report


def train(cfg: DictConfig, resume: bool = False) -> dict:
    """One fine-tuning run; under torchrun, this rank's part of a data-parallel run (the process group is left
    when it ends)."""
    try:
        return FineTuneRun(cfg, resume).run()
    finally:
        distributed.shutdown()
