"""IDQL (Hansen-Estruch et al. 2023) as DPPO's repository fine-tunes it: IQL critics and a diffusion actor.

Critics (Kostrikov et al.'s IQL, on normalised observations and whole action chunks):
    V:  min over the expectile loss  L_V = E[ |tau - 1(u < 0)| u^2 ],  u = min(Q1', Q2')(s, a) - V(s)
        (tau = ``rl.expectile``, Q' the Polyak-averaged target twins): V tracks an upper expectile of Q, an
        in-sample estimate of the best action's value that never queries Q off the data.
    Q:  twin TD regression  L_Q = sum_i E[(Q_i(s, a) - (r + gamma (1 - done) V(s')))^2]
The actor is the diffusion policy, trained by the denoising loss on replay chunks: plain (DPPO's IDQL) or weighted
by the critics' advantage (``rl.actor_weighting``, ``actor_weights``). The RL signal also enters through acting:
``n_candidates`` chunks are sampled per observation and one is picked by the critics, at random with weight tau
where Q - V > 0 and 1 - tau elsewhere when exploring (the implicit policy), by argmax Q when evaluating, where the
policy's mode is kept unless the critics prefer another chunk by more than their own running TD error (``_pick``).

IN-RIL injects demo denoising steps into the same actor (paper-notes §3); its RL gradient, the reference of rho
and PCGrad, is the replay denoising gradient.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
from torch import nn

from inril_core.agent import DiffusionAgent, NonFiniteError
from inril_core.distributed import mean_across_ranks
from inril_core.replay import ReplayDraw, Transitions
from inril_core.rl.base import Actor, AuxLoss, RLAlgorithm, mlp, polyak


def expectile_loss(u: torch.Tensor, tau: float) -> torch.Tensor:
    """E[ |tau - 1(u < 0)| u^2 ]: an asymmetric square loss whose minimiser is the tau-expectile."""
    return (torch.where(u > 0, tau, 1.0 - tau) * u.pow(2)).mean()


class TwinQ(nn.Module):
    """Two Q(s, chunk) heads; acting and V's target use their minimum (clipped double Q)."""

    def __init__(self, in_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.q1, self.q2 = mlp([in_dim, *hidden, 1]), mlp([in_dim, *hidden, 1])

    def forward(self, obs: torch.Tensor, chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, chunk.flatten(1)], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class RunningRMS(nn.Module):
    """An exponential moving average of a root-mean-square, kept as a buffer so checkpoints carry it; 0 until the
    first update, which it takes whole (no warm-up from 0)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.register_buffer("value", torch.zeros(()))

    def update(self, rms: float) -> None:
        old = self.value.item()
        self.value.fill_(rms if old == 0.0 else (1.0 - self.rate) * old + self.rate * rms)


class IDQL(RLAlgorithm):
    name = "idql"
    on_policy = False

    def __init__(self, agent: DiffusionAgent, cfg, separation: str = "pcgrad", il_k_max: int | None = None) -> None:
        super().__init__(agent, cfg, separation, il_k_max)
        spec, device = agent.spec, agent.device
        in_dim = spec["obs_dim"] + spec["horizon"] * spec["act_dim"]
        self.q = TwinQ(in_dim, list(cfg.critic_hidden)).to(device)
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp([spec["obs_dim"], *cfg.critic_hidden, 1]).to(device)
        self.td_rms = RunningRMS(cfg.tau).to(device)  # the twins' TD error, at the target twins' Polyak rate
        self.actor_opt = torch.optim.Adam(self.actor_parameters(), lr=cfg.actor_lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.critic_lr)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=cfg.critic_lr)

    # ------------------------------------------------------------------------------------------------ acting

    def actor(self, explore: bool) -> Actor:
        return Actor(lambda obs: (self.select(obs, explore), None))

    @torch.no_grad()
    def select(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """``n_candidates`` DDPM chunks per observation, one picked by the critics (see the module docstring).
        Evaluation draws its candidates from a fixed seed, so it neither depends on nor disturbs training's RNG."""
        if not explore:
            with torch.random.fork_rng(devices=[obs.device] if obs.is_cuda else []):
                torch.manual_seed(0)
                return self._pick(obs, greedy=True)
        return self._pick(obs, greedy=False)

    def _pick(self, obs: torch.Tensor, greedy: bool) -> torch.Tensor:
        """Exploring: DDPM candidates (std floored at ``rl.min_sampling_std``), drawn by expectile weight. Greedy:
        the policy's own deterministic chunk (DDIM from x_T = 0) and N - 1 DDIM eta=0 chunks from random x_T
        (sharper than DDPM, as DPPO's IDQL evaluates with less noise), argmax Q. The deterministic chunk is always
        a candidate because random-x_T samples of a policy pre-trained on a few demos are much worse than its mode
        (Lift, 6 demos: 0.10 vs 0.46 success), and it stays the pick unless both target twins agree that another
        chunk is better: the best chunk's worse twin must beat the mode's better twin. A plain argmax of min(Q1, Q2)
        let critics that have seen no data yet pick noise over the mode (Hopper, fresh critics, 10 episodes: argmax
        551 vs mode 848 return; the gate 848), while with trained critics the gate still replaces the mode on 90% of
        steps (782 argmax, 761 gate, 760 mode). On a sparse task the twins also agree on noise, so the gap must
        exceed ``rl.pick_margin`` times the twins' running RMS TD error (``_pick_margin``): a Q difference smaller
        than the critics' own error is no evidence. Transport's five final IN-RIL policies (reward in {0, 1}, RMS TD
        0.10-0.25) replaced the mode on 58% of decisions (seed 0) and succeeded 0.02 on average; with the margin
        they replace it on 1-5% and succeed 0.15 (they started at 0.18) (docs/algorithms.md)."""
        B, N = obs.shape[0], self.cfg.n_candidates
        repeated = obs.repeat(N, 1)                                            # (N * B, obs_dim), candidate-major
        if greedy:
            chunks = self.policy.sample_ddim(obs, eta=0.0)
            if N > 1:
                chunks = torch.cat([chunks, self.policy.sample_ddim(obs.repeat(N - 1, 1), eta=0.0, from_noise=True)])
        else:
            chunks = self.policy.sample_ddpm(repeated, min_std=self.cfg.min_sampling_std)
        q1, q2 = (q.view(N, B) for q in self.target_q(repeated, chunks))
        q = torch.min(q1, q2)
        if greedy:
            best = q.argmax(0)
            beats_mode = q.gather(0, best[None])[0] - torch.max(q1[0], q2[0]) > self._pick_margin()
            pick = torch.where(beats_mode, best, torch.zeros_like(best))
        else:
            advantage = q - self.v(repeated).view(N, B)
            weights = torch.where(advantage > 0, self.cfg.expectile, 1.0 - self.cfg.expectile)
            pick = torch.multinomial(weights.T, 1).squeeze(-1)
        return chunks.view(N, B, *chunks.shape[1:])[pick, torch.arange(B, device=obs.device)]

    def _pick_margin(self) -> float:
        """``rl.pick_margin`` RMS TD errors; infinite (the mode) while the critics have taken no step, as no error
        measured means no evidence either. A run made before the margin existed has neither: the plain gate."""
        margin = self.cfg.get("pick_margin", 0.0)
        if margin == 0.0:
            return 0.0
        td_rms = self.td_rms.value.item()
        return margin * td_rms if td_rms > 0.0 else float("inf")

    # ------------------------------------------------------------------------------------------------ learning

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.policy.denoiser.parameters() if p.requires_grad]

    def critic_step(self, b: Transitions) -> dict:
        """One V (expectile) and one Q (TD to V(s')) step, then the target twins' Polyak average. The two losses
        touch disjoint parameters, so one backward of their sum gives each its own gradient."""
        parts: dict = {}

        def losses() -> torch.Tensor:
            with torch.no_grad():
                target_q = torch.min(*self.target_q(b.obs, b.chunks))
                next_v = self.v(b.next_obs).squeeze(-1)
                td_target = self.cfg.reward_scale * b.rewards + self.cfg.gamma * (1.0 - b.dones) * next_v
            parts["v"] = expectile_loss(target_q - self.v(b.obs).squeeze(-1), self.cfg.expectile)
            q1, q2 = self.q(b.obs, b.chunks)
            parts["q"], parts["q_mean"] = (q1 - td_target).pow(2).mean() + (q2 - td_target).pow(2).mean(), q1.mean()
            return parts["v"] + parts["q"]

        total = self.synced("critic", lambda: [*self.v.parameters(), *self.q.parameters()])(losses)
        if not torch.isfinite(total):
            raise NonFiniteError(f"IDQL critic loss is not finite (V {parts['v'].item()}, Q {parts['q'].item()}): "
                                 "lower rl.critic_lr or rl.reward_scale; last checkpoint kept")
        self.v_opt.zero_grad(set_to_none=True)
        self.q_opt.zero_grad(set_to_none=True)
        total.backward()
        for opt, net in ((self.v_opt, self.v), (self.q_opt, self.q)):
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.max_grad_norm)
            opt.step()
        polyak(self.target_q, self.q, self.cfg.tau)
        self.td_rms.update(math.sqrt(mean_across_ranks(parts["q"].item() / 2)))  # one margin on every rank
        return {"v_loss": parts["v"].item(), "q_loss": parts["q"].item(), "q_mean": parts["q_mean"].item()}

    def pretrain_critics(self, demos: Transitions, steps: int) -> Iterator[dict]:
        """IQL on the demo transitions alone, before fine-tuning starts (IDQL is offline-to-online): acting ranks
        candidates by Q, and critics that have seen no data rank them arbitrarily. IQL's in-sample targets never
        query Q off the demos; how well the result ranks the policy's own candidates depends on the demos
        (config/algos/idql.yaml gives what was measured)."""
        for _ in range(steps):
            idx = torch.randint(0, len(demos), (self.cfg.batch_size,), device=demos.obs.device)
            yield self.critic_step(demos.index(idx))

    def actor_weights(self, b: Transitions) -> torch.Tensor | None:
        """Per-chunk weights of the actor's denoising loss: None (every replay chunk alike, DPPO's IDQL) unless
        ``rl.actor_weighting`` is ``advantage``: w = exp(beta z) clipped at ``rl.advantage_max_weight`` and scaled
        to mean 1, z the batch-standardised advantage min(Q1', Q2')(s, a) - V(s) (advantage-weighted regression,
        as IQL extracts its policy). Plain denoising imitates whatever exploration put in the replay, so a policy
        whose replay is mostly failures drifts towards them (Lift: modes 0.08-0.44 at the end); weighting
        pulls it towards the chunks the critics rank above their state's value. Standardising makes beta free of
        the reward's scale, and the mean-1 scaling keeps rl.actor_lr's meaning. Measured on Lift (beta 1, 3): within
        the noise of plain denoising, so it is not the default (docs/results/ablations)."""
        if self.cfg.get("actor_weighting", "denoise") == "denoise":
            return None
        with torch.no_grad():
            advantage = torch.min(*self.target_q(b.obs, b.chunks)) - self.v(b.obs).squeeze(-1)
            z = (advantage - advantage.mean()) / (advantage.std() + 1e-6)
            w = torch.exp(self.cfg.advantage_beta * z).clamp(max=self.cfg.advantage_max_weight)
            return w / w.mean()

    def actor_step(self, b: Transitions, aux_actor_loss: AuxLoss | None) -> dict:
        """The diffusion actor's denoising loss on replay chunks, weighted by ``actor_weights`` (+ BC-reg)."""
        parts: dict = {}
        weights = self.actor_weights(b)

        def loss() -> torch.Tensor:
            parts["actor"] = self.policy.denoising_loss(b.obs, b.chunks, weights=weights)
            return parts["actor"] + (aux_actor_loss() if aux_actor_loss is not None else 0.0)

        total = self.synced("actor", self.actor_parameters)(loss)
        if not torch.isfinite(total):
            raise NonFiniteError(f"IDQL actor loss is {total.item()}: lower rl.actor_lr; last checkpoint kept")
        self.actor_opt.zero_grad(set_to_none=True)
        total.backward()
        self.record_actor_grad()
        norm = nn.utils.clip_grad_norm_(self.actor_parameters(), self.cfg.max_grad_norm).item()
        self.actor_opt.step()
        return {"actor_loss": parts["actor"].item(), "actor_grad_norm": norm}

    def rl_steps(self, data: ReplayDraw, train_actor: bool, aux_actor_loss: AuxLoss | None = None) -> Iterator[dict]:
        for _ in range(data.n_steps):
            b = data.sample(self.cfg.batch_size)
            metrics = self.critic_step(b)
            if train_actor:
                metrics.update(self.actor_step(b, aux_actor_loss))
            yield metrics

    # ------------------------------------------------------------------------------------------------ imitation

    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        return self.policy.denoising_loss(obs, chunks, k_max=self.il_k_max)

    # ------------------------------------------------------------------------------------------------ state

    def _modules(self) -> dict[str, nn.Module]:
        return {"q": self.q, "target_q": self.target_q, "v": self.v, "td_rms": self.td_rms}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """A checkpoint from before the pick margin has no TD error: it loads with 0, and its config has no
        ``rl.pick_margin``, so it acts with the plain gate it was made with."""
        key = f"{self.name}.td_rms.value"
        super().load_tensors(tensors if key in tensors else {**tensors, key: torch.zeros(())})

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "q_opt": self.q_opt, "v_opt": self.v_opt}
