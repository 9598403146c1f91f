"""policy_server in-process against a tiny Lift policy pre-trained in the test: chunks, transitions, weight swaps."""
from __future__ import annotations

import csv
import hashlib
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header, String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from inril_core import transitions
from inril_core.agent import DiffusionAgent
from inril_core.checkpoint import load_latest, save_checkpoint
from inril_core.config import config_dir, load_config
from inril_core.episodes.store import Episode, EpisodeStore
from inril_core.rl.dppo import DPPO
from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces as ifc
from inril_ros.convert import json_msg, joint_state, pose_array, pose_stamped, time_to_s, trajectory_to_actions
from inril_ros.policy_server import PolicyServer
from inril_sim.layout import flat_observation
from inril_sim.rotations import xyzw_to_wxyz
from ros_helpers import spin_until

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

H = 4        # policy.act_steps of the tiny policy
HORIZON = 6  # policy.horizon: points predicted, of which H run
DT = 0.05    # control_rate_hz 20
T0 = 10.0    # stamp of the first observation
TIMEOUT = 20.0


def tiny_overrides(root: Path) -> list[str]:
    return ["task=lift", "device=cpu", f"demos.path={root}/demos", f"pretrain.run_dir={root}/pre",
            "policy.n_steps=4", f"policy.horizon={HORIZON}", f"policy.act_steps={H}",
            "policy.denoiser.hidden_dims=[32]", "policy.denoiser.time_dim=8", "pretrain.max_epochs=2",
            "pretrain.batch_size=64",
            "pretrain.eval_episodes=1", "train.eval_n_envs=1", "env.max_episode_steps=8",
            "rl.ft_denoising_steps=2", "rl.critic_hidden=[32]"]


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> dict:
    """A Lift policy pre-trained for two epochs on random demos, and a learner checkpoint (version 1) made from it."""
    from inril_core.training import pretrain

    root = tmp_path_factory.mktemp("policy")
    store, rng = EpisodeStore(root / "demos"), np.random.default_rng(0)
    for _ in range(3):
        store.append(Episode(rng.normal(size=(16, 19)), rng.uniform(-1, 1, (16, 7)), np.zeros(16),
                             {"task": "lift", "source": "scripted", "success": True}))
    overrides = tiny_overrides(root)
    pretrain(load_config(overrides))
    agent = DiffusionAgent.from_tensors(load_latest(root / "pre")[1])
    algo = DPPO(agent, load_config(overrides).rl)
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.add_(0.5)
    learner_ckpt = save_checkpoint(root / "learner", 1, {**agent.tensors(), **algo.tensors()}, {})
    weights = learner_ckpt / "weights.safetensors"
    return {"root": root, "overrides": overrides, "weights": weights,
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}


class Graph:
    """The policy server plus a driver node standing in for the sim, the episode manager and the learner."""

    def __init__(self, context, policy: dict, run_dir: Path, **params) -> None:
        values = {"task": "lift", "policy_dir": str(policy["root"] / "pre"), "config_overrides": policy["overrides"],
                  "device": "cpu", "control_rate_hz": 1.0 / DT, "run_dir": str(run_dir), **params}
        self.server = PolicyServer(context=context,
                                   parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.run_dir = run_dir
        self.driver = driver = rclpy.create_node("driver", context=context)
        self.pubs = {
            "eef": driver.create_publisher(PoseStamped, ifc.EEF_POSE, ifc.LATEST),
            "gripper": driver.create_publisher(JointState, ifc.GRIPPER_STATE, ifc.LATEST),
            "objects": driver.create_publisher(PoseArray, ifc.OBJECT_POSES, ifc.LATEST),
            "episode": driver.create_publisher(String, ifc.EPISODE, ifc.EPISODE_RECORDS),
            "checkpoint": driver.create_publisher(String, ifc.CHECKPOINT, ifc.LATCHED),
            "estop": driver.create_publisher(Bool, ifc.ESTOP, ifc.LATCHED),
        }
        self.chunks: list[JointTrajectory] = []
        self.versions: list[dict] = []
        self.records: list[transitions.Transition] = []
        driver.create_subscription(JointTrajectory, ifc.ACTION_CHUNK, self.chunks.append, ifc.LATEST)
        driver.create_subscription(String, ifc.POLICY_VERSION, lambda m: self.versions.append(json.loads(m.data)),
                                   ifc.LATCHED)
        driver.create_subscription(UInt8MultiArray, ifc.TRANSITIONS,
                                   lambda m: self.records.append(transitions.decode(bytes(m.data))), ifc.STREAM)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.server)
        self.executor.add_node(driver)

    def start(self) -> None:
        assert self.server.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.server.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values())
                               and self.versions), "policy server did not connect"

    def spin_until(self, predicate, timeout: float = TIMEOUT) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def episode(self, episode: int, state: str, **stamps: float) -> None:
        self.pubs["episode"].publish(json_msg({"episode": episode, "state": state, **stamps}))

    def observe(self, step: int, eef_stamp_offset: float = 0.0, nan: bool = False, wait: bool = True) -> float:
        """Publish the three observation messages of env step ``step``; wait until the server has the sample."""
        t = T0 + step * DT
        eef_pos = [0.1 * np.sin(step), 0.0, 1.0 + 0.01 * step]
        self.pubs["eef"].publish(pose_stamped([np.nan] * 3 if nan else eef_pos, EEF_QUAT, t + eef_stamp_offset,
                                              "world"))
        self.pubs["gripper"].publish(joint_state(["finger_left", "finger_right"], FINGERS, t))
        self.pubs["objects"].publish(pose_array([(CUBE_POS, CUBE_QUAT)], t, "world"))
        if wait:
            stamp_ns = int(round(t * 1e9))
            assert self.spin_until(lambda: stamp_ns in self.server._history), f"step {step} never completed"
        return t

    def destroy(self) -> None:
        self.executor.shutdown()
        self.server.destroy_node()
        self.driver.destroy_node()


