"""FurnitureBench's scripted experts (one_leg; round_table's leg; the lamp's, ours in ``lamp_expert``), driven from
our observation.

The state machines are furniture_bench's own, called through imports: the top's ``pre_assemble`` (grasp it, push it
into the obstacle corner, release, go up) and the leg's ``Leg.fsm_step`` (grasp, lift, reorient, align over the
hole, insert, then grasp-twist-release until assembled). What FurnitureSim's ``get_assembly_action`` adds around
them (it lives in the IsaacGym env, so it cannot be imported) is re-written here: the move to a neutral height
after an assembly, the action scaling (delta = 2 |error|, past 3 cm stretched by N(1.5, 0.1), clamped at 11-12 cm,
z 7-8 cm) and, during insertion, noise with probability 0.5 (N(0, 5 mm) position, N(0, 5 deg) per rotation axis).

furniture_bench 0.1 does not script all of round_table: ``RoundTableTop`` has no ``pre_assemble`` (its reset leaves
``pre_assemble_done`` False, so FurnitureSim's own ``get_assembly_action`` fails on its first step) and
``RoundTableBase`` has none either, while its ``fsm_step`` reads names it never defines (``table_hole_pose``,
``table_pose``). A part without a ``pre_assemble`` is taken as having nothing to do before assembly. A furniture
whose state machines furniture_bench lacks or cannot run supplies its own (``OWN_STATE_MACHINES``: a module whose
``take_over`` puts them into furniture_bench's furniture and names the pairs it can assemble); the other pairs are
left out (round_table: ``round_table_expert``; lamp, which furniture_bench 0.1 does not script at all:
``lamp_expert``).

The state machines read the simulator's rigid-body table in FurnitureSim's world frame; everything they need is in
the observation (hand pose and gripper width in the robot-base frame, part poses in the AprilTag frame) plus the
obstacles' fixed places, so the expert acts from the observation alone, like any policy. furniture_bench draws its
noise from numpy's and torch's global generators; the expert keeps its own states of both and swaps them in only
while it runs, so episodes are reproducible from the seed and the caller's generators are untouched.
"""
from __future__ import annotations

import importlib
import io
import time
from contextlib import contextmanager, redirect_stdout
from typing import Any, Callable, Iterator

import numpy as np

from inril_sim.furniture.contracts import assembled_pairs, furniture_spec, import_furniture_bench
from inril_sim.furniture.frames import (OBSTACLE_FRONT_X, OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y, TABLE_SURFACE_Z,
                                         furniture_frames, mat_to_pose_xyzw, pose_to_mat)
from inril_sim.rotations import xyzw_to_wxyz

NEUTRAL_Z = 0.15            # get_assembly_action: after an assembly, rise to 15 cm before the next pair
STRETCH_ABOVE = 0.03
MAX_DELTA, MAX_DELTA_Z_LESS = 0.11, 0.04
INSERT_NOISE_P, INSERT_POS_STD, INSERT_ROT_STD_DEG = 0.5, 0.005, 5.0
DONE_ACTION = np.array([0, 0, 0, 0, 0, 0, 1, -1], dtype=np.float32)
# furniture -> the module with our state machines for it, where furniture_bench 0.1 cannot script it
OWN_STATE_MACHINES: dict[str, str] = {"round_table": "inril_sim.furniture.round_table_expert",
                                      "lamp": "inril_sim.furniture.lamp_expert"}


def part_pose_in_robot(rb_states: Any, index: int, sim_to_april: Any, april_to_robot: Any) -> Any:
    """Row ``index`` of FurnitureSim's rigid-body table as a 4x4 pose (torch) in the robot-base frame, where the
    state machines aim the hand: what our own state machines (``lamp_expert``, ``round_table_expert``) read parts
    from."""
    import furniture_bench.controllers.control_utils as C

    row = rb_states[index]
    return april_to_robot @ sim_to_april @ C.to_homogeneous(row[:3], C.quat2mat(row[3:7]))


