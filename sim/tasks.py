"""The fast Lift, Can and Square tasks: robosuite 1.5.2's scenes, reset ranges and success tests, lean physics.

Numbers below are robosuite's (``environments/manipulation/{lift,pick_place,nut_assembly}.py`` and the arena
MJCFs); each constant names its source. What differs from robosuite on purpose: no arm (see ``scene``), objects
start at rest instead of being dropped from 1 to 6 cm, the can is a cylinder of the can mesh's size, and table
tops and bin floors are infinite planes (an object pushed past a table edge stays at table height, where
robosuite would drop it; the eef workspace box keeps the gripper well inside the tables).
"""
from __future__ import annotations

import mujoco
import numpy as np

from inril_sim.base_env import GripperTaskEnv
from inril_sim.scene import build_model, table_xml

# -- Lift: cube on a 0.8 x 0.8 table whose top is at z = 0.8 ------------------------------------------------------
LIFT_TABLE_TOP = 0.8
LIFT_CUBE_HALF_SIZE = (0.020, 0.022)  # BoxObject size_min / size_max, drawn per axis every episode
LIFT_CUBE_XY_RANGE = 0.03  # UniformRandomSampler x_range = y_range = [-0.03, 0.03] about the table centre
LIFT_CUBE_DENSITY = 1000.0
LIFT_HEIGHT = 0.04  # success: cube centre above table top + 0.04

# -- Can: can in bin1, goal is the can's quarter of bin2 (PickPlace single_object_mode=2, object "can") ----------
BIN_FLOOR = 0.82  # bins at z 0.8, floor half thickness 0.02
BIN1_POS = np.array([0.1, -0.25, 0.8])
BIN2_POS = np.array([0.1, 0.28, 0.8])
BIN_SIZE = np.array([0.39, 0.49])  # BinsArena table_full_size (x, y)
CAN_RADIUS, CAN_HALF_HEIGHT = 0.025, 0.04
# Placement: bin half extents minus 0.05, shrunk by the can's horizontal radius (ensure_object_boundary_in_range).
CAN_SPAWN_HALF = BIN_SIZE / 2 - 0.05 - np.hypot(0.025, 0.025)
# Can's bin id is 3: x in [bin2_x, bin2_x + size_x / 2], y in [bin2_y, bin2_y + size_y / 2], z in (0.8, 0.9).
CAN_GOAL_LOW = np.array([BIN2_POS[0], BIN2_POS[1], BIN2_POS[2]])
CAN_GOAL_HIGH = np.array([BIN2_POS[0] + BIN_SIZE[0] / 2, BIN2_POS[1] + BIN_SIZE[1] / 2, BIN2_POS[2] + 0.1])
CAN_GOAL_CENTER = (CAN_GOAL_LOW[:2] + CAN_GOAL_HIGH[:2]) / 2
BIN_WALL_TOP = 0.9

# -- Square: square nut on a table (top z = 0.82), square peg at (0.23, 0.1) ---------------------------------------
SQUARE_TABLE_TOP = 0.82
PEG_POS = np.array([0.23, 0.1])  # peg1, a 0.032 x 0.032 x 0.2 box centred at z = 0.85
ROUND_PEG_POS = np.array([0.23, -0.1])  # peg2 stays in the scene as an obstacle
PEG_TOP = 0.95
NUT_X_RANGE = (-0.115, -0.11)
NUT_Y_RANGE = (0.11, 0.225)
NUT_HALF_HEIGHT = 0.01
NUT_HANDLE_OFFSET = 0.054  # handle_site in the nut frame (along its x axis)
NUT_ON_PEG_XY = 0.03  # on_peg: |dx|, |dy| < 0.03 and z < table top + 0.05
NUT_ON_PEG_Z = SQUARE_TABLE_TOP + 0.05

CAN_OBJECT_XML = f"""
    <body name="object">
      <freejoint name="object_free"/>
      <geom name="can" class="object" type="cylinder" size="{CAN_RADIUS} {CAN_HALF_HEIGHT}" density="100"
            friction="0.95 0.3 0.1" condim="4" solref="0.004 1" solimp="0.998 0.998 0.001" rgba="0.8 0.1 0.1 1"/>
    </body>"""

