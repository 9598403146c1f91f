"""recorder: an episode becomes a readable MCAP bag and a stored Episode; a SIGKILL loses only the open segment."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from inril_core.episodes.store import EpisodeStore
from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces
from inril_ros.convert import actions_to_trajectory, joint_state, json_msg, pose_array, pose_stamped
from inril_ros.recorder import Recorder, bag_segments, build_episode, read_bag, topic_qos
from inril_sim.layout import flat_observation
from inril_sim.rotations import xyzw_to_wxyz
from ros_helpers import spin_until, stop_process

AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # the fast tasks' action components

DT = 0.05
QUAT = np.array([0.0, 0.0, 0.0, 1.0])  # xyzw identity


def _observation_messages(k: int) -> dict[str, object]:
    """Step ``k``'s eef pose, gripper and object pose, all stamped ``k * DT`` as sim_bridge stamps them."""
    t = k * DT
    return {
        interfaces.EEF_POSE: pose_stamped([0.1 * k, 0.0, 1.0], QUAT, t, "base"),
        interfaces.GRIPPER_STATE: joint_state(["finger_l", "finger_r"], [0.02, -0.02], t),
        interfaces.OBJECT_POSES: pose_array([([0.0, 0.1, 0.8], QUAT)], t, "base"),
    }


def _episode(episode: int, state: str, **fields) -> String:
    return String(data=json.dumps({"episode": episode, "state": state, **fields}))


class Probe:
    """Publishes what sim_bridge, the executor and the episode manager would."""

    def __init__(self, context, executor: SingleThreadedExecutor) -> None:
        self.node = Node("probe", context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.pubs = {topic: self.node.create_publisher(msg_type, topic, interfaces.STREAM) for topic, msg_type in (
            (interfaces.EEF_POSE, PoseStamped), (interfaces.GRIPPER_STATE, JointState),
            (interfaces.OBJECT_POSES, PoseArray), (interfaces.COMMAND, JointTrajectory),
            (interfaces.STEP_INFO, String))}
        self.pubs[interfaces.EPISODE] = self.node.create_publisher(String, interfaces.EPISODE,
                                                                   interfaces.EPISODE_RECORDS)

    def wait_matched(self, topics, timeout_s: float) -> None:
        matched = spin_until(self.executor, lambda: all(self.pubs[t].get_subscription_count() for t in topics),
                             timeout_s)
        assert matched, "the recorder never subscribed to the probe's topics"
        spin_until(self.executor, lambda: False, 0.5)  # let the reader side finish matching too

    def publish(self, topic: str, msg) -> None:
        self.pubs[topic].publish(msg)


@pytest.fixture
def executor(ros_context):
    executor = SingleThreadedExecutor(context=ros_context)
    yield executor
    for node in executor.get_nodes():
        node.destroy_node()
    executor.shutdown()


def _recorder(context, executor, run_dir: Path) -> Recorder:
    recorder = Recorder(context=context, parameter_overrides=[
        Parameter("run_dir", value=str(run_dir)), Parameter("end_grace_s", value=0.1)])
    executor.add_node(recorder)
    return recorder


def test_ended_episode_is_a_readable_bag_and_a_stored_episode(ros_context, executor, tmp_path: Path) -> None:
    _recorder(ros_context, executor, tmp_path)
    probe = Probe(ros_context, executor)
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    bag = tmp_path / "bags" / "episode_000007"

    probe.publish(interfaces.EPISODE, _episode(7, "running", seed=3, policy_version=2))
    assert spin_until(executor, bag.exists, 10.0), "the running record did not open the episode's bag"
    published: dict[str, list] = {interfaces.EEF_POSE: [], interfaces.COMMAND: []}
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 7))
    for k in range(5):
        for topic, msg in _observation_messages(k).items():
            probe.publish(topic, msg)
        command = actions_to_trajectory(actions[k:k + 1], k * DT, DT, AXIS_ANGLE)
        probe.publish(interfaces.COMMAND, command)
        probe.publish(interfaces.STEP_INFO, json_msg({"stamp": (k + 1) * DT, "step": k + 1,
                                                      "reward": float(k == 4), "success": k == 4}))
        published[interfaces.EEF_POSE].append(_observation_messages(k)[interfaces.EEF_POSE])
        published[interfaces.COMMAND].append(command)
        spin_until(executor, lambda: False, 0.05)
    probe.publish(interfaces.EPISODE, _episode(7, "ended", outcome="success", length=5))
    store = EpisodeStore(tmp_path / "episodes")
    assert spin_until(executor, lambda: len(store) == 1, 15.0), "the ended episode did not reach the store"

    recorded = read_bag(bag)
    for topic, sent in published.items():
        assert [msg for t, _, msg in recorded if t == topic] == sent, f"{topic} differs between bus and bag"
    states = [json.loads(msg.data)["state"] for t, _, msg in recorded if t == interfaces.EPISODE]
    assert states == ["running", "ended"]

    episode = store[0]
    assert len(episode) == 5
    np.testing.assert_allclose(episode.actions, actions, rtol=1e-6)
    np.testing.assert_array_equal(episode.rewards, [0, 0, 0, 0, 1])
    expected_obs = flat_observation("lift", np.array([0.0, 0.1, 0.8]), xyzw_to_wxyz(QUAT), np.array([0.3, 0.0, 1.0]),
                                    xyzw_to_wxyz(QUAT), np.array([0.02, -0.02]))
    np.testing.assert_allclose(episode.observations[3], expected_obs, rtol=1e-6)
    assert {k: episode.metadata[k] for k in ("success", "seed", "policy_version", "episode", "source")} == {
        "success": True, "seed": 3, "policy_version": 2, "episode": 7, "source": "policy"}


