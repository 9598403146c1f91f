"""Shared helpers for tests that run the real learning core on the toy reaching task (tests/unit/toy_env.py).

Everything is sized to run in about a second on one CPU core: tiny networks, few diffusion steps, short episodes,
two environments. `toy_config(root)` gives a full run config (the real YAML files plus overrides, as `inril train`
would build it) whose demos, pre-training and run directories all live under `root`.
"""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig

import toy_env
from inril_core.agent import DiffusionAgent
from inril_core.buffers import load_demo_episodes
from inril_core.config import load_config
from inril_core.episodes.store import Episode, EpisodeStore
from inril_core.learner import Learner
from inril_core.rl.base import Rollout
from inril_core.rl.dppo import DPPO
from inril_core.training import build_learner

TOY_ENV_ID = "toy_env:PointReach-v0"
TOY_MAX_STEPS = 20


def write_toy_demos(path: str | Path, n_episodes: int = 8, noise: float = 0.3, seed: int = 0,
                    obs_pad: int = 0) -> EpisodeStore:
    """Scripted-expert episodes of the toy task in an episode store; `obs_pad` extra observation dims make a
    store with the wrong observation size."""
    store = EpisodeStore(path)
    env = gym.make("PointReach-v0", max_episode_steps=TOY_MAX_STEPS)
    rng = np.random.default_rng(seed)
    for i in range(n_episodes):
        o, _ = env.reset(seed=seed * 1000 + i)
        obs, acts, rews = [], [], []
        terminated = False
        for _ in range(TOY_MAX_STEPS):
            a = toy_env.expert_action(o, noise, rng)
            obs.append(np.concatenate([o, np.zeros(obs_pad, np.float32)]))
            acts.append(a)
            o, r, terminated, truncated, _ = env.step(a)
            rews.append(r)
            if terminated or truncated:
                break
        store.append(Episode(np.array(obs), np.array(acts), np.array(rews),
                             {"task": "toy", "source": "scripted", "success": bool(terminated)}))
    env.close()
    return store


# Tiny sizes of each algorithm's own `rl` keys (every algorithm has its own; struct mode refuses the others').
TOY_RL = {
    "dppo": ["rl.ft_denoising_steps=3", "rl.n_chunk_steps=4", "rl.update_epochs=2", "rl.minibatch_size=8",
             "rl.critic_hidden=[32,32]", "rl.critic_warmup_iters=1", "rl.target_kl=1.0e9"],
    "residual_ppo": ["rl.n_chunk_steps=12", "rl.update_epochs=2", "rl.minibatch_size=8", "rl.critic_hidden=[32]",
                     "rl.residual_hidden=[32]", "rl.critic_warmup_iters=1", "rl.target_kl=1.0e9"],
    "idql": ["rl.n_chunk_steps=4", "rl.replay_ratio=1.0", "rl.batch_size=16", "rl.critic_hidden=[32,32]",
             "rl.n_candidates=4", "rl.critic_warmup_iters=1", "rl.replay_capacity=500", "rl.critic_pretrain_steps=20"],
    "rlpd": ["rl.n_chunk_steps=4", "rl.replay_ratio=1.0", "rl.batch_size=16", "rl.critic_hidden=[32,32]",
             "rl.actor_hidden=[32,32]", "rl.critic_warmup_iters=1", "rl.replay_capacity=500",
             "rl.random_env_steps=16"],
}


def toy_overrides(root: str | Path, algo: str = "dppo") -> list[str]:
    root = Path(root)
    return [
        f"env.id={TOY_ENV_ID}", "env.obs_dim=4", "env.act_dim=2", f"env.max_episode_steps={TOY_MAX_STEPS}",
        "env.n_envs=2", "device=cpu", "seed=0", f"algo={algo}",
        f"demos.path={root}/demos", f"pretrain.run_dir={root}/pre", f"run.dir={root}/run",
        "policy.n_steps=6", "policy.horizon=4", "policy.act_steps=4",
        "policy.denoiser.hidden_dims=[32]", "policy.denoiser.time_dim=8",
        "pretrain.max_epochs=3", "pretrain.batch_size=64", "pretrain.eval_episodes=2",
        *TOY_RL[algo],
        "il.batch_size=16", "bc_reg.batch_size=16",
        "train.env_steps=150", "train.eval_every_steps=60", "train.eval_episodes=2", "train.eval_n_envs=2",
        # a 3-epoch policy rarely reaches the goal in these few steps: the tests of what actor steps do need them
        # on every rollout (test_interleave checks the skip itself)
        "train.skip_rewardless_rollouts=false",
        "run.checkpoint_every=1", "run.keep_checkpoints=2",
    ]


def toy_config(root: str | Path, *extra: str, algo: str = "dppo") -> DictConfig:
    """The real config system (config/*.yaml) with the toy sizes above and `extra` overrides on top."""
    return load_config(toy_overrides(root, algo) + list(extra))


def toy_agent(cfg: DictConfig, seed: int = 0) -> DiffusionAgent:
    """An untrained agent for the toy task with normalisers fitted on its demo store (cfg.demos.path)."""
    torch.manual_seed(seed)
    agent = DiffusionAgent.from_config(cfg)
    episodes = load_demo_episodes(cfg.demos.path, cfg.env.obs_dim, cfg.env.act_dim)
    agent.obs_norm.fit(np.concatenate([e.observations for e in episodes]))
    agent.act_norm.fit(np.concatenate([e.actions for e in episodes]))
    return agent


def toy_learner(cfg: DictConfig, seed: int = 0) -> Learner:
    """The learner as FineTuneRun and the live learner wire it (``training.build_learner``: DPPO, schedule,
    imitation updater on the demo store), around an untrained agent on the CPU."""
    return build_learner(cfg, toy_agent(cfg, seed), "cpu")


def synthetic_rollout(algo: DPPO, steps: int = 4, n_envs: int = 3, seed: int = 0) -> Rollout:
    """A rollout of real DPPO exploration chains on random (normalised) observations with random rewards."""
    g = torch.Generator().manual_seed(seed)
    obs_dim = algo.agent.spec["obs_dim"]
    obs = torch.rand(steps, n_envs, obs_dim, generator=g) * 2 - 1
    _, chains = algo.explore(obs.reshape(steps * n_envs, obs_dim))
    chains = chains.reshape(steps, n_envs, *chains.shape[1:])
    rewards = (torch.rand(steps, n_envs, generator=g) < 0.3).float()
    dones = (torch.rand(steps, n_envs, generator=g) < 0.2).float()
    last_obs = torch.rand(n_envs, obs_dim, generator=g) * 2 - 1
    return Rollout(obs, chains, rewards, dones, last_obs, torch.zeros_like(rewards))


def pretrained_toy_root(tmp_path_factory, name: str) -> Path:
    """A fresh folder with toy demos and a (briefly) pre-trained policy, for a test module's runs to share."""
    from inril_core.training import pretrain

    root = tmp_path_factory.mktemp(name)
    write_toy_demos(root / "demos")
    pretrain(toy_config(root))
    return root
