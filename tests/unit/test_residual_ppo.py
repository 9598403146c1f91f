"""Residual PPO: the per-step residual over the chunked base, and IN-RIL's network separation routing gradients."""
import numpy as np
import pytest
import torch

import toy_run
from inril_core.rl.base import Rollout
from inril_core.training import FineTuneRun, build_learner, load_pretrained_agent, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_run.pretrained_toy_root(tmp_path_factory, "residual")


def learner(root, *overrides):
    cfg = toy_run.toy_config(root, *overrides, algo="residual_ppo")
    agent = load_pretrained_agent(cfg.train.pretrained, cfg.task)
    return build_learner(cfg, agent, "cpu")


def rollout(algo, steps: int = 6, n_envs: int = 2, seed: int = 0):
    """Real residual decisions on random observations, as FineTuneRun would stack them."""
    g = torch.Generator().manual_seed(seed)
    actor = algo.actor(explore=True)
    obs = torch.rand(steps, n_envs, algo.agent.spec["obs_dim"], generator=g) * 2 - 1
    samples = torch.stack([actor.act(o)[1] for o in obs])
    rewards = (torch.rand(steps, n_envs, generator=g) < 0.3).float()
    dones = torch.zeros(steps, n_envs)
    return Rollout(obs, samples, rewards, dones, obs[-1], torch.zeros_like(rewards))


def snapshot(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return any(not torch.equal(a, b) for a, b in zip(before, params))


def test_the_untrained_residual_acts_exactly_as_the_base(root):
    algo = learner(root).algo
    obs = torch.rand(5, 4) * 2 - 1
    action, record = algo.actor(explore=False).act(obs)
    assert torch.equal(action[:, 0], algo.base_chunk(obs)[:, 0].clamp(-1, 1))
    assert torch.equal(record[:, 1], torch.zeros(5, 2))  # the residual's mean starts at zero


def test_the_base_replans_every_act_steps_and_when_an_episode_ends(root):
    algo = learner(root).algo
    planned = []
    original = algo.base_chunk
    algo.base_chunk = lambda obs: planned.append(len(obs)) or original(obs)
    actor = algo.actor(explore=True)
    obs = torch.zeros(3, 4)
    for step in range(algo.agent.act_steps + 1):
        actor.act(obs)
        if step == 1:
            actor.episodes_ended(np.array([False, True, False]))
    # all three plan at step 0; env 1 again at step 2 (its episode ended at step 1); envs 0 and 2 once their chunk
    # of act_steps steps is used up, while env 1 is still inside its new chunk
    assert planned == [3, 1, 2]


def test_network_separation_rl_steps_never_touch_the_base(root):
    lrn = learner(root, "method=rl-only", "separation=network")
    algo = lrn.algo
    base, residual = snapshot(algo.base.parameters()), snapshot(algo.actor_parameters())
    list(algo.rl_steps(rollout(algo), train_actor=True))
    assert not changed(base, algo.base.parameters()) and changed(residual, algo.actor_parameters())
    assert all(p.grad is None or not p.grad.any() for p in algo.base.parameters())


def test_network_separation_il_injections_never_touch_the_residual(root):
    lrn = learner(root, "separation=network")
    algo = lrn.algo
    base, residual = snapshot(algo.base.parameters()), snapshot(algo.residual.parameters())
    record = lrn.imitation.inject(2)
    assert changed(base, algo.base.parameters()) and not changed(residual, algo.residual.parameters())
    assert np.isnan(record["rho"])  # IL and RL train different networks: no shared gradient to compare


def weight_moves(before, params) -> torch.Tensor:
    return torch.cat([(p.detach() - b).abs().flatten() for b, p in zip(before, params)])


def test_il_adam_is_primed_so_its_first_step_on_the_base_is_not_a_sign_step(root):
    """A fresh Adam moves every base weight by exactly il.lr on its first step (the step that wrecked one_leg's base);
    primed moments (lr-0 steps on demo gradients first) make the first step follow the gradient's signal-to-noise."""
    fresh, primed = (learner(root, "separation=network", f"il.prime_batches={k}") for k in (0, 16))
    lr = fresh.imitation.optimizer.param_groups[0]["lr"]
    moves = {}
    for name, lrn in (("fresh", fresh), ("primed", primed)):
        params = list(lrn.algo.base.parameters())
        before = snapshot(params)
        lrn.imitation.inject(1)
        moves[name] = weight_moves(before, params)
    assert moves["fresh"].median().item() == pytest.approx(lr, rel=1e-2)
    assert moves["primed"].median().item() < 0.5 * lr
    assert primed.imitation.optimizer.param_groups[0]["lr"] == lr  # the lr-0 priming steps leave the lr as it was
    steps = {int(s["step"]) for s in primed.imitation.optimizer.state.values()}
    assert steps == {17}  # 16 priming steps + the real one; priming happens once, before the first injection
    primed.imitation.inject(1)
    assert {int(s["step"]) for s in primed.imitation.optimizer.state.values()} == {18}


def test_a_negative_prime_batches_is_refused(root):
    with pytest.raises(ValueError, match="il.prime_batches"):
        learner(root, "il.prime_batches=-1")


def test_without_network_separation_il_trains_the_residual_and_the_base_stays_frozen(root):
    lrn = learner(root, "separation=pcgrad", "interleave.m=1")
    algo = lrn.algo
    base, residual = snapshot(algo.base.parameters()), snapshot(algo.actor_parameters())
    _, injections = lrn.update(rollout(algo), train_actor=True)
    assert injections and all(not np.isnan(r["rho"]) for r in injections)
    assert not changed(base, algo.base.parameters()) and changed(residual, algo.actor_parameters())


def test_residual_il_loss_pulls_the_combined_action_to_the_demo_action(root):
    lrn = learner(root, "separation=none")
    obs, chunks = lrn.imitation.sample(64)
    before = lrn.algo.bc_loss(obs, chunks).item()
    for _ in range(30):
        lrn.imitation.inject(1)
    assert lrn.algo.bc_loss(obs, chunks).item() < before


def test_a_tiny_in_ril_run_trains_checkpoints_and_resumes(root):
    cfg = toy_run.toy_config(root, f"run.dir={root / 'run-residual'}", "train.env_steps=80", algo="residual_ppo")
    report = train(cfg)
    assert report["env_steps"] >= 80 and report["algo"] == "residual_ppo"
    resumed = FineTuneRun(toy_run.toy_config(root, f"run.dir={root / 'run-residual'}", "train.env_steps=120",
                                             algo="residual_ppo"), resume=True)
    try:
        assert resumed.iteration == report["iterations"]
        resumed.update(resumed.collect())
    finally:
        resumed.log.close()
        resumed.envs.close()


def test_the_action_is_the_base_plus_the_scaled_residual_clipped_to_the_action_range(root):
    algo = learner(root).algo
    base = torch.tensor([[0.5, -0.95]])
    residual = torch.tensor([[2.0, -3.0]])
    scale = algo.cfg.action_scale
    assert torch.allclose(algo.combine(base, residual), torch.tensor([[0.5 + 2.0 * scale, -1.0]]))
