"""Off-policy algorithms (IDQL, RLPD): replay, demo transitions, IQL's expectile loss, and tiny IN-RIL runs."""
import math

import numpy as np
import pytest
import torch

import toy_run
from inril_core.episodes.store import Episode
from inril_core.policies.normalizer import MinMaxNormalizer
from inril_core.replay import ReplayBuffer, ReplayDraw, Transitions, demo_transitions
from inril_core.rl.idql import expectile_loss
from inril_core.config import ConfigError
from inril_core.run_log import read_csv
from inril_core.training import FineTuneRun, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_run.pretrained_toy_root(tmp_path_factory, "offpolicy")


# ---------------------------------------------------------------------------------------------------- IQL


def test_expectile_loss_is_minimised_by_the_expectile():
    u = torch.tensor([0.0, 1.0, 2.0, 10.0])
    candidates = torch.linspace(0, 10, 2001)
    for tau in (0.5, 0.8, 0.95):
        losses = torch.stack([expectile_loss(u - c, tau) for c in candidates])
        best = candidates[losses.argmin()].item()
        # the tau-expectile e solves tau sum_{u>e}(u-e) = (1-tau) sum_{u<e}(e-u)
        above, below = (u - best).clamp(min=0).sum(), (best - u).clamp(min=0).sum()
        assert tau * above.item() == pytest.approx((1 - tau) * below.item(), abs=0.02)
    assert expectile_loss(u - 3.0, 0.5) == pytest.approx(((u - 3.0) ** 2).mean().item() / 2)


def test_a_higher_expectile_sits_higher():
    u = torch.randn(1000)
    grid = torch.linspace(-3, 3, 601)
    fit = [grid[torch.stack([expectile_loss(u - c, t) for c in grid]).argmin()].item() for t in (0.5, 0.7, 0.9)]
    assert fit[0] < fit[1] < fit[2] and fit[0] == pytest.approx(u.mean().item(), abs=0.01)


# ---------------------------------------------------------------------------------------------------- replay


def transitions(n: int, start: float = 0.0) -> Transitions:
    v = torch.arange(n, dtype=torch.float32) + start
    return Transitions(v[:, None].repeat(1, 3), v[:, None, None].repeat(1, 2, 1), v, v[:, None].repeat(1, 3) + 1,
                       torch.zeros(n))


def test_replay_keeps_the_newest_capacity_transitions():
    buffer = ReplayBuffer(5, obs_dim=3, horizon=2, act_dim=1, device="cpu")
    buffer.add(transitions(4))
    buffer.add(transitions(3, start=100))
    assert len(buffer) == 5 and sorted(buffer.data.rewards.tolist()) == [2.0, 3.0, 100.0, 101.0, 102.0]


def test_replay_state_round_trips():
    buffer = ReplayBuffer(8, 3, 2, 1, "cpu")
    buffer.add(transitions(6))
    copy = ReplayBuffer(8, 3, 2, 1, "cpu")
    copy.load_state_dict(buffer.state_dict())
    assert (copy.size, copy.next) == (6, 6) and torch.equal(copy.data.obs[:6], buffer.data.obs[:6])


def test_replay_draw_takes_the_demo_share_of_each_batch():
    buffer = ReplayBuffer(100, 3, 2, 1, "cpu")
    buffer.add(transitions(50))
    draw = ReplayDraw(buffer, 1, transitions(10, start=1000), demo_ratio=0.5)
    batch = draw.sample(64)
    assert len(batch) == 64 and int((batch.rewards >= 1000).sum()) == 32


def identity_norm(dim: int) -> MinMaxNormalizer:
    return MinMaxNormalizer().fit(np.array([[-1.0] * dim, [1.0] * dim]))


def test_demo_transitions_sum_rewards_over_the_executed_steps_and_end_terminal_episodes():
    ep = Episode(np.arange(6, dtype=np.float32)[:, None], np.zeros((6, 1)), np.array([0, 0, 0, 0, 0, 1.0]),
                 {"success": True})
    t = demo_transitions([ep], horizon=2, act_steps=2, obs_norm=identity_norm(1), act_norm=identity_norm(1))
    assert len(t) == 6
    assert t.rewards.tolist() == [0, 0, 0, 0, 1, 1] and t.dones.tolist() == [0, 0, 0, 0, 1, 1]
    assert t.next_obs[:4, 0].tolist() == [2, 3, 4, 5]


def test_demo_transitions_drop_steps_whose_next_observation_was_not_recorded():
    ep = Episode(np.arange(6, dtype=np.float32)[:, None], np.zeros((6, 1)), np.ones(6), {"terminated": False})
    t = demo_transitions([ep], horizon=2, act_steps=2, obs_norm=identity_norm(1), act_norm=identity_norm(1))
    assert len(t) == 4 and t.dones.sum() == 0 and t.rewards.tolist() == [2, 2, 2, 2]