def test_messages_of_the_next_episode_that_come_before_its_record_go_to_its_bag(ros_context, executor,
                                                                                tmp_path: Path) -> None:
    """The sim publishes a reset's observation before it answers the reset, and lock-step runs on: the next
    episode's first messages come before its running record, during the ended episode's end grace."""
    _recorder(ros_context, executor, tmp_path)
    probe = Probe(ros_context, executor)
    probe.wait_matched(probe.pubs, timeout_s=10.0)

    def step(k: int) -> None:  # command for observation k, then the step_info and observation it produces
        probe.publish(interfaces.COMMAND, actions_to_trajectory(np.full((1, 7), k / 10), k * DT, DT, AXIS_ANGLE))
        probe.publish(interfaces.STEP_INFO, json_msg({"stamp": (k + 1) * DT, "reward": float(k)}))
        for topic, msg in _observation_messages(k + 1).items():
            probe.publish(topic, msg)

    probe.publish(interfaces.EPISODE, _episode(1, "running", start_stamp=0.0))
    spin_until(executor, lambda: False, 0.2)
    for topic, msg in _observation_messages(0).items():
        probe.publish(topic, msg)
    step(0)
    step(1)  # episode 1 ends with observation 2 ...
    probe.publish(interfaces.EPISODE, _episode(1, "ended", outcome="timeout", length=2, end_stamp=2 * DT))
    for topic, msg in _observation_messages(3).items():  # ... episode 2 starts at observation 3
        probe.publish(topic, msg)
    step(3)
    step(4)
    spin_until(executor, lambda: False, 0.05)  # still inside episode 1's end grace (0.1 s)
    probe.publish(interfaces.EPISODE, _episode(2, "running", start_stamp=3 * DT))
    spin_until(executor, lambda: False, 0.2)
    probe.publish(interfaces.EPISODE, _episode(2, "ended", outcome="timeout", length=2, end_stamp=5 * DT))
    store = EpisodeStore(tmp_path / "episodes")
    assert spin_until(executor, lambda: len(store) == 2, 15.0), (tmp_path / "recorder.csv").read_text()

    first, second = store[0], store[1]
    np.testing.assert_allclose(first.actions[:, 0], [0.0, 0.1], rtol=1e-6)
    np.testing.assert_allclose(second.actions[:, 0], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(first.rewards, [0, 1])  # not episode 2's rewards added to the last step
    np.testing.assert_array_equal(second.rewards, [3, 4])
    stamps = {t: [round((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9) / DT) for topic, _, msg in
                  read_bag(tmp_path / "bags" / name) if topic == interfaces.EEF_POSE]
              for t, name in ((1, "episode_000001"), (2, "episode_000002"))}
    assert stamps == {1: [0, 1, 2], 2: [3, 4, 5]}


def test_reused_episode_id_gets_its_own_bag(ros_context, executor, tmp_path: Path) -> None:
    _recorder(ros_context, executor, tmp_path)
    probe = Probe(ros_context, executor)
    probe.wait_matched([interfaces.EPISODE], timeout_s=10.0)
    first, second = tmp_path / "bags" / "episode_000001", tmp_path / "bags" / "episode_000001_1"
    probe.publish(interfaces.EPISODE, _episode(1, "running", seed=1))
    assert spin_until(executor, first.exists, 10.0)
    probe.publish(interfaces.EPISODE, _episode(1, "ended", outcome="timeout"))
    assert spin_until(executor, lambda: (tmp_path / "recorder.csv").exists(), 10.0), "the first episode never closed"

    probe.publish(interfaces.EPISODE, _episode(1, "running", seed=2))
    assert spin_until(executor, second.exists, 10.0), "a new episode with a used id did not get its own bag"
    assert json.loads((first / "episode.json").read_text())["state"] == "ended"
    assert json.loads((second / "episode.json").read_text())["seed"] == 2


def test_a_stored_episode_then_one_not_stored_are_both_logged(ros_context, executor, tmp_path: Path) -> None:
    """Closing an episode logs at info when it is stored and at warning when not, one after the other."""
    _recorder(ros_context, executor, tmp_path)
    probe = Probe(ros_context, executor)
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    probe.publish(interfaces.EPISODE, _episode(1, "running", start_stamp=0.0))
    spin_until(executor, lambda: False, 0.2)
    for topic, msg in _observation_messages(0).items():
        probe.publish(topic, msg)
    probe.publish(interfaces.COMMAND, actions_to_trajectory(np.zeros((1, 7)), 0.0, DT, AXIS_ANGLE))
    spin_until(executor, lambda: False, 0.2)
    probe.publish(interfaces.EPISODE, _episode(1, "ended", outcome="timeout", end_stamp=DT))
    spin_until(executor, lambda: False, 0.5)
    probe.publish(interfaces.EPISODE, _episode(2, "running", start_stamp=2 * DT))
    spin_until(executor, lambda: False, 0.2)
    probe.publish(interfaces.EPISODE, _episode(2, "ended", outcome="timeout", end_stamp=2 * DT))  # no step
    assert spin_until(executor, lambda: (tmp_path / "recorder.csv").exists()
                      and (tmp_path / "recorder.csv").read_text().count("\n") == 3, 10.0)
    notes = (tmp_path / "recorder.csv").read_text()
    assert "stored as" in notes and "not stored: no steps" in notes


def test_stop_during_the_end_grace_stores_the_ended_episode(ros_context, executor, tmp_path: Path) -> None:
    """A graph stopped right after its last episode ended (max_episodes) must not lose that one."""
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("run_dir", value=str(tmp_path)), Parameter("end_grace_s", value=30.0)])
    executor.add_node(recorder)
    probe = Probe(ros_context, executor)
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    probe.publish(interfaces.EPISODE, _episode(5, "running", start_stamp=0.0))
    spin_until(executor, lambda: False, 0.2)
    for topic, msg in _observation_messages(0).items():
        probe.publish(topic, msg)
    probe.publish(interfaces.COMMAND, actions_to_trajectory(np.zeros((1, 7)), 0.0, DT, AXIS_ANGLE))
    probe.publish(interfaces.EPISODE, _episode(5, "ended", outcome="success", end_stamp=DT))
    spin_until(executor, lambda: False, 0.5)
    assert len(EpisodeStore(tmp_path / "episodes")) == 0  # still inside the 30 s grace
    executor.remove_node(recorder)
    recorder.destroy_node()
    assert len(EpisodeStore(tmp_path / "episodes")) == 1