# robosuite's square-nut.xml: four bars of a square ring and a handle along +x (pos, half size).
NUT_BOXES = (
    ((-0.03325, 0, 0), (0.0105, 0.04375, 0.01)),
    ((0, 0.03325, 0), (0.03125, 0.0105, 0.01)),
    ((0, -0.03325, 0), (0.03125, 0.0105, 0.01)),
    ((0.03325, 0, 0), (0.0105, 0.04375, 0.01)),
    ((NUT_HANDLE_OFFSET, 0, 0), (0.02525, 0.015875, 0.01)),
)
NUT_OBJECT_XML = "\n".join(
    ['    <body name="object">', '      <freejoint name="object_free"/>']
    + [
        f'      <geom class="object" pos="{x} {y} {z}" size="{sx} {sy} {sz}" density="100" friction="0.95 0.3 0.1" '
        f'condim="4" solref="0.02 1" solimp="0.998 0.998 0.001" rgba="0.8 0.6 0.2 1"/>'
        for (x, y, z), (sx, sy, sz) in NUT_BOXES
    ]
    + ["    </body>"]
)


def _bin_xml(name: str, pos: np.ndarray, dividers: bool) -> str:
    """A bin as in BinsArena: floor (visual; the floor plane collides), four walls, and for bin2 two dividers."""
    walls = [((0, 0.25), (0.21, 0.01)), ((0, -0.25), (0.21, 0.01)), ((0.2, 0), (0.01, 0.25)), ((-0.2, 0), (0.01, 0.25))]
    if dividers:
        walls += [((0, 0), (0.2, 0.01)), ((0, 0), (0.01, 0.25))]
    geoms = [f'      <geom name="{name}_floor" size="0.2 0.25 0.02" rgba="0.7 0.55 0.4 1"/>']
    geoms += [
        f'      <geom class="static" pos="{x} {y} 0.05" size="{sx} {sy} 0.05"/>' for (x, y), (sx, sy) in walls
    ]
    body = "\n".join(geoms)
    return f'    <body name="{name}" pos="{pos[0]} {pos[1]} {pos[2]}">\n{body}\n    </body>'


class LiftEnv(GripperTaskEnv):
    """robomimic Lift: raise the cube more than 4 cm above the table."""

    task = "lift"
    home_pos = np.array([-0.1028, 0.0, 1.011])
    workspace = (np.array([-0.3, -0.3, LIFT_TABLE_TOP + 0.005]), np.array([0.3, 0.3, 1.2]))

    def _build_model(self) -> mujoco.MjModel:
        half = np.mean(LIFT_CUBE_HALF_SIZE)
        cube = (
            f'    <body name="object">\n      <freejoint name="object_free"/>\n'
            f'      <geom name="cube" class="object" size="{half} {half} {half}" density="{LIFT_CUBE_DENSITY}" '
            f'friction="1 0.005 0.0001" rgba="1 0 0 1"/>\n    </body>'
        )
        model = build_model(self.task, table_xml(LIFT_TABLE_TOP), cube)
        self._cube_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "cube")
        self._cube_body = int(model.geom_bodyid[self._cube_geom])
        return model

    def _resize_cube(self, half: np.ndarray) -> None:
        """Change the cube's size in place, with the mass and inertia MuJoCo's compiler would have given it."""
        m, g, b = self.model, self._cube_geom, self._cube_body
        m.geom_size[g] = half
        m.geom_rbound[g] = np.linalg.norm(half)
        m.geom_aabb[g, 3:] = half
        mass = LIFT_CUBE_DENSITY * 8 * np.prod(half)
        m.body_mass[b] = mass
        sq = half**2
        m.body_inertia[b] = mass / 3 * np.array([sq[1] + sq[2], sq[0] + sq[2], sq[0] + sq[1]])

    def _place_objects(self, rng: np.random.Generator) -> None:
        half = rng.uniform(*LIFT_CUBE_HALF_SIZE, size=3)
        self._resize_cube(half)
        xy = rng.uniform(-LIFT_CUBE_XY_RANGE, LIFT_CUBE_XY_RANGE, size=2)
        self._set_object_pose(np.array([xy[0], xy[1], LIFT_TABLE_TOP + half[2]]), rng.uniform(0, 2 * np.pi))

    def _is_success(self) -> bool:
        return bool(self.object_pos[2] > LIFT_TABLE_TOP + LIFT_HEIGHT)


