"""inril's simulated tasks: fast direct-MuJoCo Lift / Can / Square / Transport and their robosuite references, and
FurnitureBench (``furniture``).

Importing this package registers every inril env id with gymnasium. gymnasium 1.2 does not load the
``gymnasium.envs`` entry-point plugins that setup.py declares, so ``gymnasium.make("inril/Lift-v0")`` needs a
prior ``import inril_sim`` (or the id spelled ``"inril_sim:inril/Lift-v0"``, which imports it for you).
Registration uses entry-point strings, so it imports neither MuJoCo nor robosuite; it does choose MuJoCo's
off-screen OpenGL backend where there is no display, so import it before ``mujoco``.
"""
from __future__ import annotations

import os

import gymnasium as gym

# MuJoCo picks its OpenGL backend when it is imported, and its default (GLFW) needs a display: on a headless machine
# every camera (the sim bridge's, rendered videos) failed with "gladLoadGL error". Without a display, off-screen
# OSMesa (CPU; `make setup` installs libosmesa6) is the default here; set MUJOCO_GL=egl on a machine with a GPU.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "osmesa"

# task -> (id, entry point, horizon); horizons are the contract's TimeLimit (docs/contracts.md): DPPO's
# max_episode_steps for each task (transport 800, also Diffusion Policy's limit for robomimic's transport ph).
FAST_ENVS: dict[str, tuple[str, str, int]] = {
    "lift": ("inril/Lift-v0", "inril_sim.tasks:LiftEnv", 300),
    "can": ("inril/Can-v0", "inril_sim.tasks:CanEnv", 300),
    "square": ("inril/Square-v0", "inril_sim.tasks:SquareEnv", 400),
    "transport": ("inril/Transport-v0", "inril_sim.transport:TransportEnv", 800),
}


def fast_env_id(task: str) -> str:
    """gymnasium id of the fast version of ``task`` (``"lift"`` -> ``"inril/Lift-v0"``)."""
    if task not in FAST_ENVS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(FAST_ENVS)}")
    return FAST_ENVS[task][0]


def register_envs() -> None:
    """Register the fast ids, the robosuite ids and the FurnitureSim ids; calling it again is a no-op."""
    for env_id, entry_point, horizon in FAST_ENVS.values():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=horizon)
    # The robosuite-backed ids live with their env classes; that module imports robosuite only at make-time.
    from inril_sim.furniture import register_furniture_envs
    from inril_sim.robosuite_tasks import register_robosuite_envs

    register_robosuite_envs()
    register_furniture_envs()


register_envs()
