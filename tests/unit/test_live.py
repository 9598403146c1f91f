"""Live learning from streamed transitions: episode assembly, rewards, updates, versioned checkpoints (toy sizes).

Records are made the way the policy server makes them: a real tiny DiffusionAgent explores with DPPO.explore on
synthetic observations, so chains have the shapes the learner trains on.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import toy_run
from inril_core.agent import NonFiniteError
from inril_core.checkpoint import save_checkpoint
from inril_core.live import EpisodeAssembler, EpisodeRecordError, LiveLearner, episodes_to_rollout
from inril_core.transitions import Transition

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Toy demos and an (untrained, normaliser-fitted) initial policy in <root>/pre."""
    root = tmp_path_factory.mktemp("live")
    toy_run.write_toy_demos(root / "demos", n_episodes=4)
    agent = toy_run.toy_agent(toy_run.toy_config(root))
    save_checkpoint(root / "pre", 0, agent.tensors(), {})
    return root


def make_live(root, run_dir, *extra: str, episodes_per_update: int = 2) -> LiveLearner:
    # the actor trains from the first update; an IL injection every 2 RL steps, so the IL optimiser is in the state
    cfg = toy_run.toy_config(root, "rl.critic_warmup_iters=0", "interleave.m=2", *extra)
    return LiveLearner.open(cfg, run_dir, root / "pre", episodes_per_update)


@pytest.fixture
def live(root, tmp_path) -> LiveLearner:
    return make_live(root, tmp_path / "learner")


def episode_records(live: LiveLearner, episode: int, n_chunks: int, version: int = 0) -> list[Transition]:
    """One episode's records, acted by ``live``'s own agent on random observations."""
    rng = np.random.default_rng(episode)
    obs = rng.uniform(-1, 1, (n_chunks + 1, live.agent.spec["obs_dim"])).astype(np.float32)
    chunk, chain = live.algo.explore(live.agent.obs_tensor(obs[:-1]))
    actions = live.agent.to_env_actions(chunk)
    return [Transition(version, episode, i, 0.2 * i, obs[i], obs[i + 1], actions[i], chain[i].cpu().numpy(),
                       last=i == n_chunks - 1) for i in range(n_chunks)]


def ended(episode: int, outcome: str, length: int = 12) -> dict:
    return {"episode": episode, "state": "ended", "outcome": outcome, "length": length, "return": 0.0}


def feed(live: LiveLearner, records: list[Transition], outcome: str) -> None:
    for t in records:
        live.add(t)
    live.add_episode_outcome(ended(records[0].episode, outcome))


def assembler_for(live: LiveLearner, **kwargs) -> EpisodeAssembler:
    spec = live.agent.spec
    return EpisodeAssembler(spec["obs_dim"], (live.algo.K + 1, spec["horizon"], spec["act_dim"]), **kwargs)


# ------------------------------------------------------------------------------------------------ assembly


def test_records_arriving_out_of_order_assemble_into_one_episode_in_chunk_order(live):
    records = episode_records(live, episode=7, n_chunks=4)
    assembler = assembler_for(live)
    assembler.add_outcome(ended(7, "success"))
    for i in (2, 0, 3, 1):
        assembler.add(records[i])
    (episode,) = assembler.take()
    assert episode.episode == 7 and episode.outcome == "success" and episode.length == 12
    assert [t.chunk for t in episode.records] == [0, 1, 2, 3]


def test_episode_with_a_missing_record_never_completes_and_is_dropped_as_incomplete(live):
    records = episode_records(live, episode=1, n_chunks=3)
    assembler = assembler_for(live, max_pending=1)
    assembler.add(records[0])
    assembler.add(records[2])  # chunk 1 lost
    assembler.add_outcome(ended(1, "success"))
    assert (assembler.n_ready, assembler.n_pending) == (0, 1)
    for t in episode_records(live, episode=2, n_chunks=1):  # a newer episode pushes the stuck one out
        assembler.add(t)
    assert assembler.counts["dropped_incomplete"] == 1 and assembler.n_pending == 1


def test_estop_episode_is_dropped_and_its_later_records_are_ignored(live):
    records = episode_records(live, episode=3, n_chunks=2)
    assembler = assembler_for(live)
    assembler.add(records[0])
    assembler.add_outcome(ended(3, "estop"))
    assembler.add(records[1])
    assert assembler.take() == [] and assembler.n_pending == 0
    assert assembler.counts["dropped_estop"] == 1 and assembler.counts["ignored_records"] == 1


def test_episode_with_a_record_of_another_policy_version_is_dropped_as_off_policy(live):
    records = episode_records(live, episode=4, n_chunks=2)
    mixed = [records[0], episode_records(live, episode=4, n_chunks=2, version=1)[1]]
    assembler = assembler_for(live)
    assembler.add_outcome(ended(4, "success"))
    for t in mixed:
        assembler.add(t)
    assert assembler.take() == [] and assembler.counts["dropped_off_policy"] == 1


def test_new_version_drops_complete_episodes_of_the_old_one(live):
    assembler = assembler_for(live)
    for t in episode_records(live, episode=5, n_chunks=2):
        assembler.add(t)
    assembler.add_outcome(ended(5, "timeout"))
    assert assembler.n_ready == 1
    assembler.set_version(1)
    assert assembler.take() == [] and assembler.counts["dropped_off_policy"] == 1


def test_ended_record_without_a_known_outcome_is_refused_by_name(live):
    with pytest.raises(EpisodeRecordError, match="outcome"):
        live.add_episode_outcome({"episode": 1, "state": "ended", "outcome": "crashed", "length": 3})


