"""The learner: one RL iteration's updates with IN-RIL's IL injections, or the BC-regularised baseline.

It owns the schedule and the imitation updater and drives the RL algorithm minibatch by minibatch:
  for each RL optimiser step: algo.update(minibatch [+ lambda * BC loss]); if the schedule says so, inject IL.
An injection takes `il.steps_per_injection` denoising-loss steps on demo batches with their own optimiser; with
`separation: pcgrad` each IL gradient is projected off the most recent RL gradient when they conflict. Every
injection is logged with rho = cosine(IL gradient, RL gradient) (never measured by the paper), whether the
projection fired, and the IL loss on held-out demos.
"""

from __future__ import annotations

import math

import torch

from inril_core.agent import NonFiniteError
from inril_core.buffers import DemoSplit, SuccessBuffer, fixed_noise_loss, sample_union
from inril_core.interleave import InterleaveSchedule
from inril_core.rl.dppo import DPPO, Rollout
from inril_core.separation import assign_flat_grad, flat_grad, pcgrad_project


class ImitationUpdater:
    """IL steps on the fine-tuned denoiser with their own Adam (own lr), optionally gradient-projected.

    IL data are the demos plus, when ``success_capacity`` > 0, the policy's own successful episodes
    (``add_success``; SuccessBuffer says why). The held-out loss is always measured on held-out demos only.
    """

    def __init__(self, algo: DPPO, demos: DemoSplit, holdout: DemoSplit, lr: float, batch_size: int,
                 separation: str, k_max: int | None, success_capacity: int = 0) -> None:
        self.algo, self.demos, self.holdout = algo, demos, holdout
        self.batch_size, self.separation, self.k_max = batch_size, separation, k_max
        self.optimizer = torch.optim.Adam(algo.actor_parameters(), lr=lr)
        spec = algo.agent.spec
        self.successes = SuccessBuffer(spec["obs_dim"], spec["horizon"], spec["act_dim"], success_capacity,
                                       demos.obs.device)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """An IL batch: demos and successes alike."""
        return sample_union(self.demos, self.successes, batch_size)

    def add_success(self, obs: torch.Tensor, chunks: torch.Tensor) -> None:
        """One successful on-policy episode's (normalised obs, chunk) pairs join the IL data (if enabled)."""
        self.successes.add(obs, chunks)

    def il_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        return self.algo.policy.denoising_loss(obs, chunks, k_max=self.k_max)

    def heldout_loss(self) -> float:
        """IL loss on held-out demos (the training demos when none are held out) at fixed noise draws."""
        split = self.holdout if len(self.holdout) else self.demos
        return fixed_noise_loss(self.algo.policy, split, self.k_max)

    def inject(self, steps: int) -> dict:
        params = self.algo.actor_parameters()
        reference = self.algo.last_actor_grad
        rhos, fired, losses = [], 0, []
        for _ in range(steps):
            obs, chunks = self.sample(self.batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.il_loss(obs, chunks)
            if not torch.isfinite(loss):
                raise NonFiniteError(f"IL loss is {loss.item()}: check the demos for NaN or lower il.lr")
            loss.backward()
            grad = flat_grad(params)
            if reference is not None:
                projection = pcgrad_project(grad, reference)
                rhos.append(projection.cosine)
                if self.separation == "pcgrad" and projection.projected:
                    grad, fired = projection.grad, fired + 1
            assign_flat_grad(params, grad)
            self.optimizer.step()
            losses.append(loss.item())
        return {
            "rho": sum(rhos) / len(rhos) if rhos else float("nan"),
            "projected": fired / steps,
            "il_loss": sum(losses) / len(losses),
        }

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "successes": self.successes.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if "successes" in state:  # checkpoints written before the success buffer existed have none
            self.successes.load_state_dict(state["successes"])


class Learner:
    def __init__(self, algo: DPPO, schedule: InterleaveSchedule, imitation: ImitationUpdater,
                 bc_lambda: float, bc_batch_size: int, il_steps_per_injection: int) -> None:
        self.algo, self.schedule, self.imitation = algo, schedule, imitation
        self.bc_lambda, self.bc_batch_size = bc_lambda, bc_batch_size
        self.il_steps = il_steps_per_injection

    def _bc_loss(self) -> torch.Tensor | None:
        if self.bc_lambda <= 0:
            return None
        obs, chunks = self.imitation.sample(self.bc_batch_size)
        return self.bc_lambda * self.imitation.il_loss(obs, chunks)

    def update(self, rollout: Rollout, epochs: int, train_actor: bool, target_kl: float) -> tuple[dict, list[dict]]:
        """All RL minibatch steps of one iteration. Returns (mean RL metrics, one record per IL injection)."""
        batch = self.algo.prepare(rollout)
        sums: dict[str, float] = {}
        n = 0
        injections = []
        for _ in range(epochs):
            kls = []
            for minibatch in self.algo.minibatches(batch):
                metrics = self.algo.update(minibatch, self._bc_loss() if train_actor else None, train_actor)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                n += 1
                kls.append(metrics["approx_kl"])
                if train_actor and self.schedule.on_rl_step():
                    record = self.imitation.inject(self.il_steps)
                    if not math.isnan(record["rho"]):  # NaN before the first RL gradient exists
                        self.schedule.observe_cosine(record["rho"])
                    record.update(rl_step=self.schedule.rl_steps, m=self.schedule.current_m,
                                  heldout_il_loss=self.imitation.heldout_loss())
                    injections.append(record)
            if train_actor and kls and sum(kls) / len(kls) > target_kl:
                break  # the policy moved far enough this iteration; more epochs would overshoot
        means = {key: value / max(n, 1) for key, value in sums.items()}
        means["rl_steps"] = self.schedule.rl_steps
        return means, injections

    def state_dict(self) -> dict:
        return {"algo": self.algo.state_dict(), "schedule": self.schedule.state_dict(),
                "imitation": self.imitation.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.algo.load_state_dict(state["algo"])
        self.schedule.load_state_dict(state["schedule"])
        self.imitation.load_state_dict(state["imitation"])
