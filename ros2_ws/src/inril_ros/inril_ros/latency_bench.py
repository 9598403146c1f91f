"""The graph latency benchmark (``inril bench latency``): what the node graph costs in time, between real processes.

Five measurements, written with the machine's facts to one Markdown page (docs/benchmarks.md):

1. observation -> chunk latency of ``policy_server`` (CPU, and CUDA where torch sees a GPU);
2. period jitter of ``action_executor`` in real-time mode at 10 Hz;
3. camera images between two processes, default Fast DDS transports vs the graph's profile;
4. learner updates per second inside the graph vs the same ``LiveLearner`` offline;
5. checkpoint announcement -> first chunk acted with the new weights.

Why processes everywhere: serialisation, discovery and the DDS transport (shared memory or UDP) are part of every
latency a robot sees, so each node runs as its own process from its installed console script and params file,
in a ROS domain of its own with localhost discovery and the graph's Fast DDS profile, as ``inril sim`` runs it.
The measuring side runs as "role" processes of this module (``python -m inril_ros.latency_bench <role> <spec>``),
not in this process: Fast DDS reads its XML profile once per process, so only separate processes can compare
transports, and this process stays free of ROS. Roles exchange their results as JSON files; they import no torch,
so they start in a fraction of a node's time. Every process started is stopped in a ``finally`` (SIGINT, SIGTERM,
SIGKILL) and dies with this process if it is killed.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from geometry_msgs.msg import PoseArray, PoseStamped
from lifecycle_msgs.msg import Transition as LifecycleTransition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from inril_core.config import config_dir
from inril_core.safety import ACTION_NAMES
from inril_ros import interfaces as ifc
from inril_ros.convert import (
    actions_to_trajectory,
    joint_state,
    json_msg,
    json_payload,
    pose_array,
    pose_stamped,
)
from inril_ros.supervisor import die_with_parent, claim_domain_id, clean_fastdds_shared_memory, log_tail

DEFAULT_OUT = Path("docs/benchmarks.md")
DEFAULT_PRETRAINED = Path("runs/pretrain/lift")  # `inril pretrain task=lift`; a tiny untrained policy otherwise
TASK = "lift"
AXIS_ANGLE = ACTION_NAMES["axis_angle"]  # lift's action components
POLICY_RATE_HZ = 20.0     # lift's control rate: observations reach the policy server at this pace
EXECUTOR_RATE_HZ = 10.0
IMAGE_RATE_HZ = 30.0
IMAGE_SIZES = ((640, 480), (1280, 720))
T0_S = 10.0               # sim-time stamp of the policy driver's first observation
LOADED_FRACTION = 0.5     # a 1-min load average above this share of the CPUs marks the machine as busy
STOP_GRACE_S = 5.0
ROLE_TIMEOUT_S = 180.0    # any single wait of a role: configure on a loaded machine, discovery, one update
# the observation the policy driver publishes at every step: lift's gripper above the cube, inside the workspace
EEF_POS, EEF_QUAT = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 0.0)   # quaternions xyzw
FINGERS = (0.02, -0.02)
CUBE_POS, CUBE_QUAT = (0.0, 0.0, 0.82), (0.0, 0.0, 0.0, 1.0)
DEMOS = (5, 40)           # synthetic demo episodes x steps for the learner's imitation updates
# a policy the benchmark makes when there is no pre-trained one: small and untrained (latency does not need skill)
TINY_POLICY = ("policy.n_steps=4", "policy.denoiser.hidden_dims=[32]", "policy.denoiser.time_dim=8",
               "rl.ft_denoising_steps=2", "rl.critic_hidden=[32]")


class BenchError(RuntimeError):
    """A measurement could not be made (a node failed to start, a message never came); says which and shows logs."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much of each measurement a run makes."""

    chunks: int               # measured obs -> chunk samples per device
    warmup_chunks: int        # first chunks left out (torch warm-up, discovery)
    swaps: int                # checkpoint swaps per device
    jitter_s: float           # executor run length
    frames: int               # images per size and transport
    updates: int              # learner updates, offline and in the graph
    episodes_per_update: int
    chunks_per_episode: int
    learner_overrides: tuple[str, ...] = ()


# quick: 2 episodes x 4 chunks per update = 16 items with the tiny policy's 2 fine-tuned steps (80 with a real
# policy's 10), so a 16-item minibatch makes at least one RL step either way (a larger one made none on a fresh clone)
QUICK = Sizes(chunks=10, warmup_chunks=2, swaps=2, jitter_s=3.0, frames=30, updates=2, episodes_per_update=2,
              chunks_per_episode=4, learner_overrides=("rl.update_epochs=1", "rl.minibatch_size=16"))
# full: 4 episodes of 100 env steps (25 chunks) per update, the config's own update: 10 epochs of one minibatch
# holding all 25 * 4 chunks * 10 fine-tuned denoising steps = 1000 items (fewer than the config's 4096), and an IL
# injection every 30 RL steps (m = 30)
FULL = Sizes(chunks=150, warmup_chunks=5, swaps=5, jitter_s=60.0, frames=300, updates=5, episodes_per_update=4,
             chunks_per_episode=25)


# ================================================================================================ statistics


def _stats_ms(values_s: Sequence[float]) -> dict[str, Any]:
    """n, p50, p99, max in milliseconds (None when there are no values)."""
    if not len(values_s):
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(values_s, dtype=np.float64) * 1e3
    return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# ================================================================================================ processes


@dataclasses.dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    result: Path | None = None  # a role's result file