class FurnitureExpert:
    """``act(obs) -> action`` of FurnitureBench's scripted assembly for ``furniture`` (one_leg, round_table's
    leg, lamp)."""

    def __init__(self, furniture: str = "one_leg", seed: int = 0, noise: float = 0.0) -> None:
        import torch

        self.torch = torch
        self.spec = furniture_spec(furniture)
        self.layout = self.spec.layout()
        self.furniture = import_furniture_bench()[0].furniture_factory(furniture)
        self.pairs = [tuple(p) for p in self.furniture.should_be_assembled]
        if furniture in OWN_STATE_MACHINES:
            scripted = importlib.import_module(OWN_STATE_MACHINES[furniture]).take_over(self.furniture)
            self.pairs = [p for p in self.pairs if p in scripted]
        self.noise = noise
        frames = furniture_frames()
        self._sim_to_april = torch.tensor(frames.sim_to_april, dtype=torch.float32)
        self._april_to_robot = torch.tensor(frames.april_in_robot, dtype=torch.float32)
        self._april_in_sim = frames.april_in_sim
        self._robot_base = frames.robot_base_in_sim[:3, 3]
        self._names = list(self.spec.part_names) + ["obstacle_front", "obstacle_right", "obstacle_left"]
        self._part_idxs = {name: [i] for i, name in enumerate(self._names)}
        tag_x = frames.base_tag_position[0]
        z = TABLE_SURFACE_Z + 0.015
        self._obstacles = np.array([[tag_x + OBSTACLE_FRONT_X, 0.0, z],
                                    [tag_x + OBSTACLE_SIDE_X, -OBSTACLE_SIDE_Y, z],
                                    [tag_x + OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y, z]])
        self.reset()
        self._rng_np = np.random.RandomState(seed).get_state()
        gen = torch.Generator().manual_seed(seed)
        self._rng_torch = gen.get_state()
        self._rng_extra = np.random.default_rng(seed)
        self._log = io.StringIO()

    def reset(self) -> None:
        """Start the assembly over (the state machines, the pair being assembled); the generators run on."""
        self.furniture.reset()
        self._assemble_idx = 0
        self._move_neutral = False

    @contextmanager
    def _own_generators(self) -> Iterator[None]:
        np_state, torch_state = np.random.get_state(), self.torch.get_rng_state()
        np.random.set_state(self._rng_np)
        self.torch.set_rng_state(self._rng_torch)
        try:
            yield
        finally:
            self._rng_np, self._rng_torch = np.random.get_state(), self.torch.get_rng_state()
            np.random.set_state(np_state)
            self.torch.set_rng_state(torch_state)

    def _rb_states(self, obs: np.ndarray) -> Any:
        """FurnitureSim's rigid-body rows (position, x y z w quaternion, 6 zero velocities) in its world frame."""
        rows = np.zeros((len(self._names), 13), dtype=np.float32)
        for i, part in enumerate(self.spec.part_names):
            pose = obs[self.layout[f"pose/{part}"]].astype(np.float64)
            quat = xyzw_to_wxyz(pose[3:7])
            rows[i, :7] = mat_to_pose_xyzw(self._april_in_sim @ pose_to_mat(pose[:3], quat / np.linalg.norm(quat)))
        n = len(self.spec.part_names)
        rows[n:, :3] = self._obstacles
        rows[n:, 6] = 1.0
        return self.torch.from_numpy(rows)

    def act(self, obs: np.ndarray) -> np.ndarray:
        # the state machines print every transition; the expert keeps them in ``transitions`` instead
        with self._own_generators(), redirect_stdout(self._log):
            return self._act(np.asarray(obs, dtype=np.float32))

    @property
    def done(self) -> bool:
        """Whether every pair it scripts passed the expert's own (strict) assembled check; it then only holds
        still."""
        return self._assemble_idx >= len(self.pairs)

    @property
    def assembled(self) -> list[tuple[int, int]]:
        """The pairs whose assembly the expert's own (strict) check has passed so far, in order."""
        return self.pairs[:self._assemble_idx]

    @property
    def transitions(self) -> list[str]:
        """The state changes furniture_bench's state machines announced so far ("Changing state from a to b")."""
        return [line for line in self._log.getvalue().splitlines() if line]

    def _act(self, obs: np.ndarray) -> np.ndarray:
        import furniture_bench.controllers.control_utils as C
        from furniture_bench.utils import transform as T

        torch = self.torch
        furniture = self.furniture
        if self.done:
            return DONE_ACTION.copy()
        ee_pos = torch.from_numpy(obs[self.layout["ee_pos"]].copy())
        ee_quat = torch.from_numpy(obs[self.layout["ee_quat"]].copy())
        gripper_width = torch.from_numpy(obs[self.layout["gripper_width"]].copy())
        if self._move_neutral:
            if ee_pos[2] <= NEUTRAL_Z - 0.01:
                return np.r_[0.0, 0.0, NEUTRAL_Z - float(ee_pos[2]), 0, 0, 0, 1, -1].astype(np.float32)
            self._move_neutral = False
        rb_states = self._rb_states(obs)
        i1, i2 = self.pairs[self._assemble_idx]
        part1, part2 = furniture.parts[i1], furniture.parts[i2]
        pose1 = C.to_homogeneous(rb_states[i1, :3], C.quat2mat(rb_states[i1, 3:7]))
        pose2 = C.to_homogeneous(rb_states[i2, :3], C.quat2mat(rb_states[i2, 3:7]))
        rel = (torch.linalg.inv(pose1) @ pose2).numpy()
        if furniture.assembled(rel, furniture.assembled_rel_poses[(i1, i2)]):
            self._assemble_idx += 1
            self._move_neutral = True
            return DONE_ACTION.copy()
        args = (ee_pos, ee_quat, gripper_width, rb_states, self._part_idxs, self._sim_to_april,
                self._april_to_robot)
        for part in (part1, part2):
            part.pre_assemble_done |= not hasattr(part, "pre_assemble")
        if not part1.pre_assemble_done:
            goal_pos, goal_ori, gripper, _ = part1.pre_assemble(*args)
        elif not part2.pre_assemble_done:
            goal_pos, goal_ori, gripper, _ = part2.pre_assemble(*args)
        else:
            goal_pos, goal_ori, gripper, _ = part2.fsm_step(*args, part1.name)
        delta = (goal_pos - ee_pos).numpy().astype(np.float64)
        size = np.abs(delta) * 2
        stretch = size > STRETCH_ABOVE
        size[stretch] = STRETCH_ABOVE + (size[stretch] - STRETCH_ABOVE) * np.random.normal(1.5, 0.1, stretch.sum())
        limit = MAX_DELTA + 0.01 * torch.rand(3).numpy()
        limit[2] -= MAX_DELTA_Z_LESS
        delta = np.clip(size * np.sign(delta), -limit, limit)
        delta_quat = C.quat_mul(C.quat_conjugate(ee_quat), goal_ori.float())
        if part2.state_no_noise() and np.random.random() < INSERT_NOISE_P:
            delta = np.random.normal(delta, INSERT_POS_STD)
            noise = T.axisangle2quat(np.radians(np.random.normal(0, INSERT_ROT_STD_DEG, 3)))
            delta_quat = C.quat_multiply(delta_quat, torch.tensor(noise))
        if self.noise > 0:
            delta = delta + self._rng_extra.normal(0.0, self.noise * 0.01, 3)
        return np.concatenate([delta, np.asarray(delta_quat, dtype=np.float64),
                               np.asarray(gripper, dtype=np.float64).reshape(1)]).astype(np.float32)