def test_restart_mid_episode_resumes_its_bag_but_does_not_store_it(ros_context, executor, tmp_path: Path) -> None:
    recorder = _recorder(ros_context, executor, tmp_path)
    probe = Probe(ros_context, executor)
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    bag = tmp_path / "bags" / "episode_000004"
    probe.publish(interfaces.EPISODE, _episode(4, "running"))
    assert spin_until(executor, bag.exists, 10.0)
    executor.remove_node(recorder)
    recorder.destroy_node()  # a clean stop closes the open segment

    _recorder(ros_context, executor, tmp_path)  # receives the latched running record again
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    for topic, msg in _observation_messages(0).items():
        probe.publish(topic, msg)
    probe.publish(interfaces.COMMAND, actions_to_trajectory(np.zeros((1, 7)), 0.0, DT, AXIS_ANGLE))
    spin_until(executor, lambda: False, 0.3)
    probe.publish(interfaces.EPISODE, _episode(4, "ended", outcome="success"))
    assert spin_until(executor, lambda: (tmp_path / "recorder.csv").exists(), 10.0), "the episode never closed"

    assert [p.name for p in bag_segments(bag)[0]] == ["segment_000", "segment_001"]
    assert len(EpisodeStore(tmp_path / "episodes")) == 0
    assert "incomplete" in (tmp_path / "recorder.csv").read_text()