class CanEnv(GripperTaskEnv):
    """robomimic Can: move the can from bin1 into its quarter of bin2 and let go of it."""

    task = "can"
    home_pos = np.array([-0.0428, -0.1, 1.011])
    workspace = (np.array([-0.15, -0.5, BIN_FLOOR + 0.005]), np.array([0.35, 0.55, 1.25]))

    def _build_model(self) -> mujoco.MjModel:
        goal = CAN_GOAL_CENTER
        fixtures = "\n".join([
            # One invisible plane is both bin floors (they are at the same height) for cheap, stable contacts.
            f'    <geom name="bin_floor" type="plane" class="static" size="0.5 0.6 0.01" pos="0.1 0 {BIN_FLOOR}" '
            f'rgba="0 0 0 0"/>',
            _bin_xml("bin1", BIN1_POS, dividers=False),
            _bin_xml("bin2", BIN2_POS, dividers=True),
            f'    <geom name="goal_marker" type="cylinder" size="{CAN_RADIUS} 0.001" '
            f'pos="{goal[0]} {goal[1]} {BIN_FLOOR + 0.001}" rgba="0.2 0.8 0.2 0.5"/>',
        ])
        return build_model(self.task, fixtures, CAN_OBJECT_XML)

    def _place_objects(self, rng: np.random.Generator) -> None:
        xy = BIN1_POS[:2] + rng.uniform(-CAN_SPAWN_HALF, CAN_SPAWN_HALF)
        self._set_object_pose(np.array([xy[0], xy[1], BIN_FLOOR + CAN_HALF_HEIGHT]), rng.uniform(0, 2 * np.pi))

    def _is_success(self) -> bool:
        pos = self.object_pos
        in_bin = bool(np.all(pos > CAN_GOAL_LOW) and np.all(pos < CAN_GOAL_HIGH))
        return in_bin and self._object_released()


class SquareEnv(GripperTaskEnv):
    """robomimic Square: put the square nut around the square peg and let go of it."""

    task = "square"
    home_pos = np.array([-0.1028, 0.0, 1.011])
    workspace = (np.array([-0.3, -0.35, SQUARE_TABLE_TOP + 0.005]), np.array([0.35, 0.35, 1.25]))

    def _build_model(self) -> mujoco.MjModel:
        pegs = "\n".join([
            table_xml(SQUARE_TABLE_TOP),
            f'    <geom name="peg1" class="static" pos="{PEG_POS[0]} {PEG_POS[1]} 0.85" size="0.016 0.016 0.1" '
            f'rgba="0.8 0.6 0.2 1"/>',
            f'    <geom name="peg2" class="static" type="cylinder" pos="{ROUND_PEG_POS[0]} {ROUND_PEG_POS[1]} 0.85" '
            f'size="0.02 0.1" rgba="0.6 0.6 0.6 1"/>',
        ])
        return build_model(self.task, pegs, NUT_OBJECT_XML)

    def _place_objects(self, rng: np.random.Generator) -> None:
        x, y = rng.uniform(*NUT_X_RANGE), rng.uniform(*NUT_Y_RANGE)
        self._set_object_pose(np.array([x, y, SQUARE_TABLE_TOP + NUT_HALF_HEIGHT]), rng.uniform(0, 2 * np.pi))

    def _is_success(self) -> bool:
        pos = self.object_pos
        on_peg = bool(np.all(np.abs(pos[:2] - PEG_POS) < NUT_ON_PEG_XY) and pos[2] < NUT_ON_PEG_Z)
        return on_peg and self._object_released()