# ---------------------------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("algo", ["idql", "rlpd"])
def test_a_tiny_in_ril_run_fills_the_replay_injects_and_resumes_with_it(root, algo):
    run_dir = root / f"run-{algo}"
    cfg = toy_run.toy_config(root, f"run.dir={run_dir}", "train.env_steps=64", "interleave.m=2", algo=algo)
    report = train(cfg)
    assert report["env_steps"] >= 64 and report["algo"] == algo
    injections = (run_dir / "injections.csv").read_text().splitlines()
    assert len(injections) > 1  # header + at least one injection
    resumed = FineTuneRun(toy_run.toy_config(root, f"run.dir={run_dir}", "train.env_steps=96", algo=algo),
                          resume=True)
    try:
        per_iteration = cfg.env.n_envs * cfg.rl.n_chunk_steps
        assert len(resumed.replay.replay) == min(report["iterations"] * per_iteration, cfg.rl.replay_capacity)
        before = len(resumed.replay.replay)
        resumed.update(resumed.collect())
        assert len(resumed.replay.replay) == min(before + per_iteration, cfg.rl.replay_capacity)
    finally:
        resumed.log.close()
        resumed.envs.close()


def test_rlpd_draws_half_of_each_batch_from_the_demos_and_idql_none(root):
    for algo, share in (("rlpd", 0.5), ("idql", 0.0)):
        run = FineTuneRun(toy_run.toy_config(root, f"run.dir={root / f'mix-{algo}'}", algo=algo), resume=False)
        try:
            assert run.replay.demo_ratio == share
            assert run.replay.demos is not None  # IDQL holds them only to pre-train its critics (share 0)
        finally:
            run.log.close()
            run.envs.close()


def test_idql_fits_its_critics_to_the_demos_before_the_first_evaluation(root):
    run_dir = root / "critic-pretrain"
    cfg = toy_run.toy_config(root, f"run.dir={run_dir}", "train.env_steps=8", "rl.critic_pretrain_steps=300",
                             algo="idql")
    train(cfg)
    rows = read_csv(run_dir / "critic_pretrain.csv")
    assert [r["step"] for r in rows] == [100, 200, 300] and all(r["iteration"] == 0 for r in rows)
    assert rows[-1]["q_loss"] < rows[0]["q_loss"]
    first_update = read_csv(run_dir / "metrics.csv")[0]
    assert first_update["q_loss"] < rows[0]["q_loss"]  # fine-tuning starts from the fitted critics


def test_critic_pretraining_is_refused_where_it_cannot_run(root):
    with pytest.raises(ConfigError, match="critic_pretrain_steps"):
        toy_run.toy_config(root, "demos.use=false", "method=rl-only", algo="idql")


# ---------------------------------------------------------------------------------------------------- acting


def _idql(root, *overrides: str):
    from inril_core.training import build_learner, load_pretrained_agent

    cfg = toy_run.toy_config(root, *overrides, algo="idql")
    return build_learner(cfg, load_pretrained_agent(cfg.train.pretrained, cfg.task), "cpu").algo


@pytest.mark.parametrize("twin_gap, td_rms, pick_margin, keeps_mode", [
    (0.0, 1e-9, 1.0, False),    # twins agree by more than their (tiny) TD error: argmax of Q
    (1e6, 1e-9, 1.0, True),     # twins far apart, as fresh critics are: the mode
    (0.0, "above", 1.0, True),  # twins agree by less than their TD error: the mode
    (0.0, 0.0, 1.0, True),      # critics that have taken no step: the mode
    (0.0, 0.0, 0.0, False),     # pick_margin 0 (runs made before it): the plain twin gate
])
def test_idql_greedy_acting_replaces_the_mode_only_where_both_twins_prefer_another_chunk_by_their_td_error(
        root, twin_gap, td_rms, pick_margin, keeps_mode):
    """The best candidate's worse twin must beat the mode's better twin by ``rl.pick_margin`` RMS TD errors, or the
    policy's deterministic chunk is acted."""
    algo = _idql(root, "rl.n_candidates=6", f"rl.pick_margin={pick_margin}")
    drawn = []
    sample = algo.policy.sample_ddim
    algo.policy.sample_ddim = lambda obs, **kw: drawn.append(sample(obs, **kw)) or drawn[-1]
    algo.target_q.forward = lambda obs, chunk: (chunk.sum(dim=(1, 2)), chunk.sum(dim=(1, 2)) + twin_gap)
    obs = torch.rand(3, 4) * 2 - 1
    act = lambda: algo.actor(explore=False).act(obs)[0]  # noqa: E731 (evaluation draws from a fixed seed)
    act()
    mode, sampled = drawn[:2]  # the policy's deterministic chunk first, then 5 from random x_T
    assert torch.equal(mode, sample(obs, eta=0.0)) and sampled.shape[0] == 5 * 3
    candidates = torch.cat([mode, sampled]).view(6, 3, *mode.shape[1:])  # candidate-major
    q = candidates.sum(dim=(2, 3))
    best = q.argmax(0)
    assert (best != 0).any()  # some observation has a sampled chunk rated above the mode
    largest_gap = (q.max(0).values - q[0]).max().item()
    algo.td_rms.value.fill_(largest_gap * 1.01 if td_rms == "above" else td_rms)
    assert torch.equal(act(), candidates[torch.zeros_like(best) if keeps_mode else best, torch.arange(3)])