def test_a_recorder_that_starts_late_opens_only_the_running_episode(ros_context, executor, tmp_path: Path) -> None:
    """The episode manager keeps its last 100 records for late joiners; those of episodes that ended before the
    recorder started must not each open (and close) a bag."""
    probe = Probe(ros_context, executor)
    for record in (_episode(1, "running"), _episode(1, "ended", outcome="timeout"), _episode(2, "running")):
        probe.publish(interfaces.EPISODE, record)
    _recorder(ros_context, executor, tmp_path)
    probe.wait_matched(probe.pubs, timeout_s=10.0)
    running = tmp_path / "bags" / "episode_000002"
    assert spin_until(executor, running.exists, 10.0), "the running episode was not opened"
    spin_until(executor, lambda: False, 0.5)
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == ["episode_000002"]
    assert not (tmp_path / "recorder.csv").exists()  # nothing was closed


def test_the_newest_replayed_record_wins_even_when_the_history_arrives_one_record_per_callback(
        ros_context, executor, tmp_path: Path) -> None:
    """What failed in CI: the latched subscription's callback ran on the first replayed record (an episode that had
    ended since) before the rest of the history had arrived. Here each record reaches the callback separately."""
    recorder = _recorder(ros_context, executor, tmp_path)
    for record in (_episode(5, "running"), _episode(5, "ended", outcome="success"), _episode(6, "running")):
        recorder._on_current_record(serialize_message(record))
        spin_until(executor, lambda: False, 0.05)
    assert spin_until(executor, (tmp_path / "bags" / "episode_000006").exists, 10.0), "the running episode was not opened"
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == ["episode_000006"]


def test_reward_of_a_step_is_the_step_info_the_command_caused() -> None:
    messages = []
    for k in range(3):
        messages += [(topic, 0, msg) for topic, msg in _observation_messages(k).items()]
        messages.append((interfaces.COMMAND, 0, actions_to_trajectory(np.full((1, 7), k / 10), k * DT, DT, AXIS_ANGLE)))
        messages.append((interfaces.STEP_INFO, 0, json_msg({"stamp": (k + 1) * DT, "reward": 10.0 ** k})))
    messages.append((interfaces.STEP_INFO, 0, String(data="not json")))
    episode = build_episode(messages, "lift", {})
    np.testing.assert_array_equal(episode.rewards, [1, 10, 100])
    np.testing.assert_allclose(episode.actions[:, 0], [0.0, 0.1, 0.2], rtol=1e-6)
    assert episode.metadata["dropped_messages"] == 1