def _stop(popen: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGINT (rclpy's spin ignores SIGTERM), then SIGTERM, then SIGKILL; True when it had to be killed."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if popen.poll() is not None:
            return False
        popen.send_signal(sig)
        try:
            popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        return sig == signal.SIGKILL
    popen.wait()
    return True


class _Processes:
    """Every process of one benchmark run: started with the graph's environment, logged, and always stopped."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.bin_dir = Path(sys.executable).parent
        self._procs: list[_Proc] = []
        self._killed = False

    def _start(self, name: str, command: list[str], env: dict[str, str] | None, result: Path | None = None) -> _Proc:
        name = f"{len(self._procs):02d}_{name}"
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            # own session: a terminal's Ctrl-C reaches only this process, whose finally stops the children in order
            popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env or self.env, start_new_session=True, preexec_fn=die_with_parent)
        proc = _Proc(name, popen, log, result)
        self._procs.append(proc)
        return proc

    def node(self, executable: str, parameters: dict[str, Any]) -> _Proc:
        """A graph node from its console script, its params file, then ``parameters`` (a second params file)."""
        path = self.bin_dir / executable
        if not os.access(path, os.X_OK):
            raise BenchError(f"node executable {path} not found: install the node package into this environment "
                             "(pip install -e ros2_ws/src/inril_ros)")
        overrides = self.work / f"{len(self._procs):02d}_{executable}.params.yaml"
        overrides.write_text(yaml.safe_dump({f"{ifc.NAMESPACE}/{executable}": {"ros__parameters": parameters}}))
        params_file = config_dir() / "nodes" / f"{executable}.yaml"
        return self._start(executable, [str(path), "--ros-args", "--params-file", str(params_file),
                                        "--params-file", str(overrides)], None)

    def role(self, role: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> _Proc:
        """A measuring process of this module; it writes its result as JSON to ``spec['result']``."""
        stem = self.work / f"{len(self._procs):02d}_{role}"
        result = stem.with_suffix(".result.json")
        spec_path = stem.with_suffix(".spec.json")
        spec_path.write_text(json.dumps({**spec, "result": str(result)}))
        return self._start(role, [sys.executable, "-m", __name__, role, str(spec_path)], env, result)

    def result(self, proc: _Proc, timeout_s: float, watch: Sequence[_Proc] = ()) -> dict[str, Any]:
        """Wait for a role's result; a role that fails or a watched node that exits early raise with their logs."""
        deadline = time.monotonic() + timeout_s
        while proc.popen.poll() is None:
            for node in watch:
                if node.popen.poll() is not None:
                    raise BenchError(self._failure(node, f"exited with code {node.popen.returncode} while "
                                                         f"{proc.name} measured", proc))
            if time.monotonic() > deadline:
                raise BenchError(self._failure(proc, f"did not finish within {timeout_s:.0f} s", *watch))
            time.sleep(0.05)
        if proc.popen.returncode != 0 or proc.result is None or not proc.result.is_file():
            raise BenchError(self._failure(proc, f"failed (exit code {proc.popen.returncode})", *watch))
        return json.loads(proc.result.read_text())

    def _failure(self, proc: _Proc, what: str, *others: _Proc) -> str:
        lines = [f"{proc.name} {what}; last lines of {proc.log}:", log_tail(proc.log)]
        for other in others:
            lines += [f"last lines of {other.log}:", log_tail(other.log)]
        return "\n".join(lines)

    def stop(self, proc: _Proc) -> None:
        self._killed |= _stop(proc.popen)

    def stop_all(self) -> None:
        """Stop every process still running (newest first: drivers before the nodes they talk to)."""
        for proc in reversed(self._procs):
            self.stop(proc)
        if self._killed:  # hard kills leave Fast DDS shared-memory segments in /dev/shm
            clean_fastdds_shared_memory()


def _graph_env(domain_id: int, work: Path, dds_profile: Path | None) -> dict[str, str]:
    """The environment ``inril sim`` gives its nodes: one domain, localhost discovery, the graph's DDS profile
    (``dds_profile`` None = Fast DDS's default transports)."""
    env = dict(os.environ)
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS"):
        env.pop(key, None)
    env.update({"ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_LOG_DIR": str(work / "logs" / "ros"), "RCUTILS_COLORIZED_OUTPUT": "0",
                "PYTHONUNBUFFERED": "1"})
    if dds_profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(dds_profile)
    return env


# ================================================================================================ the run


def run(out: Path = DEFAULT_OUT, quick: bool = False, progress: Callable[[str], Any] = print,
        policy_dir: Path | None = None) -> dict[str, Any]:
    """Measure everything, write the Markdown page ``out``, return the numbers.

    ``quick``: a few samples of each (a smoke run, under a minute); the full run takes a few minutes.
    ``policy_dir``: pre-training run of the lift policy to serve; default runs/pretrain/lift when it has a
    checkpoint, else a tiny untrained policy made here.
    """
    import torch

    from inril_core.checkpoint import load_latest

    sizes = QUICK if quick else FULL
    command = "inril bench latency" + (" --quick" if quick else "") + (f" --out {out}" if out != DEFAULT_OUT else "")
    dds_profile: Path | None = config_dir() / "dds" / "fastdds_inril.xml"
    if not dds_profile.is_file():
        dds_profile = None
    policy_dir = Path(policy_dir or DEFAULT_PRETRAINED)
    cuda = torch.cuda.is_available()
    facts = {
        "command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_device": f"cuda: {torch.cuda.get_device_name(0)}" if cuda else "cpu: no GPU on this machine",
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "dds_profile": str(dds_profile) if dds_profile else None,
    }
    started = time.monotonic()

    def say(message: str) -> None:
        progress(f"{time.monotonic() - started:5.1f} s  {message}")

    with tempfile.TemporaryDirectory(prefix="inril-latency-bench-") as tmp:
        work = Path(tmp)
        domain_id = claim_domain_id()
        procs = _Processes(work, _graph_env(domain_id, work, dds_profile))
        try:
            if load_latest(policy_dir) is not None:
                policy = {"dir": str(policy_dir), "overrides": [],
                          "source": f"pre-trained lift policy {policy_dir}"}
            else:
                policy = {"dir": str(_make_tiny_policy(work / "tiny")), "overrides": list(TINY_POLICY),
                          "source": f"tiny untrained lift policy ({policy_dir} has no checkpoint)"}
            say(f"latency bench ({'quick' if quick else 'full'}): {policy['source']}, ROS domain {domain_id}")
            devices = ["cpu"] + (["cuda"] if cuda else [])
            policy_results = {}
            for device in devices:
                say(f"[1+5] obs -> chunk latency and weight swaps on {device}")
                policy_results[device] = _policy_part(procs, work, policy, device, sizes)
            say(f"[2] executor jitter at {EXECUTOR_RATE_HZ:g} Hz for {sizes.jitter_s:g} s")
            jitter = _executor_part(procs, work, sizes)
            say("[3] images between processes")
            images = _image_part(procs, work, domain_id, dds_profile, sizes)
            say("[4] learner updates: offline, then in the graph")
            learner = _learner_part(procs, work, policy, sizes)
        finally:
            procs.stop_all()
    facts["load_after"] = [round(x, 2) for x in os.getloadavg()]
    facts["seconds"] = round(time.monotonic() - started, 1)
    results = {
        "machine": facts, "quick": quick, "policy": policy["source"],
        "obs_to_chunk": {d: r["latency"] for d, r in policy_results.items()},
        "weight_swap": {d: r["swap"] for d, r in policy_results.items()},
        "executor_jitter": jitter, "images": images, "learner": learner,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results))
    progress(f"wrote {out} ({facts['seconds']:.0f} s)")
    return results


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _make_tiny_policy(root: Path) -> Path:
    """An untrained lift policy with fitted normalisers in ``root`` (a checkpoint the nodes can load)."""
    from inril_core.agent import DiffusionAgent
    from inril_core.checkpoint import save_checkpoint
    from inril_core.config import load_config

    cfg = load_config([f"task={TASK}", *TINY_POLICY])
    rng = np.random.default_rng(0)
    agent = DiffusionAgent.from_config(cfg)
    agent.obs_norm.fit(rng.uniform(-1, 1, (64, cfg.env.obs_dim)))
    agent.act_norm.fit(rng.uniform(-1, 1, (64, cfg.env.act_dim)))
    save_checkpoint(root, 0, agent.tensors(), {})
    return root


def _agent_and_algo(policy: dict, overrides: Sequence[str]):
    """The served policy as the nodes build it: the checkpoint's agent and DPPO around it (CPU)."""
    from inril_core.agent import DiffusionAgent
    from inril_core.checkpoint import load_latest
    from inril_core.config import load_config
    from inril_core.rl.dppo import DPPO

    cfg = load_config([f"task={TASK}", *policy["overrides"], *overrides])
    agent = DiffusionAgent.from_tensors(load_latest(policy["dir"])[1])
    return cfg, agent, DPPO(agent, cfg.rl)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise BenchError(f"{path} was not written: the node did not log (see the logs above)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ 1 + 5: policy


def _policy_part(procs: _Processes, work: Path, policy: dict, device: str, sizes: Sizes) -> dict[str, Any]:
    """One policy server process on ``device`` fed by one driver: latency samples, then checkpoint swaps."""
    from inril_core.checkpoint import WEIGHTS, save_checkpoint
    from inril_core.checkpoint import file_sha256

    run_dir = work / f"policy_{device}"
    _, agent, algo = _agent_and_algo(policy, [])
    tensors = {**agent.tensors(), **algo.tensors()}  # what a learner checkpoint holds
    swaps = []
    for version in range(1, sizes.swaps + 1):
        weights = save_checkpoint(run_dir / "swaps", version, tensors, {}, keep=sizes.swaps) / WEIGHTS
        swaps.append({"version": version, "path": str(weights.resolve()), "sha256": file_sha256(weights),
                      "env_steps": 0})
    server = procs.node("policy_server", {
        "task": TASK, "policy_dir": str(policy["dir"]), "config_overrides": [f"task={TASK}", *policy["overrides"]],
        "device": device, "control_rate_hz": POLICY_RATE_HZ, "run_dir": str(run_dir)})
    chunk_period_s = agent.act_steps / POLICY_RATE_HZ
    driver = procs.role("policy_driver", {"control_rate_hz": POLICY_RATE_HZ, "warmup_chunks": sizes.warmup_chunks,
                                          "chunks": sizes.chunks, "swaps": swaps, "chunk_period_s": chunk_period_s})
    expected_s = (sizes.warmup_chunks + sizes.chunks + 3 * sizes.swaps) * chunk_period_s
    result = procs.result(driver, 2 * ROLE_TIMEOUT_S + 3 * expected_s, watch=[server])
    procs.stop(server)

    # stamps come back from the server's CSVs as text seconds: matched to the microsecond
    measured = {_us(stamp) for stamp in result["measured_stamps"]}
    node_latency = [float(row["latency_s"]) for row in _read_csv(run_dir / "policy_latency.csv")
                    if _us(float(row["stamp"]) * 1e9) in measured]
    latency = {"device": device, "configure_s": result["configure_s"], **_stats_ms(result["latencies_s"]),
               "node": _stats_ms(node_latency)}
    # the server logs the stamp of the first chunk each version decided: that chunk's arrival ends the swap
    first_chunk = {int(row["version"]): _us(float(row["stamp"]) * 1e9)
                   for row in _read_csv(run_dir / "policy_versions.csv")}
    arrivals = {_us(stamp): arrival for stamp, arrival in result["chunks"]}
    sent = {_us(stamp): at for stamp, at in result["sent"]}
    swap_s, boundary_s = [], []
    for version, announced in result["announced"].items():
        stamp = first_chunk.get(int(version))
        if stamp in arrivals:
            swap_s.append(arrivals[stamp] - announced)
            boundary_s.append(arrivals[stamp] - sent[stamp])  # the deciding observation -> the new chunk
    swap = {"device": device, "swaps": len(swaps), **_stats_ms(swap_s), "boundary": _stats_ms(boundary_s),
            "chunk_period_ms": 1e3 * chunk_period_s}
    return {"latency": latency, "swap": swap}


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _us(ns: float) -> int:
    return int(round(ns / 1000))


# ------------------------------------------------------------------------------------------------ 2: executor


def _executor_part(procs: _Processes, work: Path, sizes: Sizes) -> dict[str, Any]:
    run_dir = work / "executor"
    executor = procs.node("action_executor", {
        "mode": "realtime", "control_rate_hz": EXECUTOR_RATE_HZ, "task": TASK, "run_dir": str(run_dir),
        # the driver's poses come at the same 10 Hz: allow 2.5 periods so points are sent, not only holds
        "stale_after_s": 2.5 / EXECUTOR_RATE_HZ})
    driver = procs.role("executor_driver", {"rate_hz": EXECUTOR_RATE_HZ, "duration_s": sizes.jitter_s})
    result = procs.result(driver, ROLE_TIMEOUT_S + 2 * sizes.jitter_s, watch=[executor])
    procs.stop(executor)
    rows = [row for row in _read_csv(run_dir / "executor.csv")
            if row["jitter_s"] and result["start_wall"] <= float(row["wall_time"]) <= result["end_wall"]]
    jitter = [float(row["jitter_s"]) for row in rows]
    return {"rate_hz": EXECUTOR_RATE_HZ, "duration_s": sizes.jitter_s, **_stats_ms(jitter),
            "abs_p99_ms": float(np.percentile(np.abs(jitter), 99) * 1e3) if jitter else None,
            "held_pct": 100.0 * sum(row["held"] == "1" for row in rows) / len(rows) if rows else None}


# ------------------------------------------------------------------------------------------------ 3: images


def _image_part(procs: _Processes, work: Path, domain_id: int, dds_profile: Path | None,
                sizes: Sizes) -> list[dict[str, Any]]:
    transports = [("default transports", None)] + ([("graph DDS profile", dds_profile)] if dds_profile else [])
    topics = [ifc.camera_image(f"bench_{w}x{h}") for w, h in IMAGE_SIZES]
    rows = []
    for label, profile in transports:
        env = _graph_env(domain_id, work, profile)
        stop_file = work / f"images_{len(rows)}.stop"
        sub = procs.role("image_sub", {"topics": topics, "stop_file": str(stop_file)}, env)
        pub = procs.role("image_pub", {"topics": topics, "sizes": IMAGE_SIZES, "frames": sizes.frames,
                                       "rate_hz": IMAGE_RATE_HZ}, env)
        sent = procs.result(pub, ROLE_TIMEOUT_S + 3 * len(topics) * sizes.frames / IMAGE_RATE_HZ, watch=[sub])
        time.sleep(1.0)  # frames still in flight
        stop_file.touch()
        received = procs.result(sub, ROLE_TIMEOUT_S)
        for topic, (w, h) in zip(topics, IMAGE_SIZES):
            frames = received["frames"][topic]  # [[index, latency_s], ...]
            delivered = len({index for index, _ in frames})
            rows.append({"transport": label, "size": f"{w}x{h}", "sent": sent["sent"][topic], "delivered": delivered,
                         "delivered_pct": 100.0 * delivered / max(sent["sent"][topic], 1),
                         **_stats_ms([latency for _, latency in frames])})
    return rows


# ------------------------------------------------------------------------------------------------ 4: learner


def _learner_part(procs: _Processes, work: Path, policy: dict, sizes: Sizes) -> dict[str, Any]:
    """The same update sequence on the same records: LiveLearner in this process, then the learner node."""
    from inril_core import transitions
    from inril_core.episodes.store import Episode, EpisodeStore
    from inril_core.live import LiveLearner

    shown = ["method=in-ril", "rl.critic_warmup_iters=0", *sizes.learner_overrides]  # actor + critic every update
    extra = [*shown, f"demos.path={work / 'demos'}"]
    cfg, agent, algo = _agent_and_algo(policy, extra)
    rng = np.random.default_rng(0)
    store = EpisodeStore(work / "demos")  # the IL half of IN-RIL needs demos; their content does not change the cost
    for _ in range(DEMOS[0]):
        store.append(Episode(rng.uniform(-1, 1, (DEMOS[1], cfg.env.obs_dim)),
                             rng.uniform(-1, 1, (DEMOS[1], cfg.env.act_dim)), np.zeros(DEMOS[1]),
                             {"task": TASK, "source": "scripted", "success": True}))
    episodes = []  # records acted by the served policy's own exploration, as the policy server makes them
    for i in range(sizes.episodes_per_update):
        n = sizes.chunks_per_episode
        obs = rng.uniform(-1, 1, (n + 1, cfg.env.obs_dim)).astype(np.float32)
        chunk, chain = algo.explore(agent.obs_tensor(obs[:-1]))
        actions = agent.to_env_actions(chunk)
        records = [transitions.Transition(0, i, c, 0.2 * c, obs[c], obs[c + 1], actions[c], chain[c].numpy(),
                                          last=c == n - 1) for c in range(n)]
        episodes.append({"records": [transitions.encode(t).hex() for t in records],
                         "outcome": "success" if i % 2 == 0 else "timeout", "length": n * agent.act_steps})

    offline, offline_update, offline_steps = [], [], []
    live = LiveLearner.open(cfg, work / "offline", policy["dir"], sizes.episodes_per_update)
    for update in range(sizes.updates):
        for record, ended in _update_batch(episodes, update):
            if record is not None:
                live.add(transitions.decode(record))
            else:
                live.add_episode_outcome(ended)
        start = time.perf_counter()
        offline_steps.append(live.update()["rl_steps"])
        updated = time.perf_counter()
        live.save(work / "offline")
        offline.append(time.perf_counter() - start)
        offline_update.append(updated - start)
    device = str(live.device)
    del live

    learner = procs.node("learner", {
        "config_overrides": [f"task={TASK}", *policy["overrides"], *extra], "policy_dir": str(policy["dir"]),
        "run_dir": str(work / "graph"),
        # the synthetic episodes are short: no env-step floor, the same batch as the offline learner above
        "episodes_per_update": sizes.episodes_per_update, "env_steps_per_update": 0, "device": ""})
    driver = procs.role("learner_driver", {"episodes": episodes, "updates": sizes.updates})
    result = procs.result(driver, ROLE_TIMEOUT_S * (2 + sizes.updates), watch=[learner])
    procs.stop(learner)
    graph, node_update = result["update_s"], result["node_update_s"]
    offline_s, graph_s = float(np.median(offline)), float(np.median(graph))
    return {"device": device, "updates": sizes.updates, "episodes_per_update": sizes.episodes_per_update,
            "chunks_per_update": sizes.episodes_per_update * sizes.chunks_per_episode,
            "overrides": [*policy["overrides"], *shown], "offline_s": offline, "offline_update_only_s": offline_update,
            "graph_s": graph, "graph_node_update_s": node_update,
            # cumulative RL optimiser steps after each update: the same work offline and in the graph
            "offline_rl_steps": offline_steps, "graph_rl_steps": result["rl_steps"],
            "offline_updates_per_s": 1.0 / offline_s, "graph_updates_per_s": 1.0 / graph_s,
            "ratio": offline_s / graph_s}


def _update_batch(episodes: list[dict], update: int):
    """(record bytes, None) ... then (None, ended record) per episode: update ``update``'s input, on-policy for
    version ``update`` (each update makes a new version, and the learner takes only records of its own)."""
    from inril_core import transitions

    n = len(episodes)
    for i, episode in enumerate(episodes):
        episode_id = update * n + i
        for hex_record in episode["records"]:
            t = transitions.decode(bytes.fromhex(hex_record))
            yield transitions.encode(dataclasses.replace(t, policy_version=update, episode=episode_id)), None
        yield None, {"episode": episode_id, "state": "ended", "outcome": episode["outcome"],
                     "length": episode["length"], "return": 1.0 if episode["outcome"] == "success" else 0.0,
                     "seed": episode_id, "policy_version": update}


# ================================================================================================ Markdown


def markdown(results: dict[str, Any]) -> str:
    """The benchmark page: how it was run, on what, then one section per measurement."""
    m = results["machine"]
    busy = m["load_before"][0] > LOADED_FRACTION * m["cpus"] or m["load_after"][0] > LOADED_FRACTION * m["cpus"]
    lines = [
        "# Graph latency benchmark",
        "",
        f"Written by `{m['command']}` (`inril_ros.latency_bench`; {m['seconds']:.0f} s). Every node runs as its own "
        "process from its console script and params file, in a ROS domain of its own with localhost discovery "
        "and the graph's Fast DDS profile (as `inril sim` runs them); the measuring drivers are separate processes "
        "too, so serialisation and transport are in every number. Wall-clock times on one machine."
        + (" **Quick mode: a few samples of each, a smoke test, not a measurement.**" if results["quick"] else ""),
        "",
        "| machine | |",
        "|---|---|",
        f"| date | {m['date']} |",
        f"| CPUs | {m['cpus']} ({m['cpu_model']}) |",
        f"| load average (1, 5, 15 min) before / after | {' '.join(map(str, m['load_before']))} / "
        f"{' '.join(map(str, m['load_after']))} |",
        f"| torch device | {m['torch_device']}; torch {m['torch']} |",
        f"| platform | {m['platform']}, Python {m['python']} |",
        f"| DDS profile | {m['dds_profile'] or 'none (Fast DDS defaults)'} |",
        f"| policy | {results['policy']} |",
        "",
    ]
    if busy:
        lines += [f"> The machine was busy with other work (1-min load average {m['load_before'][0]} before, "
                  f"{m['load_after'][0]} after, on {m['cpus']} CPUs): background benchmarks shared the cores, so "
                  "these numbers include that contention. They are what they are; rerun on an idle machine to "
                  "compare.", ""]
    lines += _policy_section(results) + _executor_section(results) + _image_section(results)
    lines += _learner_section(results) + _swap_section(results)
    return "\n".join(lines) + "\n"


def _policy_section(results: dict) -> list[str]:
    lines = [
        "## 1. Observation -> action chunk (policy_server)",
        "",
        f"A driver process publishes complete observations (end-effector pose, gripper, object poses, one stamp) at "
        f"{POLICY_RATE_HZ:g} Hz to a `policy_server` process (lifecycle configure + activate over its services, "
        "`explore` sampling as in learning); latency = from publishing an observation set to receiving the chunk "
        "stamped with it. The server decides a chunk every `act_steps` observations, so one sample per chunk. "
        "In-node = the server's own `policy_latency.csv` (last observation message in -> chunk published).",
        "",
        "| device | chunks | p50 (ms) | p99 (ms) | max (ms) | in-node p50 (ms) | in-node p99 (ms) | configure + activate (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for device, r in results["obs_to_chunk"].items():
        lines.append(f"| {device} | {r['n']} | {_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['max_ms'])} | "
                     f"{_fmt(r['node']['p50_ms'])} | {_fmt(r['node']['p99_ms'])} | {_fmt(r['configure_s'])} |")
    if "cuda" not in results["obs_to_chunk"]:
        lines.append("| cuda | no GPU on this machine | | | | | | |")
    return lines + [""]


def _executor_section(results: dict) -> list[str]:
    r = results["executor_jitter"]
    return [
        f"## 2. Executor period jitter at {r['rate_hz']:g} Hz (action_executor, real-time mode)",
        "",
        f"`action_executor` with `mode: realtime`, `control_rate_hz: {r['rate_hz']:g}` for {r['duration_s']:g} s, "
        "fed end-effector poses and chunks at the same rate; jitter = actual timer period - nominal (the "
        "`jitter_s` column of its `executor.csv`; negative = early).",
        "",
        "| ticks | p50 (ms) | p99 (ms) | max (ms) | p99 of abs (ms) | held (%) |",
        "|---|---|---|---|---|---|",
        f"| {r['n']} | {_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | {_fmt(r['max_ms'], 2)} | "
        f"{_fmt(r['abs_p99_ms'], 2)} | {_fmt(r['held_pct'])} |",
        "",
    ]


def _image_section(results: dict) -> list[str]:
    lines = [
        f"## 3. Camera images between processes ({IMAGE_RATE_HZ:g} Hz, rgb8)",
        "",
        "A publisher process and a subscriber process with the graph's camera QoS (`interfaces.SENSOR`: best "
        "effort, as realsense2_camera subscribers use), once with Fast DDS's default transports and once with "
        "`config/dds/fastdds_inril.xml` (large shared-memory segment + loopback UDP). Latency = receive wall time "
        "- header stamp (one machine clock); delivery = distinct frames received / sent.",
        "",
        "| transport | size | sent | delivered (%) | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["images"]:
        lines.append(f"| {r['transport']} | {r['size']} | {r['sent']} | {_fmt(r['delivered_pct'])} | "
                     f"{_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} |")
    return lines + [""]


def _learner_section(results: dict) -> list[str]:
    r = results["learner"]
    return [
        "## 4. Learner updates: in the graph vs offline",
        "",
        f"The same {r['updates']} updates ({r['episodes_per_update']} synthetic complete episodes, "
        f"{r['chunks_per_update']} chunk records each update, acted by the served policy's own exploration; "
        f"{DEMOS[0]} synthetic demos of {DEMOS[1]} steps for the imitation half; config "
        f"`{' '.join(r['overrides'])}`, device {r['device']}). Offline = `inril_core.live.LiveLearner.update()` + "
        "`save()` in the benchmark process. In the graph = a `learner` process fed the records over "
        "`/inril/transitions` + `/inril/episode` by a driver process; time from publishing the last record of an "
        "update's batch to receiving its announcement on `/inril/learner/checkpoint`. Medians; ratio = graph "
        "updates/s / offline updates/s.",
        "",
        "| | per update (s) | updates/s |",
        "|---|---|---|",
        f"| offline (update + save) | {_fmt(float(np.median(r['offline_s'])), 3)} | "
        f"{_fmt(r['offline_updates_per_s'], 3)} |",
        f"| offline (update only) | {_fmt(float(np.median(r['offline_update_only_s'])), 3)} | |",
        f"| in the graph (last record -> announcement) | {_fmt(float(np.median(r['graph_s'])), 3)} | "
        f"{_fmt(r['graph_updates_per_s'], 3)} |",
        f"| in the graph, the node's own `update_s` | {_fmt(float(np.median(r['graph_node_update_s'])), 3)} | |",
        "",
        f"Ratio graph / offline: **{r['ratio']:.2f}**. RL optimiser steps after each update: offline "
        f"{r['offline_rl_steps']}, in the graph {r['graph_rl_steps']} (the same work).",
        "",
    ]


def _swap_section(results: dict) -> list[str]:
    lines = [
        "## 5. Checkpoint announcement -> first chunk with the new weights",
        "",
        "While observations keep coming, the driver announces a real checkpoint (saved with "
        "`inril_core.checkpoint.save_checkpoint`: the served agent's tensors + DPPO's, correct sha256) on "
        "`/inril/learner/checkpoint` at a random point of the chunk period; time until the driver receives the "
        "first chunk decided with it (the server checks the sha256 and swaps at the next chunk boundary, "
        "republishes `/inril/policy/version`, and logs that chunk's stamp in `policy_versions.csv`). Waiting for "
        "the boundary is up to one chunk period; \"at the boundary\" = from publishing the observation that "
        "decided the new chunk to receiving it (hash check + load + inference + transport; compare with section "
        "1's p50).",
        "",
        "| device | swaps | p50 (ms) | max (ms) | at the boundary p50 (ms) | chunk period (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for device, r in results["weight_swap"].items():
        lines.append(f"| {device} | {r['n']}/{r['swaps']} | {_fmt(r['p50_ms'])} | {_fmt(r['max_ms'])} | "
                     f"{_fmt(r['boundary']['p50_ms'])} | {_fmt(r['chunk_period_ms'])} |")
    if "cuda" not in results["weight_swap"]:
        lines.append("| cuda | no GPU on this machine | | | | |")
    return lines + [""]


# ================================================================================================ roles (processes)


class _Role:
    """One measuring process: an rclpy node, its executor, bounded waits."""

    def __init__(self, name: str) -> None:
        rclpy.init()
        self.node: Node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float = ROLE_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def activate(self, fqn: str) -> float:
        """Configure and activate the lifecycle node ``fqn`` through its change_state service; returns seconds."""
        client = self.node.create_client(ChangeState, f"{fqn}/change_state")
        if not self.spin_until(client.service_is_ready):
            raise BenchError(f"{fqn}/change_state never appeared: the node did not start (see its log)")
        start = time.monotonic()
        for label, transition in (("configure", LifecycleTransition.TRANSITION_CONFIGURE),
                                  ("activate", LifecycleTransition.TRANSITION_ACTIVATE)):
            future = client.call_async(ChangeState.Request(transition=LifecycleTransition(id=transition)))
            if not self.spin_until(future.done) or not future.result().success:
                raise BenchError(f"{fqn}: {label} failed or timed out after {ROLE_TIMEOUT_S:.0f} s (see its log)")
        self.node.destroy_client(client)
        return time.monotonic() - start


def _policy_driver(spec: dict) -> dict:
    """Stands in for the sim, the episode manager and the learner around one policy server."""
    role = _Role("latency_bench_policy_driver")
    node, dt = role.node, 1.0 / spec["control_rate_hz"]
    try:
        pubs = {"eef": node.create_publisher(PoseStamped, ifc.EEF_POSE, ifc.LATEST),
                "gripper": node.create_publisher(JointState, ifc.GRIPPER_STATE, ifc.LATEST),
                "objects": node.create_publisher(PoseArray, ifc.OBJECT_POSES, ifc.LATEST),
                "episode": node.create_publisher(String, ifc.EPISODE, ifc.EPISODE_RECORDS),
                "checkpoint": node.create_publisher(String, ifc.CHECKPOINT, ifc.LATCHED)}
        chunks: list[tuple[int, float]] = []     # (stamp ns, arrival)
        versions: list[tuple[int, float]] = []   # (version, arrival)
        node.create_subscription(JointTrajectory, ifc.ACTION_CHUNK, lambda m: chunks.append(
            (m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec, time.monotonic())), ifc.LATEST)
        node.create_subscription(String, ifc.POLICY_VERSION, lambda m: versions.append(
            (int(json_payload(m)["version"]), time.monotonic())), ifc.LATCHED)
        configure_s = role.activate(f"{ifc.NAMESPACE}/policy_server")
        if not role.spin_until(lambda: versions and all(p.get_subscription_count() > 0 for p in pubs.values())):
            raise BenchError("policy_server is active but did not subscribe to the observation, episode and "
                             "checkpoint topics or publish its version")
        pubs["episode"].publish(json_msg({"episode": 0, "state": "running", "seed": 0, "policy_version": 0,
                                          "outcome": None, "length": 0, "return": 0.0, "stamp": T0_S,
                                          "start_stamp": T0_S}))
        sent: dict[int, float] = {}
        clock = {"step": 0, "next": time.monotonic()}

        def drive_until(predicate: Callable[[], bool], what: str) -> None:
            """Publish one observation set every control period until ``predicate``; spin in between."""
            deadline = time.monotonic() + ROLE_TIMEOUT_S
            while not predicate():
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(f"no {what} within {ROLE_TIMEOUT_S:.0f} s ({len(chunks)} chunks so far)")
                if now >= clock["next"]:
                    stamp = T0_S + clock["step"] * dt
                    sent[_ns(stamp)] = time.monotonic()
                    pubs["eef"].publish(pose_stamped(EEF_POS, EEF_QUAT, stamp, "world"))
                    pubs["gripper"].publish(joint_state(["finger_left", "finger_right"], FINGERS, stamp))
                    pubs["objects"].publish(pose_array([(CUBE_POS, CUBE_QUAT)], stamp, "world"))
                    clock["step"] += 1
                    clock["next"] = max(clock["next"] + dt, now)  # a late tick does not cause a burst
                role.executor.spin_once(timeout_sec=max(0.0, clock["next"] - time.monotonic()))

        target = spec["warmup_chunks"] + spec["chunks"]
        drive_until(lambda: len(chunks) >= target, f"{target} chunks")
        measured = [(stamp, arrival) for stamp, arrival in chunks[spec["warmup_chunks"]:target] if stamp in sent]
        announced: dict[int, float] = {}
        phase = np.random.default_rng(0)
        for swap in spec["swaps"]:
            # at a random point of the chunk period, as a learner's announcement would come
            wait_until = time.monotonic() + phase.uniform(0.0, spec["chunk_period_s"])
            drive_until(lambda: time.monotonic() >= wait_until, "observation")
            version = swap["version"]
            announced[version] = time.monotonic()
            pubs["checkpoint"].publish(json_msg(swap))

            def swapped() -> bool:  # the new version is out and two chunks came after it (whatever the order)
                seen = [t for v, t in versions if v == version]
                return bool(seen) and sum(t >= seen[0] for _, t in chunks) >= 2

            drive_until(swapped, f"chunk of checkpoint version {version}")
        return {"configure_s": configure_s, "latencies_s": [arrival - sent[stamp] for stamp, arrival in measured],
                "measured_stamps": [stamp for stamp, _ in measured], "chunks": chunks, "announced": announced,
                "sent": list(sent.items())}
    finally:
        role.close()


def _executor_driver(spec: dict) -> dict:
    """End-effector poses stamped now and a zero chunk every 4 poses, at the executor's rate."""
    role = _Role("latency_bench_executor_driver")
    node = role.node
    try:
        eef = node.create_publisher(PoseStamped, ifc.EEF_POSE, ifc.LATEST)
        chunk = node.create_publisher(JointTrajectory, ifc.ACTION_CHUNK, ifc.LATEST)
        if not role.spin_until(lambda: eef.get_subscription_count() > 0 and chunk.get_subscription_count() > 0):
            raise BenchError("action_executor did not subscribe to the pose and chunk topics")
        period = 1.0 / spec["rate_hz"]
        start_wall = time.time()
        start = time.monotonic()
        for step in range(int(spec["duration_s"] * spec["rate_hz"])):
            stamp = node.get_clock().now().nanoseconds * 1e-9
            eef.publish(pose_stamped(EEF_POS, EEF_QUAT, stamp, "world"))
            if step % 4 == 0:
                chunk.publish(actions_to_trajectory(np.zeros((4, len(AXIS_ANGLE))), stamp, period, AXIS_ANGLE))
            next_tick = start + (step + 1) * period
            while time.monotonic() < next_tick:
                role.executor.spin_once(timeout_sec=max(0.0, next_tick - time.monotonic()))
        return {"start_wall": start_wall, "end_wall": time.time()}
    finally:
        role.close()


def _image_pub(spec: dict) -> dict:
    """rgb8 frames of each size at ``rate_hz`` on their own topic, one size after the other."""
    from inril_ros.sim_bridge import rgb8_image  # the sim camera's conversion: the same cost per frame

    role = _Role("latency_bench_image_pub")
    node = role.node
    try:
        sent = {}
        period = 1.0 / spec["rate_hz"]
        for topic, (width, height) in zip(spec["topics"], spec["sizes"]):
            pub = node.create_publisher(Image, topic, ifc.SENSOR)
            if not role.spin_until(lambda: pub.get_subscription_count() > 0):
                raise BenchError(f"no subscriber matched {topic}")
            role.spin_until(lambda: False, 0.5)  # let the match settle both ways
            pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
            start = time.monotonic()
            for index in range(spec["frames"]):
                pub.publish(rgb8_image(pixels, node.get_clock().now().nanoseconds * 1e-9, str(index)))
                next_tick = start + (index + 1) * period
                while time.monotonic() < next_tick:
                    role.executor.spin_once(timeout_sec=max(0.0, next_tick - time.monotonic()))
            sent[topic] = spec["frames"]
        role.spin_until(lambda: False, 1.0)  # a best-effort writer drops what is unsent when it goes
        return {"sent": sent}
    finally:
        role.close()


def _image_sub(spec: dict) -> dict:
    """Receives frames until the stop file appears: (frame index, receive time - header stamp) per topic."""
    role = _Role("latency_bench_image_sub")
    node = role.node
    try:
        frames: dict[str, list[tuple[int, float]]] = {topic: [] for topic in spec["topics"]}

        def on_image(topic: str) -> Callable[[Image], None]:
            def callback(msg: Image) -> None:
                now = node.get_clock().now().nanoseconds
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                frames[topic].append((int(msg.header.frame_id), (now - stamp) * 1e-9))
            return callback

        for topic in spec["topics"]:
            node.create_subscription(Image, topic, on_image(topic), ifc.SENSOR)
        stop = Path(spec["stop_file"])
        if not role.spin_until(stop.exists, 4 * ROLE_TIMEOUT_S):
            raise BenchError(f"the stop file {stop} never appeared")
        return {"frames": frames}
    finally:
        role.close()


def _learner_driver(spec: dict) -> dict:
    """Stands in for the policy server and the episode manager: one batch of episodes per update, in turn."""
    role = _Role("latency_bench_learner_driver")
    node = role.node
    try:
        records = node.create_publisher(UInt8MultiArray, ifc.TRANSITIONS, ifc.STREAM)
        outcomes = node.create_publisher(String, ifc.EPISODE, ifc.EPISODE_RECORDS)
        announced: list[tuple[int, float]] = []
        metrics: list[dict] = []
        node.create_subscription(String, ifc.CHECKPOINT, lambda m: announced.append(
            (int(json_payload(m)["version"]), time.monotonic())), ifc.LATCHED)
        node.create_subscription(String, ifc.LEARNER_METRICS, lambda m: metrics.append(json_payload(m)), ifc.STREAM)
        role.activate(f"{ifc.NAMESPACE}/learner")
        if not role.spin_until(lambda: records.get_subscription_count() > 0 and outcomes.get_subscription_count() > 0
                               and node.count_publishers(ifc.CHECKPOINT) > 0):
            raise BenchError("the learner is active but did not subscribe to the transitions and episode topics")
        update_s = []
        for update in range(spec["updates"]):
            for record, ended in _update_batch(spec["episodes"], update):
                if record is not None:
                    records.publish(UInt8MultiArray(data=record))
                else:
                    outcomes.publish(json_msg(ended))
            last = time.monotonic()
            if not role.spin_until(lambda: any(v == update + 1 for v, _ in announced)):
                raise BenchError(f"the learner announced no version {update + 1} within {ROLE_TIMEOUT_S:.0f} s "
                                 f"(metrics so far: {metrics})")
            update_s.append(next(t for v, t in announced if v == update + 1) - last)
            # The learner re-checks readiness only when a record arrives while it is idle: a batch landing while
            # it finishes the previous update (metrics, logs) would wait for a record that never comes. The next
            # batch goes out after this update's metrics and a settle; the measured time starts at its last record.
            role.spin_until(lambda: len(metrics) > update)
            role.spin_until(lambda: False, 0.5)
        return {"update_s": update_s, "node_update_s": [m["update_s"] for m in metrics],
                "rl_steps": [m["rl_steps"] for m in metrics]}
    finally:
        role.close()


ROLES: dict[str, Callable[[dict], dict]] = {
    "policy_driver": _policy_driver, "executor_driver": _executor_driver, "image_pub": _image_pub,
    "image_sub": _image_sub, "learner_driver": _learner_driver,
}


def _role_main(argv: list[str]) -> int:
    """``python -m inril_ros.latency_bench <role> <spec.json>``: run one role, write its result JSON."""
    if len(argv) != 2 or argv[0] not in ROLES:
        print(f"usage: python -m inril_ros.latency_bench {{{','.join(ROLES)}}} <spec.json>", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    result = ROLES[argv[0]](spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(_role_main(sys.argv[1:]))
