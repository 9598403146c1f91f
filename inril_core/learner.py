"""The learner: one RL iteration's updates with IN-RIL's IL injections, or the BC-regularised baseline.

It owns the schedule and the imitation updater and drives any RL algorithm (inril_core.rl.base) step by step:
  for each RL actor optimiser step the algorithm yields (its loss [+ lambda * BC loss]): if the schedule says so,
  inject IL.
An injection takes `il.steps_per_injection` imitation steps on demo batches with their own optimiser, on the
parameters the algorithm names for IL (the RL actor; with `separation: network` the residual policy's base). With
`separation: pcgrad` each IL gradient is projected off the most recent RL gradient when they conflict. Every
injection is logged with rho = cosine(IL gradient, RL gradient) (never measured by the paper; undefined, NaN, when
IL and RL train separate networks), whether the projection fired, and the IL loss on held-out demos.
"""

from __future__ import annotations

import math

import torch

from inril_core.agent import NonFiniteError
from inril_core.buffers import DemoSplit, SuccessBuffer, fixed_noise_loss, sample_union
from inril_core.interleave import InterleaveSchedule
from inril_core.rl.base import RLAlgorithm
from inril_core.separation import assign_flat_grad, flat_grad, pcgrad_project


class ImitationUpdater:
    """IL steps on the algorithm's IL parameters with their own Adam (own lr), optionally gradient-projected.

    IL data are the demos plus, when ``success_capacity`` > 0, the policy's own successful episodes
    (``add_success``; SuccessBuffer says why). The held-out loss is always measured on held-out demos only.
    """

    def __init__(self, algo: RLAlgorithm, demos: DemoSplit, holdout: DemoSplit, lr: float, batch_size: int,
                 separation: str, success_capacity: int = 0, prime_batches: int = 0) -> None:
        if prime_batches < 0:
            raise ValueError(f"il.prime_batches must be >= 0 (0 = a fresh Adam), got {prime_batches}")
        self.algo, self.demos, self.holdout = algo, demos, holdout
        self.batch_size, self.separation, self.prime_batches = batch_size, separation, prime_batches
        self.optimizer = torch.optim.Adam(algo.il_parameters(), lr=lr)
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
        return self.algo.il_loss(obs, chunks)

    def heldout_loss(self) -> float:
        """IL loss on held-out demos (the training demos when none are held out) at fixed noise draws."""
        split = self.holdout if len(self.holdout) else self.demos
        return fixed_noise_loss(self.algo.il_loss, split)

    def _backward(self) -> float:
        """One IL batch's loss, its gradient left in the IL parameters' .grad (averaged over DDP ranks)."""
        obs, chunks = self.sample(self.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.algo.synced("il", self.algo.il_parameters)(lambda: self.il_loss(obs, chunks))
        if not torch.isfinite(loss):
            raise NonFiniteError(f"IL loss is {loss.item()}: check the demos for NaN or lower il.lr")
        loss.backward()
        return loss.item()

    def _prime(self) -> None:
        """Adam's moments estimated from ``prime_batches`` IL gradients at the current weights (steps at lr 0),
        before the first real step.

        Why: a fresh Adam's first step is lr * sign(g) on every weight (after bias correction m / sqrt(v) = +-1),
        whatever the gradient's size and noise: on a converged diffusion base, a uniform nudge of every weight by
        il.lr. With primed moments the first step is lr * E[g] / sqrt(E[g^2]) per weight instead, small where the
        demo gradient is mostly noise. Measured on one_leg's UNet base (`inril bench il-steps`, docs/results/
        furniture-one_leg) it did not help: at il.lr 1e-4 one IL step leaves 0.05 success fresh and 0.00 primed
        (from 0.65), and only a smaller il.lr kept the base; hence off by default (``il.prime_batches: 0``)."""
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["lr"] = 0.0
        try:
            for _ in range(self.prime_batches):
                self._backward()
                self.optimizer.step()
        finally:
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr

    def inject(self, steps: int) -> dict:
        params = self.algo.il_parameters()
        reference = self.algo.last_actor_grad if self.algo.il_shares_actor else None
        if not self.optimizer.state and self.prime_batches:
            self._prime()
        rhos, fired, losses = [], 0, []
        for _ in range(steps):
            losses.append(self._backward())
            grad = flat_grad(params)
            if reference is not None:
                projection = pcgrad_project(grad, reference)
                rhos.append(projection.cosine)
                if self.separation == "pcgrad" and projection.projected:
                    grad, fired = projection.grad, fired + 1
            assign_flat_grad(params, grad)
            self.optimizer.step()
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
    def __init__(self, algo: RLAlgorithm, schedule: InterleaveSchedule, imitation: ImitationUpdater,
                 bc_lambda: float, bc_batch_size: int, il_steps_per_injection: int,
                 skip_rewardless: bool = True) -> None:
        """``skip_rewardless``: an iteration whose data has no policy signal (``RLAlgorithm.has_policy_signal``: an
        on-policy rollout without a reward) trains the critic only, and so injects no IL."""
        self.algo, self.schedule, self.imitation = algo, schedule, imitation
        self.bc_lambda, self.bc_batch_size = bc_lambda, bc_batch_size
        self.il_steps = il_steps_per_injection
        self.skip_rewardless = skip_rewardless

    def _bc_loss(self) -> torch.Tensor:
        """lambda * the algorithm's imitation loss on a demo batch: the BC-regularised baseline's extra term."""
        obs, chunks = self.imitation.sample(self.bc_batch_size)
        return self.bc_lambda * self.algo.bc_loss(obs, chunks)

    def update(self, data, train_actor: bool) -> tuple[dict, list[dict]]:
        """All RL optimiser steps of one iteration's ``data`` (a Rollout for on-policy algorithms, a ReplayDraw
        for off-policy ones). Returns (mean RL metrics, one record per IL injection)."""
        sums: dict[str, float] = {}
        n = 0
        injections = []
        aux = self._bc_loss if self.bc_lambda > 0 else None
        if self.skip_rewardless:
            train_actor = train_actor and self.algo.has_policy_signal(data)
        for metrics in self.algo.rl_steps(data, train_actor, aux):
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            n += 1
            if train_actor and self.schedule.on_rl_step():
                record = self.imitation.inject(self.il_steps)
                if not math.isnan(record["rho"]):  # NaN before the first RL gradient exists
                    self.schedule.observe_cosine(record["rho"])
                record.update(rl_step=self.schedule.rl_steps, m=self.schedule.current_m,
                              heldout_il_loss=self.imitation.heldout_loss())
                injections.append(record)
        means = {key: value / max(n, 1) for key, value in sums.items()}
        means["rl_steps"] = self.schedule.rl_steps
        means["actor_trained"] = float(train_actor)
        return means, injections

    def state_dict(self) -> dict:
        return {"algo": self.algo.state_dict(), "schedule": self.schedule.state_dict(),
                "imitation": self.imitation.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.algo.load_state_dict(state["algo"])
        self.schedule.load_state_dict(state["schedule"])
        self.imitation.load_state_dict(state["imitation"])
