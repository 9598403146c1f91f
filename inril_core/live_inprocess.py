"""Live learning without the node graph: the graph's LiveLearner fed, in this process, by one env played episode
after episode.

Why: the graph (`inril sim`) is the real thing, but one run costs its full wall time on a 2-core machine, and
tuning the live learner (env steps per update, the IL dose) needs many runs. Here the same ``LiveLearner`` gets
the same inputs the learner node gets: one ``Transition`` per executed chunk, acted by DPPO's exploration with the
newest weights and tagged with their version, then the episode's outcome record, with the graph's episode seeds
(``seed * 100000 + k``, as sim_bridge). What differs from the graph is only the transport and when new weights act:
here from the next episode (the graph swaps at a chunk boundary and drops the episode it swapped in, and drops the
episodes acted during an update). ``inril bench live`` runs it and writes the graph's report (the same CSV files).
"""
from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from inril_core.envs import make_env
from inril_core.live import LiveLearner
from inril_core.run_log import RunLog
from inril_core.transitions import Transition

EPISODE_SEEDS_PER_RUN = 100_000  # sim_bridge's episode seeds: seed * 100000 + episode
EPISODE_FIELDS = ("episode", "seed", "policy_version", "outcome", "length", "return", "wall_time")


def play_episode(live: LiveLearner, env, episode: int, seed: int) -> tuple[list[Transition], bool, int]:
    """One exploring episode with the learner's current weights: (its records in chunk order, success, env steps)."""
    agent, algo = live.agent, live.algo
    obs, _ = env.reset(seed=seed)
    records: list[Transition] = []
    done, length, info = False, 0, {}
    while not done:
        chunk, chain = algo.explore(agent.obs_tensor(obs[None]))
        actions = agent.to_env_actions(chunk)[0]
        next_obs, _, terminated, truncated, info = env.step(actions)
        done = bool(terminated or truncated)
        length += int(info["env_steps"])
        records.append(Transition(live.version, episode, len(records), 0.0, np.asarray(obs, np.float32),
                                  np.asarray(next_obs, np.float32), actions, chain[0].cpu().numpy(), last=done))
        obs = next_obs
    return records, bool(info.get("success", False)), length


def run_live_inprocess(cfg: DictConfig, run_dir: str | Path, env_steps: int, episodes_per_update: int,
                       env_steps_per_update: int,
                       progress: Callable[[int, dict | None], None] | None = None) -> dict:
    """Play episodes and learn live until ``env_steps``; writes ``<run_dir>/episodes.csv`` and
    ``<run_dir>/learner/`` (checkpoints, metrics.csv) as the graph's nodes do. ``progress(env steps so far,
    the update's metrics or None)`` is called after every episode. Returns a summary (episodes, updates, env
    steps, seconds)."""
    run_dir = Path(run_dir)
    learner_dir = run_dir / "learner"
    live = LiveLearner.open(cfg, learner_dir, cfg.train.pretrained, episodes_per_update, env_steps_per_update)
    learner_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, learner_dir / "config.yaml")
    env = make_env(cfg.env.id, cfg.env.max_episode_steps, cfg.policy.act_steps)
    log = RunLog(learner_dir)
    episodes_file = (run_dir / "episodes.csv").open("w", newline="")
    episodes = csv.DictWriter(episodes_file, fieldnames=EPISODE_FIELDS)
    episodes.writeheader()
    start, steps, episode = time.perf_counter(), 0, 0
    try:
        while steps < env_steps:
            seed = int(cfg.seed) * EPISODE_SEEDS_PER_RUN + episode
            version = live.version
            records, success, length = play_episode(live, env, episode, seed)
            for record in records:
                live.add(record)
            outcome = "success" if success else "timeout"
            live.add_episode_outcome({"episode": episode, "state": "ended", "outcome": outcome, "length": length})
            episodes.writerow({"episode": episode, "seed": seed, "policy_version": version, "outcome": outcome,
                               "length": length, "return": float(success), "wall_time": round(time.time(), 4)})
            episodes_file.flush()
            steps += length
            episode += 1
            metrics = None
            if live.ready():
                metrics = live.update()
                live.save(learner_dir)
                log.write("metrics", {"iteration": live.version, **metrics},
                          live.env_steps)
            if progress is not None:
                progress(steps, metrics)
    finally:
        episodes_file.close()
        log.close()
        env.close()
    return {"episodes": episode, "updates": live.version, "env_steps": steps,
            "seconds": round(time.perf_counter() - start, 1)}