def test_command_answering_the_final_observation_is_not_a_step() -> None:
    """The sim ends the episode at its final observation (end_stamp) and ignores the command answering it."""
    messages = []
    for k in range(3):
        messages += [(topic, 0, msg) for topic, msg in _observation_messages(k).items()]
        messages.append((interfaces.COMMAND, 0, actions_to_trajectory(np.full((1, 7), k / 10), k * DT, DT, AXIS_ANGLE)))
    episode = build_episode(messages, "lift", {}, end_ns=int(round(2 * DT * 1e9)))
    np.testing.assert_allclose(episode.actions[:, 0], [0.0, 0.1], rtol=1e-6)


def test_episode_without_commands_has_no_steps() -> None:
    messages = [(topic, 0, msg) for topic, msg in _observation_messages(0).items()]
    with pytest.raises(ValueError, match="no steps: 0 commands, 1 complete observations"):
        build_episode(messages, "lift", {})


def test_sigkill_mid_episode_leaves_the_closed_segments_readable(ros_context, executor, ros_env, tmp_path) -> None:
    log = (tmp_path / "recorder.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "inril_ros.recorder", "--ros-args", "-p", f"run_dir:={tmp_path}",
                             "-p", "segment_s:=1.0"], env=ros_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = Probe(ros_context, executor)
        probe.wait_matched([interfaces.EEF_POSE, interfaces.EPISODE], timeout_s=30.0)
        bag = tmp_path / "bags" / "episode_000001"
        probe.publish(interfaces.EPISODE, _episode(1, "running"))
        assert spin_until(executor, bag.exists, 10.0), "the recorder process did not open the episode's bag"

        sent = 0
        deadline = time.monotonic() + 30.0
        # publish at ~20 Hz until two segments are closed and a third is open, then kill without warning
        while time.monotonic() < deadline:
            closed, unclosed = bag_segments(bag)
            if len(closed) >= 2 and unclosed:
                break
            probe.publish(interfaces.EEF_POSE, _observation_messages(sent)[interfaces.EEF_POSE])
            sent += 1
            spin_until(executor, lambda: False, 0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop_process(proc)
        log.close()

    closed, unclosed = bag_segments(bag)
    assert len(closed) >= 2 and unclosed, f"closed {closed}, unclosed {unclosed}: the kill did not land mid-segment"
    steps = [round(msg.header.stamp.sec / DT + msg.header.stamp.nanosec * 1e-9 / DT)
             for topic, _, msg in read_bag(bag) if topic == interfaces.EEF_POSE]
    assert steps and steps == list(range(len(steps))), f"closed segments miss messages: {steps} of {sent} sent"
    lost = sent - len(steps)
    assert 0 < lost <= 1.0 * 20 + 5, f"{lost} of {sent} messages lost: more than the open 1 s segment holds"


def test_params_file_configures_the_node(ros_context, tmp_path) -> None:
    params = Path(__file__).resolve().parents[2] / "config" / "nodes" / "recorder.yaml"
    recorder = Recorder(context=ros_context, cli_args=["--ros-args", "--params-file", str(params),
                                                       "-p", f"run_dir:={tmp_path}"])
    try:
        assert recorder.get_parameter("topics").value[0] == interfaces.JOINT_STATES
        assert recorder.get_parameter("segment_s").value == 5.0
    finally:
        recorder.destroy_node()


def test_recorder_without_run_dir_refuses_to_start(ros_context) -> None:
    with pytest.raises(ValueError, match="run_dir is empty"):
        Recorder(context=ros_context)


def test_robot_state_is_recorded_best_effort_on_the_robot_profile() -> None:
    """A reliable recorder would never match franka's best-effort pose: robot state follows robot_state_qos."""
    for topic in interfaces.ROBOT_STATE_TOPICS:
        assert topic_qos(topic, interfaces.LATEST_BEST_EFFORT).reliability == ReliabilityPolicy.BEST_EFFORT
        assert topic_qos(topic).reliability == ReliabilityPolicy.RELIABLE
    assert topic_qos(interfaces.OBJECT_POSES, interfaces.LATEST_BEST_EFFORT).reliability == ReliabilityPolicy.RELIABLE