def test_record_with_a_chain_of_the_wrong_shape_is_refused_naming_the_config(live):
    t = episode_records(live, episode=1, n_chunks=1)[0]
    bad = Transition(0, 1, 0, 0.0, t.obs, t.next_obs, t.actions, t.chain[1:], last=True)
    with pytest.raises(EpisodeRecordError, match="ft_denoising_steps"):
        live.add(bad)


def test_nan_observation_is_refused_without_losing_the_other_episodes(live):
    feed(live, episode_records(live, episode=0, n_chunks=2), "success")
    records = episode_records(live, episode=1, n_chunks=2)
    records[1] = dataclasses.replace(records[1], obs=np.full_like(records[1].obs, np.nan))
    live.add(records[0])
    with pytest.raises(NonFiniteError, match="episode 1 chunk 1"):
        live.add(records[1])
    live.add_episode_outcome(ended(1, "success"))
    assert live.counts()["complete"] == 1 and live.counts()["dropped_invalid"] == 1


# ------------------------------------------------------------------------------------------------ rewards


def test_success_and_timeout_episodes_get_finetunerun_rewards_and_dones(live):
    assembler = assembler_for(live)
    timeout = episode_records(live, episode=1, n_chunks=2)
    for records, outcome in ((episode_records(live, episode=0, n_chunks=3), "success"), (timeout, "timeout")):
        for t in records:
            assembler.add(t)
        assembler.add_outcome(ended(records[0].episode, outcome))
    rollout = episodes_to_rollout(assembler.take(), live.algo)

    bootstrap = live.cfg.rl.gamma * live.algo.values(live.agent.obs_tensor(timeout[-1].next_obs[None])).item()
    assert rollout.rewards.shape == rollout.dones.shape == (5, 1)
    assert rollout.dones[:, 0].tolist() == [0, 0, 1, 0, 1]
    torch.testing.assert_close(rollout.rewards[:, 0], torch.tensor([0.0, 0, 1, 0, 0]))
    torch.testing.assert_close(rollout.bootstrap[:, 0], torch.tensor([0, 0, 0, 0, bootstrap]))
    assert rollout.samples.shape == (5, 1, live.algo.K + 1, 4, 2)
    torch.testing.assert_close(rollout.obs[3:, 0], live.agent.obs_tensor(np.stack([t.obs for t in timeout])))


# ------------------------------------------------------------------------------------------------ updates


def two_episodes(live: LiveLearner, first: int = 0) -> None:
    feed(live, episode_records(live, episode=first, n_chunks=3, version=live.version), "success")
    feed(live, episode_records(live, episode=first + 1, n_chunks=3, version=live.version), "timeout")


def test_update_moves_the_actor_and_makes_the_next_version(live):
    two_episodes(live)
    assert live.ready()
    before = [p.detach().clone() for p in live.algo.actor_parameters()]
    metrics = live.update()
    assert live.version == metrics["version"] == 1 and not live.ready()
    assert any(not torch.equal(a, b) for a, b in zip(before, live.algo.actor_parameters()))
    assert metrics["episodes_used"] == 2 and metrics["success_rate"] == 0.5 and metrics["injections"] > 0
    assert -1.0 <= metrics["rho_mean"] <= 1.0 and 0.0 <= metrics["projected_fraction"] <= 1.0


def test_update_waits_for_the_env_step_floor_as_well_as_the_episode_count(root, tmp_path):
    live = LiveLearner.open(toy_run.toy_config(root), tmp_path / "learner", root / "pre", 2,
                            env_steps_per_update=30)
    two_episodes(live)  # 2 episodes of 12 env steps each: enough episodes, too few steps
    assert not live.ready()
    feed(live, episode_records(live, episode=2, n_chunks=3), "success")
    assert live.ready()


@pytest.mark.parametrize("capacity, expected", [(0, 0), (100, 3)])
def test_successful_episodes_join_the_il_data_when_enabled(root, tmp_path, capacity, expected):
    live = make_live(root, tmp_path / "learner", f"il.success_capacity={capacity}")
    two_episodes(live)  # one success of 3 chunks, one time-out
    live.update()
    successes = live.learner.imitation.successes
    assert len(successes) == expected
    if expected:
        assert successes.chunks.abs().max() <= 1.0


def test_save_then_restore_gives_the_same_version_weights_and_optimiser_state(live, root, tmp_path):
    two_episodes(live)
    live.update()
    path, sha = live.save(tmp_path / "learner")

    resumed = make_live(root, tmp_path / "learner")
    assert resumed.version == 1 and resumed.checkpoint == (path, sha) and resumed.env_steps == live.env_steps
    for a, b in zip(live.algo.actor_parameters(), resumed.algo.actor_parameters()):
        assert torch.equal(a, b)
    for name in ("actor_opt", "critic_opt"):
        saved = live.learner.state_dict()["algo"][name]["state"]
        loaded = resumed.learner.state_dict()["algo"][name]["state"]
        assert all(torch.equal(saved[i][k], loaded[i][k]) for i in saved for k in saved[i])
    assert resumed.learner.schedule.state_dict() == live.learner.schedule.state_dict()


def test_update_hitting_nan_midway_rolls_back_to_the_previous_version(live):
    """The first IL injection (after 2 RL steps have moved the actor) meets NaN demos: nothing of the update stays."""
    two_episodes(live)
    live.learner.imitation.demos.obs[:] = float("nan")
    before = [p.detach().clone() for p in live.algo.actor_parameters()]
    with pytest.raises(NonFiniteError, match="IL loss"):
        live.update()
    assert live.version == 0 and live.learner.schedule.rl_steps == 0
    assert all(torch.equal(a, b) for a, b in zip(before, live.algo.actor_parameters()))
    assert live.learner.state_dict()["algo"]["actor_opt"]["state"] == {}