def test_idql_tracks_its_twins_rms_td_error_and_checkpoints_it(root):
    """The pick margin's unit: the first critic step sets it, later ones move it at the Polyak rate ``rl.tau``;
    checkpoints carry it, and one written before it existed loads with 0 (with its config, which has no
    ``rl.pick_margin``, that is the plain gate it acted with)."""
    algo = _idql(root, "rl.tau=0.25")
    torch.manual_seed(0)
    spec = algo.agent.spec

    def batch() -> Transitions:
        obs = torch.rand(64, spec["obs_dim"])
        return Transitions(obs, torch.rand(64, spec["horizon"], spec["act_dim"]), torch.rand(64), obs, torch.zeros(64))

    first = algo.critic_step(batch())["q_loss"]
    assert algo.td_rms.value.item() == pytest.approx((first / 2) ** 0.5, rel=1e-5)
    second = algo.critic_step(batch())["q_loss"]
    assert algo.td_rms.value.item() == pytest.approx(0.75 * (first / 2) ** 0.5 + 0.25 * (second / 2) ** 0.5,
                                                     rel=1e-5)
    saved = algo.tensors()
    fresh = _idql(root)
    fresh.load_tensors(saved)
    assert fresh.td_rms.value.item() == algo.td_rms.value.item()
    fresh.load_tensors({k: v for k, v in saved.items() if not k.startswith("idql.td_rms.")})
    assert fresh.td_rms.value.item() == 0.0


def _two_kinds_of_chunks(algo, n: int = 64) -> Transitions:
    """n transitions from random states, half with chunk +0.5 and half -0.5; the critics are replaced by Q = the
    chunk's sum and V = 0, so the +0.5 chunks have the higher advantage."""
    spec = algo.agent.spec
    obs = torch.rand(n, spec["obs_dim"]) * 2 - 1
    chunks = torch.full((n, spec["horizon"], spec["act_dim"]), 0.5)
    chunks[n // 2:] *= -1
    algo.target_q.forward = lambda o, chunk: (chunk.sum(dim=(1, 2)), chunk.sum(dim=(1, 2)) + 1.0)
    algo.v.forward = lambda o: torch.zeros(len(o), 1)
    return Transitions(obs, chunks, torch.zeros(n), obs, torch.zeros(n))


@pytest.mark.parametrize("beta, max_weight", [(1.0, 20.0), (5.0, 20.0)])
def test_idql_advantage_weights_are_standardised_clipped_and_mean_one(root, beta, max_weight):
    """exp(beta z) of the batch-standardised advantage, clipped at rl.advantage_max_weight, scaled to mean 1;
    the plain (DPPO) actor weighs nothing."""
    assert _idql(root).actor_weights(_two_kinds_of_chunks(_idql(root))) is None
    algo = _idql(root, "rl.actor_weighting=advantage", f"rl.advantage_beta={beta}",
                 f"rl.advantage_max_weight={max_weight}")
    b = _two_kinds_of_chunks(algo)
    w = algo.actor_weights(b)
    assert w.mean().item() == pytest.approx(1.0, rel=1e-6)
    high, low = w[:32], w[32:]
    assert torch.allclose(high, high[0]) and torch.allclose(low, low[0])
    z = 1.0 / (64 / 63) ** 0.5  # the two advantages standardised (torch.std is the unbiased one)
    ratio = min(math.exp(beta * z), max_weight) / math.exp(-beta * z)
    assert (high[0] / low[0]).item() == pytest.approx(ratio, rel=1e-4)


def test_idql_advantage_weighted_actor_moves_towards_the_better_chunks(root):
    """Trained on a replay where half the chunks are better, the weighted actor's samples lean to them; the plain
    one's stay between the two (the drift the weighting is for, docs/algorithms.md)."""
    means = {}
    for weighting in ("denoise", "advantage"):
        algo = _idql(root, f"rl.actor_weighting={weighting}", "rl.actor_lr=3e-3", "rl.advantage_beta=2.0")
        b = _two_kinds_of_chunks(algo)
        torch.manual_seed(0)
        for _ in range(300):
            algo.actor_step(b, None)
        means[weighting] = algo.policy.sample_ddim(b.obs.repeat(4, 1), eta=0.0, from_noise=True).mean().item()
    assert means["advantage"] > 0.3 > 0.15 > abs(means["denoise"]), means


def test_rlpd_log_prob_is_the_change_of_variables_of_the_tanh_gaussian():
    from inril_core.rl.rlpd import SquashedGaussianActor

    torch.manual_seed(0)
    pi = SquashedGaussianActor(obs_dim=3, horizon=2, act_dim=2, hidden=[16])
    obs = torch.randn(5, 3)
    torch.manual_seed(1)
    chunk, logp = pi.sample(obs)
    mean, std = pi._dist(obs)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std), [torch.distributions.TanhTransform(cache_size=1)])
    flat = chunk.flatten(1).clamp(-1 + 1e-6, 1 - 1e-6)
    assert torch.allclose(logp, reference.log_prob(flat).sum(-1), atol=1e-3)