EEF_QUAT = [1.0, 0.0, 0.0, 0.0]  # xyzw, pointing down
FINGERS = [0.02, -0.02]
CUBE_POS, CUBE_QUAT = [0.0, 0.0, 0.82], [0.0, 0.0, 0.0, 1.0]


def expected_obs(step: int) -> np.ndarray:
    eef_pos = np.array([0.1 * np.sin(step), 0.0, 1.0 + 0.01 * step])
    return flat_observation("lift", np.array(CUBE_POS), xyzw_to_wxyz(np.array(CUBE_QUAT)), eef_pos,
                            xyzw_to_wxyz(np.array(EEF_QUAT)), np.array(FINGERS))


@pytest.fixture
def make_graph(ros_context, policy, tmp_path):
    """Graph(**server parameters); every graph made is destroyed after the test."""
    made: list[Graph] = []

    def make(**params) -> Graph:
        made.append(Graph(ros_context, policy, tmp_path / "run", **params))
        return made[-1]

    try:
        yield make
    finally:
        for graph in made:
            graph.destroy()


@pytest.fixture
def graph(make_graph):
    return make_graph()


def run_steps(graph: Graph, steps: range) -> None:
    for step in steps:
        graph.observe(step)


def test_configure_fails_without_checkpoint_and_names_the_pretrain_command(ros_context, policy, tmp_path,
                                                                          capfd) -> None:
    server = PolicyServer(context=ros_context, parameter_overrides=[
        Parameter("policy_dir", value=str(tmp_path / "empty")), Parameter("config_overrides",
                                                                          value=policy["overrides"])])
    try:
        assert server.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "inril pretrain task=lift" in capfd.readouterr().err
    finally:
        server.destroy_node()


def test_complete_observation_gets_a_chunk_of_h_points_stamped_with_its_time(graph) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    t = graph.observe(0)
    assert graph.spin_until(lambda: graph.chunks)
    actions, offsets = trajectory_to_actions(graph.chunks[0], AXIS_ANGLE)
    assert time_to_s(graph.chunks[0].header.stamp) == pytest.approx(t, abs=1e-9)
    assert actions.shape == (H, 7) and np.isfinite(actions).all()
    np.testing.assert_allclose(offsets, np.arange(H) * DT, atol=1e-9)
    assert graph.versions[-1]["version"] == 0 and len(graph.versions[-1]["sha256"]) == 64
    beats: list[str] = []
    graph.driver.create_subscription(Header, ifc.HEARTBEAT, lambda m: beats.append(m.frame_id), ifc.LATEST)
    assert graph.spin_until(lambda: "policy_server" in beats)


def test_observation_that_came_before_activation_is_answered_at_activation(graph) -> None:
    """A lifecycle manager activates some time after configure; an episode's first observation that arrived in
    between is published once only, and lock-step stalls unless activation answers it."""
    assert graph.server.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert graph.spin_until(lambda: all(p.get_subscription_count() > 0 for p in graph.pubs.values()))
    graph.episode(0, "running", start_stamp=T0)
    t = graph.observe(0)
    graph.spin_for(0.3)
    assert not graph.chunks  # inactive: no chunk yet
    assert graph.server.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert graph.spin_until(lambda: graph.chunks), "activation did not answer the waiting observation"
    assert time_to_s(graph.chunks[0].header.stamp) == pytest.approx(t, abs=1e-9)


