"""The success buffer: the policy's own successful episodes joining the IL data (il.success_capacity)."""
import pytest
import torch

from inril_core.buffers import DemoSplit, SuccessBuffer, sample_union


def demos(n: int = 10) -> DemoSplit:
    return DemoSplit(torch.zeros(n, 3), torch.zeros(n, 4, 2))


def test_buffer_keeps_the_newest_pairs_up_to_capacity() -> None:
    buffer = SuccessBuffer(obs_dim=3, horizon=4, act_dim=2, capacity=5, device="cpu")
    for episode in range(3):  # three episodes of 2 pairs each; the oldest pair falls out
        buffer.add(torch.full((2, 3), float(episode)), torch.full((2, 4, 2), 0.1 * episode))
    assert len(buffer) == 5
    assert buffer.obs[:, 0].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0]


def test_chunks_are_clamped_to_the_normalised_action_range() -> None:
    buffer = SuccessBuffer(3, 4, 2, capacity=10, device="cpu")
    buffer.add(torch.zeros(1, 3), torch.full((1, 4, 2), 3.0))  # a raw sampled chain end may leave [-1, 1]
    assert buffer.chunks.max().item() == 1.0


def test_capacity_zero_is_off_and_negative_is_refused() -> None:
    buffer = SuccessBuffer(3, 4, 2, capacity=0, device="cpu")
    buffer.add(torch.zeros(2, 3), torch.zeros(2, 4, 2))
    assert len(buffer) == 0
    with pytest.raises(ValueError, match="il.success_capacity"):
        SuccessBuffer(3, 4, 2, capacity=-1, device="cpu")


def test_without_successes_the_batch_is_exactly_the_demo_sample() -> None:
    split = DemoSplit(torch.arange(10.0)[:, None].expand(10, 3).clone(), torch.zeros(10, 4, 2))
    empty = SuccessBuffer(3, 4, 2, capacity=100, device="cpu")
    torch.manual_seed(0)
    expected, _ = split.sample(64)
    torch.manual_seed(0)
    got, _ = sample_union(split, empty, 64)
    assert torch.equal(got, expected)


def test_batches_draw_from_demos_and_successes_in_proportion() -> None:
    successes = SuccessBuffer(3, 4, 2, capacity=100, device="cpu")
    successes.add(torch.ones(30, 3), torch.ones(30, 4, 2))  # 30 success pairs next to 10 demo pairs
    torch.manual_seed(0)
    obs, chunks = sample_union(demos(10), successes, 4000)
    assert obs.shape == (4000, 3) and chunks.shape == (4000, 4, 2)
    assert abs(obs[:, 0].mean().item() - 0.75) < 0.03  # 30 / 40 of the draws are successes


def test_state_round_trips() -> None:
    a = SuccessBuffer(3, 4, 2, capacity=10, device="cpu")
    a.add(torch.randn(4, 3), torch.rand(4, 4, 2))
    b = SuccessBuffer(3, 4, 2, capacity=10, device="cpu")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.obs, b.obs) and torch.equal(a.chunks, b.chunks)


def test_offline_collection_adds_the_pairs_of_successful_episodes_only(tmp_path_factory) -> None:
    """FineTuneRun.collect: each successful episode's (obs, chunk) pairs join the IL data, failures do not."""
    import toy_run
    from inril_core.training import FineTuneRun

    root = toy_run.pretrained_toy_root(tmp_path_factory, "successes")
    run = FineTuneRun(toy_run.toy_config(root, f"run.dir={root / 'run'}", "il.success_capacity=1000",
                                         "rl.n_chunk_steps=5", "env.n_envs=4"), resume=False)
    explore = run.algo.explore

    def towards_goal(obs):  # steer half the envs to the goal (they succeed), let the rest wander off
        chunk, chain = explore(obs)
        raw = run.agent.obs_norm.unnormalize(obs)
        step = ((raw[:, 2:] - raw[:, :2]) / 0.35).clamp(-1, 1)  # the toy moves 0.1 per unit action
        step[1::2] = -step[1::2]
        steered = run.agent.act_norm.normalize(step[:, None, :].expand(-1, chunk.shape[1], -1)).clamp(-1, 1)
        return steered, chain

    run.algo.explore = towards_goal
    try:
        run.collect()
    finally:
        run.envs.close()
    successes = run.learner.imitation.successes
    n_success = round(run.recent["success"] * run.recent["episodes"])
    assert n_success >= 1 and run.recent["success"] < 1.0
    # every stored pair is one chunk step of a successful episode (at most n_chunk_steps each)
    assert n_success <= len(successes) <= n_success * 5
