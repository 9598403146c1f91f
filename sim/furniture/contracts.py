"""FurnitureBench's state-observation, action and success contracts, read from the `furniture_bench` package itself.

Both FurnitureSim (IsaacGym) and our MuJoCo port must look the same to a policy: a flat observation of
``robot_state`` (14: ee_pos 3, ee_quat 4, ee_pos_vel 3, ee_ori_vel 3, gripper_width 1, FurnitureBench's
``ROBOT_STATES`` order) then ``parts_poses`` (7 per part: position and quaternion x, y, z, w in the AprilTag base
frame), and the 8-D action (delta position in metres, delta quaternion x, y, z, w multiplied onto the current
end-effector orientation, gripper: < 0 open, > 0 close). The numbers come from imports, not copies, so a change in
furniture_bench shows up here. furniture_bench 0.1 is installed without its metadata's dependencies (its
``gym==0.21.0`` pin does not build; ``make setup`` installs what it really imports), so import errors name that.
"""
from __future__ import annotations

import copy
import io
from contextlib import redirect_stderr
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

POSE_DIM = 7            # position 3 + quaternion 4 (x, y, z, w), FurnitureSimEnv.pose_dim
ACTION_DIM = POSE_DIM + 1
# Both of FurnitureBench's checks bound each axis of the relative position by at most 10 mm (|d| <= 15 mm), so a
# pair farther than this from every assembled pose is not assembled.
NEAR_ASSEMBLED = 0.02


class FurnitureContractError(ValueError):
    """An observation or action that does not follow FurnitureBench's contract; the message says which part."""


def import_furniture_bench() -> Any:
    """furniture_bench's furniture and robot-state modules; every use of the package goes through here first."""
    try:
        with redirect_stderr(io.StringIO()):  # gym 0.26's import notice ("unmaintained, no NumPy 2") on every
            import gym  # noqa: F401          # command: furniture_bench uses only gym's logger and spaces
        import furniture_bench.furniture as furniture
        import furniture_bench.robot.robot_state as robot_state
    except ImportError as exc:
        raise ImportError(
            f"furniture_bench cannot be imported ({exc}): run 'make setup', which installs furniture-bench 0.1 "
            "with --no-deps plus what it imports (gym 0.26.2, numba, pyrealsense2 with the Debian package "
            "libusb-1.0-0, dt-apriltags)") from exc
    return furniture, robot_state


@dataclass(frozen=True)
class FurnitureSpec:
    """One FurnitureBench furniture as a policy sees it."""
    name: str
    part_names: tuple[str, ...]
    robot_state_keys: tuple[str, ...]
    robot_state_dims: tuple[int, ...]
    should_be_assembled: tuple[tuple[int, int], ...]

    @property
    def robot_state_dim(self) -> int:
        return sum(self.robot_state_dims)

    @property
    def obs_dim(self) -> int:
        return self.robot_state_dim + POSE_DIM * len(self.part_names)

    def layout(self) -> dict[str, slice]:
        """Named slices of the flat observation: each robot-state key, then each part's pose."""
        slices, start = {}, 0
        for key, dim in zip(self.robot_state_keys, self.robot_state_dims):
            slices[key], start = slice(start, start + dim), start + dim
        for part in self.part_names:
            slices[f"pose/{part}"], start = slice(start, start + POSE_DIM), start + POSE_DIM
        return slices


@lru_cache(maxsize=None)
def _definition(name: str) -> Any:
    """furniture_bench's furniture object for ``name``, made once: the success checks used here read it only."""
    furniture, _ = import_furniture_bench()
    try:
        return furniture.furniture_factory(name)
    except Exception as exc:  # furniture_factory raises a bare ValueError/KeyError for unknown names
        raise FurnitureContractError(f"furniture_bench has no furniture '{name}' ({exc})") from exc


@lru_cache(maxsize=None)
def furniture_spec(name: str) -> FurnitureSpec:
    """The contract of ``name`` (``one_leg``, ``lamp``, ``round_table``, ...) from furniture_bench's definitions."""
    _, robot_state = import_furniture_bench()
    definition = _definition(name)
    keys = tuple(robot_state.ROBOT_STATES)
    return FurnitureSpec(
        name=name, part_names=tuple(p.name for p in definition.parts), robot_state_keys=keys,
        robot_state_dims=tuple(robot_state.ROBOT_STATE_DIMS[k] for k in keys),
        should_be_assembled=tuple(tuple(pair) for pair in definition.should_be_assembled))


def assembled_rel_pose(name: str, pair: tuple[int, int]) -> np.ndarray:
    """furniture_bench's first allowed pose (4x4) of part ``pair[1]`` in part ``pair[0]``'s frame when assembled
    (``assembled_rel_poses``): where the MuJoCo port seats a threaded part."""
    poses = _definition(name).assembled_rel_poses
    if pair not in poses:
        raise FurnitureContractError(f"furniture_bench's {name} assembles no pair {pair}; it has {sorted(poses)}")
    return np.asarray(poses[pair][0], dtype=float)


def own_reset_poses(*furnitures: Any) -> None:
    """Give each furniture_bench furniture reset poses of its own.

    Why: furniture_bench's ``Part`` keeps ``reset_pos`` as a shallow copy of furniture_bench's global config, and
    ``randomize_init_pose`` writes each random draw into the inner arrays, i.e. into the global config. Every
    furniture built afterwards in the process takes that draw as its nominal pose, so the reset distribution
    random-walks away from FurnitureBench's as envs come and go (each evaluation builds new ones; FurnitureSim
    builds one furniture per env). Measured on the MuJoCo port before this: an env built after 20 others had run,
    reset with seed 5, started 0.098 off (max over the observation) from the first env reset with seed 5."""
    for furniture in furnitures:
        for part in furniture.parts:
            part.reset_pos = copy.deepcopy(part.part_config["reset_pos"])
            part.reset_ori = copy.deepcopy(part.part_config["reset_ori"])


