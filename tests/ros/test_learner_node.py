"""learner: complete episodes streamed as transition records become a new, announced checkpoint; a restart resumes.

The learner runs in this process next to a probe node playing the policy server (transition records) and the
episode manager (ended records), and listening to the checkpoint announcements and metrics. The policy is tiny
and untrained (normalisers fitted on random demos); records are made with its own DPPO.explore chains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_helpers import spin_until
from std_msgs.msg import String, UInt8MultiArray

from inril_core.agent import DiffusionAgent
from inril_core.checkpoint import save_checkpoint
from inril_core.config import load_config
from inril_core.episodes.store import Episode, EpisodeStore
from inril_core.rl.dppo import DPPO
from inril_core.transitions import Transition, encode
from inril_ros import interfaces
from inril_ros.learner import LearnerNode

TIMEOUT_S = 20.0
CHUNKS = 3  # per episode


@dataclasses.dataclass
class TinyPolicy:
    overrides: list[str]
    policy_dir: Path
    episodes: list[tuple[list[Transition], dict]]  # two learnable episodes: (records, ended record)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyPolicy:
    """Lift-sized observations and actions, a tiny untrained policy in <root>/pre, random demos, two episodes."""
    root = tmp_path_factory.mktemp("learner")
    overrides = [
        "task=lift", "method=in-ril", "device=cpu", f"demos.path={root / 'demos'}", "policy.n_steps=4",
        "policy.denoiser.hidden_dims=[16]", "policy.denoiser.time_dim=8", "rl.ft_denoising_steps=2",
        "rl.critic_hidden=[16]", "rl.update_epochs=1", "rl.minibatch_size=8", "rl.critic_warmup_iters=0",
        "interleave.m=2", "il.batch_size=8", "il.steps_per_injection=1",
    ]
    cfg = load_config(overrides)
    rng = np.random.default_rng(0)
    store = EpisodeStore(root / "demos")
    for _ in range(3):
        store.append(Episode(rng.uniform(-1, 1, (10, cfg.env.obs_dim)), rng.uniform(-1, 1, (10, cfg.env.act_dim)),
                             np.zeros(10), {"task": "lift", "source": "scripted", "success": True}))
    torch.manual_seed(0)
    agent = DiffusionAgent.from_config(cfg)
    agent.obs_norm.fit(rng.uniform(-1, 1, (50, cfg.env.obs_dim)))
    agent.act_norm.fit(rng.uniform(-1, 1, (50, cfg.env.act_dim)))
    save_checkpoint(root / "pre", 0, agent.tensors(), {})

    algo = DPPO(agent, cfg.rl)
    episodes = []
    for episode, outcome in ((0, "success"), (1, "timeout")):
        obs = rng.uniform(-1, 1, (CHUNKS + 1, cfg.env.obs_dim)).astype(np.float32)
        chunk, chain = algo.explore(agent.obs_tensor(obs[:-1]))
        actions = agent.to_env_actions(chunk)
        records = [Transition(0, episode, i, 0.2 * i, obs[i], obs[i + 1], actions[i], chain[i].numpy(),
                              last=i == CHUNKS - 1) for i in range(CHUNKS)]
        ended = {"episode": episode, "state": "ended", "outcome": outcome, "length": 4 * CHUNKS, "return": 0.0}
        episodes.append((records, ended))
    return TinyPolicy(overrides, root / "pre", episodes)


class Probe:
    """The policy server and the episode manager as far as the learner can tell, plus its listeners."""

    def __init__(self, context, executor: SingleThreadedExecutor) -> None:
        self.node = Node("probe", context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.transitions = self.node.create_publisher(UInt8MultiArray, interfaces.TRANSITIONS, interfaces.STREAM)
        self.episodes = self.node.create_publisher(String, interfaces.EPISODE, interfaces.EPISODE_RECORDS)
        self.checkpoints: list[dict] = []
        self.metrics: list[dict] = []
        self.node.create_subscription(String, interfaces.CHECKPOINT, lambda m: self.checkpoints.append(
            json.loads(m.data)), interfaces.LATCHED)
        self.node.create_subscription(String, interfaces.LEARNER_METRICS, lambda m: self.metrics.append(
            json.loads(m.data)), interfaces.STREAM)

    def connected(self) -> bool:
        return spin_until(self.executor, lambda: self.transitions.get_subscription_count() > 0
                          and self.episodes.get_subscription_count() > 0, TIMEOUT_S)

    def play(self, records: list[Transition], ended: dict) -> None:
        for t in reversed(records):  # out of order on purpose: the learner must not care
            self.transitions.publish(UInt8MultiArray(data=encode(t)))
        self.episodes.publish(String(data=json.dumps(ended)))


def start_learner(context, executor, tiny: TinyPolicy, run_dir: Path) -> LearnerNode:
    node = LearnerNode(context=context, parameter_overrides=[
        Parameter("config_overrides", Parameter.Type.STRING_ARRAY, tiny.overrides),
        Parameter("policy_dir", value=str(tiny.policy_dir)),
        Parameter("run_dir", value=str(run_dir)),
        Parameter("episodes_per_update", value=2),
        Parameter("heartbeat_hz", value=0.0),
    ])
    executor.add_node(node)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


def learn_version_1(context, executor, probe: Probe, tiny: TinyPolicy, run_dir: Path) -> LearnerNode:
    """A learner fed a malformed record, a NaN episode and the two good episodes; returns once it announced."""
    learner = start_learner(context, executor, tiny, run_dir)
    assert probe.connected(), "the learner never subscribed to the transitions and episodes"
    probe.transitions.publish(UInt8MultiArray(data=b"not a record"))
    records, ended = tiny.episodes[0]
    nan_record = dataclasses.replace(records[0], episode=99, obs=np.full_like(records[0].obs, np.nan))
    probe.transitions.publish(UInt8MultiArray(data=encode(nan_record)))
    for records, ended in tiny.episodes:
        probe.play(records, ended)
    assert spin_until(executor, lambda: probe.checkpoints and probe.metrics, TIMEOUT_S), "no checkpoint announced"
    return learner


def test_two_complete_episodes_are_learned_into_an_announced_version_1(ros_context, tiny, tmp_path):
    executor = SingleThreadedExecutor(context=ros_context)
    probe = Probe(ros_context, executor)
    learner = learn_version_1(ros_context, executor, probe, tiny, tmp_path)
    try:
        (announced,) = probe.checkpoints
        assert announced["version"] == announced["updates"] == 1 and announced["env_steps"] == 2 * 4 * CHUNKS
        assert hashlib.sha256(Path(announced["path"]).read_bytes()).hexdigest() == announced["sha256"]
        (metrics,) = probe.metrics
        assert metrics["episodes_used"] == 2 and metrics["success_rate"] == 0.5
        assert metrics["dropped_invalid"] == 1  # the NaN episode; the malformed bytes never reached an episode
        assert (tmp_path / "learner" / "metrics.csv").read_text().count("\n") == 2  # header + version 1
    finally:
        learner.destroy_node()
        executor.shutdown()


def test_restarted_learner_reannounces_its_newest_version(ros_context, tiny, tmp_path):
    executor = SingleThreadedExecutor(context=ros_context)
    probe = Probe(ros_context, executor)
    first = learn_version_1(ros_context, executor, probe, tiny, tmp_path)
    (before,) = probe.checkpoints
    executor.remove_node(first)
    first.destroy_node()
    probe.checkpoints.clear()
    second = start_learner(ros_context, executor, tiny, tmp_path)
    try:
        assert spin_until(executor, lambda: probe.checkpoints, TIMEOUT_S), "the restarted learner announced nothing"
        assert probe.checkpoints[-1] == before
    finally:
        second.destroy_node()
        executor.shutdown()