def chunk_stamps_over_h_steps(graph: Graph, chunks: int) -> list[float]:
    """Start the server, run an episode's first H + 1 observations and return the stamps of the chunks decided
    (waiting for ``chunks`` of them, then a little longer for any extra)."""
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    run_steps(graph, range(H + 1))
    assert graph.spin_until(lambda: len(graph.chunks) == chunks)
    graph.spin_for(0.2)
    return [time_to_s(c.header.stamp) for c in graph.chunks]


def test_next_chunk_comes_after_h_observations(graph) -> None:
    assert chunk_stamps_over_h_steps(graph, 2) == pytest.approx([T0, T0 + H * DT])


def test_decide_ahead_decides_the_next_chunk_while_the_newest_still_has_that_many_points(make_graph) -> None:
    """Real time with a slow policy: the next chunk is decided decide_ahead_steps before the newest runs out, so the
    executor need not hold while it is computed."""
    graph = make_graph(sampling="deterministic", mode="realtime", decide_ahead_steps=2)
    assert chunk_stamps_over_h_steps(graph, 3) == pytest.approx([T0, T0 + 2 * DT, T0 + 4 * DT])


def test_publish_steps_sends_more_of_the_horizon_and_still_decides_every_h(make_graph) -> None:
    """Real time with a decision slower than h - (its latency) steps: the points past h cover the wait for the next
    chunk, which still comes every h steps; the points are the same deterministic chunk's, not new ones."""
    graph = make_graph(sampling="deterministic", mode="realtime", publish_steps=HORIZON)
    assert chunk_stamps_over_h_steps(graph, 2) == pytest.approx([T0, T0 + H * DT])
    actions, offsets = trajectory_to_actions(graph.chunks[0], AXIS_ANGLE)
    np.testing.assert_allclose(offsets, np.arange(HORIZON) * DT, atol=1e-9)
    server = graph.server
    h_points = server._agent.act_deterministic(expected_obs(0)[None], server._algo.denoiser_for_step)[0]
    assert h_points.shape == (H, 7)
    np.testing.assert_allclose(actions[:H], h_points, atol=1e-5)


def test_ddim_steps_decides_with_that_many_denoising_steps(make_graph) -> None:
    graph = make_graph(sampling="deterministic", ddim_steps=2)
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    graph.observe(0)
    assert graph.spin_until(lambda: graph.chunks)
    actions = trajectory_to_actions(graph.chunks[0], AXIS_ANGLE)[0]
    server = graph.server
    sample = partial(server._agent.act_deterministic, expected_obs(0)[None], server._algo.denoiser_for_step)
    np.testing.assert_allclose(actions, sample(ddim_steps=2)[0], atol=1e-5)
    assert not np.allclose(actions, sample()[0], atol=1e-3)  # all 4 steps give another chunk


@pytest.mark.parametrize(("params", "reason"), [
    ({"decide_ahead_steps": 1, "mode": "realtime"}, "decide_ahead_steps=1 needs sampling=deterministic"),
    ({"decide_ahead_steps": 1, "sampling": "deterministic"}, "decide_ahead_steps=1 is for mode realtime"),
    ({"decide_ahead_steps": H, "sampling": "deterministic", "mode": "realtime"},
     f"must be below the policy's chunk length h={H}"),
    ({"publish_steps": HORIZON, "mode": "realtime"}, f"publish_steps={HORIZON} needs sampling=deterministic"),
    ({"publish_steps": HORIZON, "sampling": "deterministic"}, f"publish_steps={HORIZON} is for mode realtime"),
    ({"publish_steps": HORIZON + 1, "sampling": "deterministic", "mode": "realtime"},
     f"from the policy's chunk length h={H} to its predicted horizon {HORIZON}"),
    ({"ddim_steps": 2}, "ddim_steps=2 needs sampling=deterministic"),
    ({"ddim_steps": 5, "sampling": "deterministic"}, "ddim_steps=5 exceeds the policy's 4 denoising steps"),
])
def test_realtime_chunk_options_are_refused_where_they_would_misreport_race_or_overrun(
        make_graph, capfd, params: dict, reason: str) -> None:
    graph = make_graph(**params)
    assert graph.server.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert reason in capfd.readouterr().err