def flatten_observation(spec: FurnitureSpec, obs: Mapping[str, Any]) -> np.ndarray:
    """FurnitureSim's state observation (``robot_state`` as a dict or already concatenated, ``parts_poses``) for
    one env as our flat float32 vector; a missing key, a wrong size or a non-finite number is an error that names
    it (a NaN pose must not reach a policy that commands an arm)."""
    missing = [k for k in ("robot_state", "parts_poses") if k not in obs]
    if missing:
        raise FurnitureContractError(f"{spec.name}: observation lacks {', '.join(missing)} (keys: {sorted(obs)}); "
                                     "FurnitureSim needs its state observation keys (FurnitureSimState-v0)")
    robot = obs["robot_state"]
    if isinstance(robot, Mapping):
        absent = [k for k in spec.robot_state_keys if k not in robot]
        if absent:
            raise FurnitureContractError(f"{spec.name}: robot_state lacks {', '.join(absent)}")
        robot = np.concatenate([np.asarray(robot[k], dtype=np.float64).reshape(-1) for k in spec.robot_state_keys])
    parts = [("robot_state", np.asarray(robot, dtype=np.float64).reshape(-1), spec.robot_state_dim),
             ("parts_poses", np.asarray(obs["parts_poses"], dtype=np.float64).reshape(-1),
              POSE_DIM * len(spec.part_names))]
    for key, value, size in parts:
        if value.size != size:
            raise FurnitureContractError(f"{spec.name}: {key} has {value.size} numbers, FurnitureBench defines "
                                         f"{size}")
        if not np.all(np.isfinite(value)):
            raise FurnitureContractError(f"{spec.name}: {key} holds non-finite values at "
                                         f"{np.flatnonzero(~np.isfinite(value)).tolist()}")
    return np.concatenate([v for _, v, _ in parts]).astype(np.float32)


def to_furniture_action(action: np.ndarray) -> np.ndarray:
    """A policy's 8-D action in [-1, 1] as FurnitureSim applies it: position delta as is, the quaternion
    normalised (FurnitureSim multiplies it onto the end-effector orientation unnormalised, so a raw network output
    would scale the target rotation matrix), the gripper as is. Rejects wrong shapes, non-finite values and a
    quaternion too short to give a direction."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ACTION_DIM,):
        raise FurnitureContractError(f"FurnitureBench action has shape {action.shape}, expected ({ACTION_DIM},): "
                                     "delta xyz, delta quaternion xyzw, gripper")
    if not np.all(np.isfinite(action)):
        raise FurnitureContractError(f"FurnitureBench action holds non-finite values: {action.tolist()}")
    out = np.clip(action, -1.0, 1.0)
    norm = np.linalg.norm(out[3:7])
    if norm < 1e-6:
        raise FurnitureContractError(f"FurnitureBench action's delta quaternion {out[3:7].tolist()} has no "
                                     "direction; 'no rotation' is (0, 0, 0, 1)")
    out[3:7] /= norm
    return out


def _rigid_inverse(pose: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (transpose the rotation; no LAPACK call, which is slow under load)."""
    inverse = np.eye(4, dtype=pose.dtype)
    inverse[:3, :3] = pose[:3, :3].T
    inverse[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return inverse


def assembled_pairs(spec: FurnitureSpec, parts_poses: np.ndarray, strict: bool = False) -> list[tuple[int, int]]:
    """The pairs of ``spec.should_be_assembled`` that FurnitureBench counts as assembled in ``parts_poses``.

    ``strict=False`` is the reward check (``Furniture.is_assembled_idx``: 10 / 5 / 10 mm, column cosines >= 0.94,
    position only for the pairs in ``position_only``), ``strict=True`` the scripted-demo check
    (``Furniture.assembled``: 5 mm, 0.98). Both run furniture_bench's own code, so they match FurnitureSim's reward.
    A pair with a prerequisite (``should_assembled_first``, the lamp's hood after its bulb) counts only when the
    prerequisite is assembled in the same poses: FurnitureSim reads its running ``assembled_set`` instead, which
    differs only once a prerequisite pair comes apart again."""
    from furniture_bench.utils import transform

    definition = _definition(spec.name)
    poses = np.asarray(parts_poses, dtype=np.float32).reshape(-1)
    founds = np.ones(len(spec.part_names), dtype=bool)
    done = []
    for i, j in spec.should_be_assembled:
        rel = _rigid_inverse(transform.pose2mat(poses[7 * i:7 * i + 7])) @ transform.pose2mat(poses[7 * j:7 * j + 7])
        allowed = definition.assembled_rel_poses[(i, j)]
        if min(np.linalg.norm(rel[:3, 3] - np.asarray(a)[:3, 3]) for a in allowed) > NEAR_ASSEMBLED:
            continue  # cannot pass either check; furniture_bench's own code costs milliseconds, so skip it
        definition.assembled_set = set(done)  # what is_assembled_idx's should_assembled_first test reads
        ok = definition.assembled(rel, allowed) if strict else definition.is_assembled_idx(i, j, poses, founds)
        if ok:
            done.append((i, j))
    return done