def measure_expert(furniture: str, randomness: str, n: int, horizon: int, seed: int = 0,
                   progress: Callable[[int], None] | None = None) -> dict:
    """The scripted expert's success rate on ``n`` seeded resets under both of FurnitureBench's checks.

    The env ends an episode at the reward check (FurnitureSim's termination); here the expert keeps going until its
    own stricter check says assembled (it then only holds still) or ``horizon`` steps pass, so both rates come from
    the same episodes: ``reward_check`` = the reward check passed within the horizon, ``strict_check`` = the
    scripted-demo check held at the end of it, ``scripted_pairs_strict`` = the pairs the expert scripts
    (``FurnitureExpert.pairs``) passed the scripted-demo check at the end."""
    from inril_sim.furniture.mujoco_env import FurnitureMujocoEnv

    env = FurnitureMujocoEnv(furniture, randomness=randomness)
    rows = []
    start = time.perf_counter()
    for i in range(n):
        episode_seed = seed * 1_000_000 + i
        obs, _ = env.reset(seed=episode_seed)
        expert = FurnitureExpert(furniture, seed=episode_seed)
        first_success, info = None, {"success": False, "success_strict": False}
        for step in range(horizon):
            obs, _, terminated, _, info = env.step(expert.act(obs))
            if terminated and first_success is None:
                first_success = step + 1
            if expert.done:
                break
        strict_pairs = assembled_pairs(env.contract, env.parts_poses(), strict=True)
        rows.append({"seed": episode_seed, "reward_check_step": first_success,
                     "strict_check": bool(info["success_strict"]), "steps": step + 1,
                     "scripted_pairs_strict": set(expert.pairs) <= set(strict_pairs)})
        if progress is not None:
            progress(i + 1)
    env.close()
    reached = [r["reward_check_step"] for r in rows if r["reward_check_step"] is not None]
    return {"furniture": furniture, "randomness": randomness, "episodes": n, "horizon": horizon,
            "reward_check": len(reached) / n, "strict_check": sum(r["strict_check"] for r in rows) / n,
            "scripted_pairs_strict": sum(r["scripted_pairs_strict"] for r in rows) / n,
            "mean_steps_to_reward_check": float(np.mean(reached)) if reached else None,
            "seconds": round(time.perf_counter() - start, 1), "rows": rows}