def test_next_chunk_comes_at_its_time_even_when_samples_in_between_were_missed(graph) -> None:
    """The observation subscriptions keep one sample: a sim stepping faster than the server overwrites some. The
    next chunk is due by stamp (the first one is used up at T0 + H * DT), not after H samples were seen."""
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    for step in (0, 1, H):  # steps 2 .. H-1 never complete at the server
        graph.observe(step)
    assert graph.spin_until(lambda: len(graph.chunks) == 2), "no chunk once the first one was used up"
    assert time_to_s(graph.chunks[1].header.stamp) == pytest.approx(T0 + H * DT)


def test_observation_published_again_gets_the_chunk_that_covers_it_again(graph) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    run_steps(graph, range(2))
    assert graph.spin_until(lambda: len(graph.chunks) == 1)
    graph.observe(1, wait=False)  # the sim's republish of an unanswered observation: same stamp
    assert graph.spin_until(lambda: len(graph.chunks) == 2), "the covering chunk was not sent again"
    assert graph.chunks[1] == graph.chunks[0]


def test_observation_with_mismatched_stamps_gets_no_chunk(graph) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    graph.observe(0, eef_stamp_offset=0.001, wait=False)
    graph.spin_for(1.0)
    assert graph.chunks == []
    graph.observe(1)  # a complete one afterwards is answered: the server was listening
    assert graph.spin_until(lambda: graph.chunks)


def test_nan_observation_is_refused_and_estop_stops_chunks(graph) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    graph.observe(0, nan=True, wait=False)
    graph.spin_for(1.0)
    assert graph.chunks == []
    graph.pubs["estop"].publish(Bool(data=True))
    graph.spin_for(0.3)
    graph.observe(1)
    graph.spin_for(0.5)
    assert graph.chunks == []
    graph.pubs["estop"].publish(Bool(data=False))  # the waiting observation is answered (lock-step resumes)
    assert graph.spin_until(lambda: graph.chunks)
    assert time_to_s(graph.chunks[0].header.stamp) == pytest.approx(T0 + DT)


def test_transitions_carry_episode_version_and_next_obs_and_the_end_flags_last(graph) -> None:
    graph.start()
    graph.episode(7, "running", start_stamp=T0)
    run_steps(graph, range(2 * H + 1))  # chunks at steps 0, H, 2H
    assert graph.spin_until(lambda: len(graph.records) == 1), "chunk 0's record is due once chunk 2 is decided"
    first = graph.records[0]
    assert (first.episode, first.policy_version, first.chunk, first.last) == (7, 0, 0, False)
    np.testing.assert_allclose(first.obs, expected_obs(0), atol=1e-6)
    np.testing.assert_allclose(first.next_obs, expected_obs(H), atol=1e-6)
    assert first.actions.shape == (H, 7) and first.chain.shape == (3, HORIZON, 7)  # K' + 1 chain entries
    np.testing.assert_allclose(first.actions, trajectory_to_actions(graph.chunks[0], AXIS_ANGLE)[0], atol=1e-6)
    end_step = 2 * H + 2
    graph.episode(7, "ended", start_stamp=T0, end_stamp=T0 + end_step * DT)
    run_steps(graph, range(2 * H + 1, end_step + 1))
    assert graph.spin_until(lambda: len(graph.records) == 3)
    assert [(r.chunk, r.last) for r in graph.records] == [(0, False), (1, False), (2, True)]
    np.testing.assert_allclose(graph.records[2].next_obs, expected_obs(end_step), atol=1e-6)


def test_chunk_decided_from_the_final_observation_is_dropped_and_the_one_before_is_last(graph) -> None:
    graph.start()
    graph.episode(2, "running", start_stamp=T0)
    run_steps(graph, range(H + 1))  # chunk 1 decided from step H, which turns out to be the episode's last
    assert graph.spin_until(lambda: len(graph.chunks) == 2)
    graph.episode(2, "ended", start_stamp=T0, end_stamp=T0 + H * DT)
    assert graph.spin_until(lambda: graph.records)
    graph.spin_for(0.3)
    assert [(r.chunk, r.last) for r in graph.records] == [(0, True)]
    np.testing.assert_allclose(graph.records[0].next_obs, expected_obs(H), atol=1e-6)


