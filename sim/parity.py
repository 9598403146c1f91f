"""Compare the fast direct-MuJoCo tasks with their robosuite references by running the same controller on both.

The fast tasks are only useful if what is learnt on them transfers: the same observation-only expert should
succeed about as often and as quickly on both backends, and a policy trained on one can be scored on the other
(``cross_eval``). Each backend runs in this process, one episode after another, so timings are comparable.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

BACKEND_IDS: dict[str, dict[str, str]] = {
    "lift": {"fast": "inril/Lift-v0", "robosuite": "inril/Lift-robosuite-v0"},
    "can": {"fast": "inril/Can-v0", "robosuite": "inril/Can-robosuite-v0"},
    "square": {"fast": "inril/Square-v0", "robosuite": "inril/Square-robosuite-v0"},
    "transport": {"fast": "inril/Transport-v0", "robosuite": "inril/Transport-robosuite-v0"},
}


@dataclass(frozen=True)
class RolloutStats:
    """Outcome of n episodes on one backend; lengths count env steps (a failure runs to the horizon)."""

    success_rate: float
    mean_length: float
    mean_success_length: float
    n_episodes: int
    env_steps: int
    elapsed_s: float
    steps_per_s: float


def _ensure_registered() -> None:
    """Register every inril id: gymnasium 1.x loads no entry-point plugins, so someone has to (idempotent)."""
    import inril_sim

    inril_sim.register_envs()


def rollout(
    env_id: str,
    act: Callable[[np.ndarray], np.ndarray],
    n_episodes: int,
    seed: int,
    on_reset: Callable[[], None] | None = None,
) -> RolloutStats:
    """Run ``act`` for ``n_episodes`` on ``env_id``; episode i resets with seed ``seed + i``."""
    _ensure_registered()
    env = gym.make(env_id)
    successes, lengths = [], []
    start = time.perf_counter()
    try:
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            if on_reset is not None:
                on_reset()
            success, length, done = False, 0, False
            while not done:
                obs, _, terminated, truncated, info = env.step(act(obs))
                length += 1
                success = success or bool(info["success"])
                done = terminated or truncated
            successes.append(success)
            lengths.append(length)
    finally:
        env.close()
    elapsed = time.perf_counter() - start
    success_lengths = [n for n, ok in zip(lengths, successes) if ok]
    return RolloutStats(
        success_rate=float(np.mean(successes)),
        mean_length=float(np.mean(lengths)),
        mean_success_length=float(np.mean(success_lengths)) if success_lengths else float("nan"),
        n_episodes=n_episodes,
        env_steps=int(sum(lengths)),
        elapsed_s=elapsed,
        steps_per_s=sum(lengths) / elapsed,
    )


def expert_parity(task: str, n_episodes: int, noise: float, seed: int,
                  backends: tuple[str, ...] = ("fast", "robosuite")) -> dict:
    """Run the scripted expert for ``task`` at action-noise ``noise`` on ``backends`` (default both).

    Both backends get an expert built with the same seed and the same episode seeds; the initial states still
    differ (each backend draws its own placements), so compare the rates statistically, not episode by episode.
    """
    from inril_sim.experts import make_expert

    result: dict = {"task": task, "noise": noise, "seed": seed}
    for backend in backends:
        expert = make_expert(task, noise, seed)
        env_id = BACKEND_IDS[task][backend]
        result[backend] = asdict(rollout(env_id, expert.act, n_episodes, seed, on_reset=expert.reset))
    return result


def cross_eval(
    policy_act: Callable[[np.ndarray], np.ndarray],
    task: str,
    n_episodes: int,
    seed: int,
    on_reset: Callable[[], None] | None = None,
) -> dict:
    """Score one observation -> action callable on both backends (e.g. a policy trained on the other one).

    ``on_reset`` is called after every env reset, for policies that keep state across steps (action chunks,
    observation history) and must start each episode afresh.
    """
    result: dict = {"task": task, "seed": seed}
    for backend, env_id in BACKEND_IDS[task].items():
        result[backend] = asdict(rollout(env_id, policy_act, n_episodes, seed, on_reset=on_reset))
    return result


def action_noise_response(
    task: str, dims: tuple[int, ...], noise: float, n_episodes: int, n_steps: int, seed: int
) -> dict[str, dict[str, list[float]]]:
    """RMS per-step eef translation (m) and rotation (rad), per world axis, under N(0, noise) on action ``dims``.

    Constant actions move both backends alike, but experts and policies send changing commands. This measures
    how each backend answers those, e.g. that robosuite's arm also translates the eef when asked only to rotate.
    The other arm dims are 0 and the gripper is held open.
    """
    from inril_sim.rotations import rotation_error, xyzw_to_wxyz

    _ensure_registered()
    result: dict[str, dict[str, list[float]]] = {}
    for backend, env_id in BACKEND_IDS[task].items():
        env = gym.make(env_id)
        layout = env.unwrapped.obs_layout
        moves, turns = [], []
        try:
            for episode in range(n_episodes):
                rng = np.random.default_rng(seed + episode)
                obs, _ = env.reset(seed=seed + episode)
                for _ in range(n_steps):
                    action = np.zeros(7)
                    action[list(dims)] = rng.normal(0.0, noise, len(dims))
                    action[6] = -1.0
                    new_obs, *_ = env.step(np.clip(action, -1.0, 1.0).astype(np.float32))
                    moves.append(new_obs[layout["robot0_eef_pos"]] - obs[layout["robot0_eef_pos"]])
                    new_quat, quat = (xyzw_to_wxyz(o[layout["robot0_eef_quat"]].astype(float)) for o in (new_obs, obs))
                    turns.append(rotation_error(new_quat, quat))
                    obs = new_obs
        finally:
            env.close()
        result[backend] = {
            "translation_rms": np.sqrt(np.mean(np.square(moves), axis=0)).tolist(),
            "rotation_rms": np.sqrt(np.mean(np.square(turns), axis=0)).tolist(),
        }
    return result


def format_table(results: list[dict], backends: tuple[str, ...] = ("fast", "robosuite")) -> str:
    """A markdown table of expert_parity results, one row per (task, noise), columns per backend."""
    header = ["task", "noise"] + [f"{b} {what}" for b in backends for what in ("success", "length", "steps/s")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["task"], str(r.get("noise", "-"))]
        for b in backends:
            cells += [f"{r[b]['success_rate']:.2f}", f"{r[b]['mean_length']:.0f}", f"{r[b]['steps_per_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m inril_sim.parity``: print the expert parity table (and the raw results as JSON)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("tasks", nargs="*", default=list(BACKEND_IDS))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="+", default=["fast", "robosuite"], choices=["fast", "robosuite"],
                        help="'--backends fast' gives the fast env's expert table alone in seconds")
    args = parser.parse_args(argv)
    backends = tuple(args.backends)
    results = [
        expert_parity(task, args.episodes, noise, args.seed, backends) for task in args.tasks for noise in args.noise
    ]
    print(format_table(results, backends))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
