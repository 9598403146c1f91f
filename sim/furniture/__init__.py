"""FurnitureBench tasks: the real FurnitureSim where IsaacGym is present (``isaac``: one sim per env;
``isaac_vector``: FurnitureSim's own batching, ``env.vector: native``) and, built on the same
contracts (``contracts``), the MuJoCo port that runs anywhere (``mujoco_env``: scene ``mujoco_scene`` with the parts of
``square_table_scene`` (one_leg), ``round_table_scene`` or ``lamp_scene``, controller
``osc``, threads ``screw``, frames ``frames``). Registration uses entry-point strings, so it imports neither
furniture_bench, MuJoCo nor IsaacGym."""
from __future__ import annotations

import gymnasium as gym

# furniture -> episode horizon: ResiP's max episode steps (reference/paper-notes.md)
HORIZONS: dict[str, int] = {"one_leg": 700, "lamp": 1000, "round_table": 1000}


def furniture_sim_id(furniture: str) -> str:
    """gymnasium id of FurnitureSim's ``furniture`` behind the inril contract."""
    return f"inril/FurnitureSim-{furniture}-v0"


# furniture the MuJoCo port (mujoco_env) builds; the rest run on FurnitureSim only
MUJOCO_FURNITURE = ("one_leg", "round_table", "lamp")


def furniture_mujoco_id(furniture: str) -> str:
    """gymnasium id of the MuJoCo port of ``furniture``."""
    return f"inril/Furniture-{furniture}-v0"


def register_furniture_envs() -> None:
    """Register the MuJoCo-port ids and the FurnitureSim ids (made only where IsaacGym is installed); calling it
    again is a no-op."""
    for furniture in MUJOCO_FURNITURE:
        env_id = furniture_mujoco_id(furniture)
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="inril_sim.furniture.mujoco_env:FurnitureMujocoEnv",
                         max_episode_steps=HORIZONS[furniture], kwargs={"furniture": furniture})
    for furniture, horizon in HORIZONS.items():
        env_id = furniture_sim_id(furniture)
        if env_id not in gym.registry:
            # FurnitureSim's own timeout is left past the horizon: gymnasium's TimeLimit ends the episode
            gym.register(id=env_id, entry_point="inril_sim.furniture.isaac:FurnitureSimTask",
                         vector_entry_point="inril_sim.furniture.isaac_vector:FurnitureSimVectorEnv",
                         max_episode_steps=horizon, kwargs={"furniture": furniture, "max_env_steps": horizon + 1})