def test_weight_swap_mid_episode_refuses_a_wrong_sha256_and_loads_a_good_one(graph, policy) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    run_steps(graph, range(H))
    graph.pubs["checkpoint"].publish(json_msg({"version": 1, "path": str(policy["weights"]), "sha256": "0" * 64}))
    graph.spin_for(0.3)
    run_steps(graph, range(H, 2 * H))  # boundary at step H: refused
    assert graph.versions[-1]["version"] == 0
    graph.pubs["checkpoint"].publish(json_msg({"version": 1, "path": str(policy["weights"]),
                                               "sha256": policy["sha256"]}))
    graph.spin_for(0.3)
    assert graph.versions[-1]["version"] == 0  # nothing swaps between boundaries
    run_steps(graph, range(2 * H, 3 * H + 1))  # boundary at step 2H: swapped; 3H confirms chunk 1's record
    assert graph.spin_until(lambda: graph.versions[-1]["version"] == 1)
    assert graph.versions[-1]["sha256"] == policy["sha256"]
    assert graph.spin_until(lambda: len(graph.records) == 2)
    assert [r.policy_version for r in graph.records] == [0, 0]
    graph.episode(0, "ended", start_stamp=T0, end_stamp=T0 + (3 * H + 1) * DT)
    graph.observe(3 * H + 1)
    assert graph.spin_until(lambda: len(graph.records) == 4)
    assert [r.policy_version for r in graph.records] == [0, 0, 1, 1]
    with (graph.run_dir / "policy_versions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["version"]), float(r["stamp"])) for r in rows] == [(0, T0), (1, pytest.approx(T0 + 2 * H * DT))]
    with (graph.run_dir / "policy_latency.csv").open() as f:
        latencies = [float(r["latency_s"]) for r in csv.DictReader(f)]
    assert len(latencies) == 4 and all(0 < x < 5 for x in latencies)


def test_deterministic_sampling_answers_without_transitions(make_graph) -> None:
    graph = make_graph(sampling="deterministic")
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    run_steps(graph, range(2 * H + 1))
    assert graph.spin_until(lambda: len(graph.chunks) == 3)
    graph.episode(0, "ended", start_stamp=T0, end_stamp=T0 + 2 * H * DT)
    graph.spin_for(0.5)
    assert graph.records == []


def test_params_file_and_autostart_bring_the_server_to_active(ros_context, policy) -> None:
    params_file = config_dir() / "nodes" / "policy_server.yaml"
    server = PolicyServer(context=ros_context, cli_args=["--ros-args", "--params-file", str(params_file)],
                          parameter_overrides=[Parameter("policy_dir", value=str(policy["root"] / "pre")),
                                               Parameter("config_overrides", value=policy["overrides"]),
                                               Parameter("device", value="cpu"), Parameter("autostart", value=True)])
    try:
        assert server.get_fully_qualified_name() == "/inril/policy_server"
        assert server.get_parameter("sampling").value == "explore"  # from the file
        assert server._state_machine.current_state[1] == "active"
    finally:
        server.destroy_node()


def test_autostart_without_a_checkpoint_stops_the_node(ros_context, tmp_path) -> None:
    with pytest.raises(RuntimeError, match="failed to configure"):
        PolicyServer(context=ros_context, parameter_overrides=[Parameter("policy_dir", value=str(tmp_path)),
                                                               Parameter("autostart", value=True)])


def test_end_record_without_end_stamp_closes_the_episode_on_the_latest_observation(graph) -> None:
    graph.start()
    graph.episode(4, "running", start_stamp=T0)
    run_steps(graph, range(H + 2))  # chunks at 0 and H; step H + 1 is the latest observation
    assert graph.spin_until(lambda: len(graph.chunks) == 2)
    graph.episode(4, "ended", start_stamp=T0)
    assert graph.spin_until(lambda: len(graph.records) == 2)
    assert [(r.chunk, r.last) for r in graph.records] == [(0, False), (1, True)]
    np.testing.assert_allclose(graph.records[1].next_obs, expected_obs(H + 1), atol=1e-6)


def test_observation_stamped_ahead_of_the_clock_is_refused_and_does_not_block_later_ones(graph) -> None:
    graph.start()
    graph.episode(0, "running", start_stamp=T0)
    future_step = int((time.time() + 100.0 - T0) / DT)  # 100 s ahead of the server's (wall) clock
    graph.observe(future_step, wait=False)
    graph.spin_for(1.0)
    assert graph.chunks == [] and not graph.server._history
    graph.observe(1)  # accepted, the future one would have made this one "out of order"
    assert graph.spin_until(lambda: graph.chunks)
