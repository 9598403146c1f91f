"""The fast Transport task: robosuite 1.5.2's TwoArmTransport scene, reset ranges and success test, two grippers.

Numbers below are robosuite's; each constant names its source (``environments/manipulation/two_arm_transport.py``,
the composite objects in ``models/objects/composite/{bin,lid,hammer}.py``, ``models/objects/group/transport.py``,
and the Panda's pose in the "opposed" two-arm configuration robomimic recorded its datasets with). What differs from
robosuite on purpose, besides the arms (see ``scene``):

- The three bins are fixed in place for the episode (mocap bodies) instead of 26 kg free bodies; they rest on the
  table rather than being dropped from 1 mm.
- The hammer's head half-size is fixed at the middle of robosuite's range [0.015, 0.018] (robosuite draws it when
  it builds the model, i.e. once per env with ``hard_reset=False``); objects start at rest.
- The two grippers do not collide with each other (the Panda arms would), and each gripper's goal is clipped to a
  box that stands in for its arm's reach: neither Panda can reach the other robot's table (their bases are 1.62 m
  apart), so neither gripper may cross more than ``HANDOVER_REACH`` past the middle between the tables.
"""
from __future__ import annotations

import mujoco
import numpy as np

from inril_sim.base_env import Arm, FloatingGrippersEnv
from inril_sim.layout import robots_observation, transport_object_features
from inril_sim.rotations import quat_to_mat
from inril_sim.scene import build_model

# -- Tables: MultiTableArena with tables_boundary (0.8, 1.2, 0.05) ---------------------------------------------------
TABLE_TOP = 0.8  # table_offsets[:, 2]
TABLE_HALF = np.array([0.4, 0.15, 0.025])  # table_full_size = tables_boundary with y * 0.25, halved
TABLE_Y = 0.45  # table_offsets[:, 1] = -/+ tables_boundary[1] * 3 / 8; table0 (robot0's) at -0.45

# -- Bins: Bin(bin_size=(0.3, 0.3, 0.15), wall_thickness=0.01) -----------------------------------------------------
BIN_SIZE = np.array([0.3, 0.3, 0.15])
BIN_WALL = 0.01
BIN_FLOOR = TABLE_TOP + BIN_WALL  # top of a bin's base geom
BIN_WALL_TOP = TABLE_TOP + BIN_SIZE[2]
BIN_X = 0.2  # x_centers: table_full_size[0] * 0.25; start bin (table0) and trash bin (table1) at +, target bin at -
START_BIN_XY = np.array([BIN_X, -TABLE_Y])
TARGET_BIN_XY = np.array([-BIN_X, TABLE_Y])
TRASH_BIN_XY = np.array([BIN_X, TABLE_Y])
PLACEMENT_TOL = 0.005  # pos_tol: every bin's x and y are drawn within +-5 mm; lid, payload and trash follow theirs
BIN_BASE_OFFSET = -(BIN_SIZE[2] - BIN_WALL) / 2  # base geom below the bin centre: what target/trash_bin_pos report

# -- Lid: Lid(lid_size=(0.3, 0.3, 0.01)), default handle (0.02, 0.08, 0.03), density 250, handle density 500 ---------
LID_PLATE_HALF = np.array([0.15, 0.15, 0.005])
LID_HANDLE_HALF = np.array([0.01, 0.04, 0.015])
LID_HALF_HEIGHT = LID_PLATE_HALF[2] + LID_HANDLE_HALF[2]  # 0.02: the lid body's origin is its bounding-box centre
LID_HANDLE_OFFSET = LID_HALF_HEIGHT - LID_HANDLE_HALF[2]  # handle centre above the lid origin (lid_handle_pos)

# -- Payload: HammerObject(handle_radius=0.015, handle_length=0.20, handle_density=150, handle_friction=4.0,
#    head_density_ratio=1.5), box handle; its body origin is the handle's centre, its z axis points to the head -----
HANDLE_HALF = np.array([0.015, 0.015, 0.10])
HANDLE_DENSITY = 150.0
HANDLE_FRICTION = 4.0
HEAD_HALF = 0.0165  # head_halfsize ~ U(handle_radius, 1.2 handle_radius), fixed at its middle (see module docstring)
HEAD_DENSITY = HANDLE_DENSITY * 1.5
PAYLOAD_YAW = (np.pi / 2 - np.pi / 6, np.pi / 2 + np.pi / 6)  # rot_centers / rot_tols of the payload sampler
# robosuite composes the sampled rotation with HammerObject.init_quat as if both were xyzw; the result, used as
# wxyz, lays the hammer flat with its head at heading +r (body y up) or -r (body y down), each with probability 1/2.

# -- Trash: BoxObject(size=[0.02, 0.02, 0.02]), default density 1000, yaw within +-0.3 pi ---------------------------
TRASH_HALF = 0.02
TRASH_YAW = 0.3 * np.pi

# -- Robots: two Pandas, "opposed": bases at (0, -/+0.81, 0.912) facing each other -----------------------------------
# robosuite's eef pose at init_qpos without joint noise (measured): robot0 at y < 0 facing +y, robot1 mirrored.
HOME_POS = (np.array([0.0, -0.35277, 1.01104]), np.array([0.0, 0.35277, 1.01104]))
BASE_YAW = (np.pi / 2, -np.pi / 2)
HANDOVER_REACH = 0.1  # how far past the middle (y = 0) a gripper's goal may go
WORKSPACE_X = 0.45
WORKSPACE_Z = (TABLE_TOP + 0.005, 1.3)
ARMS = (
    Arm(prefix="robot0_", home_pos=HOME_POS[0], base_yaw=BASE_YAW[0], workspace=(
        np.array([-WORKSPACE_X, -TABLE_Y - TABLE_HALF[1], WORKSPACE_Z[0]]),
        np.array([WORKSPACE_X, HANDOVER_REACH, WORKSPACE_Z[1]]))),
    Arm(prefix="robot1_", home_pos=HOME_POS[1], base_yaw=BASE_YAW[1], workspace=(
        np.array([-WORKSPACE_X, -HANDOVER_REACH, WORKSPACE_Z[0]]),
        np.array([WORKSPACE_X, TABLE_Y + TABLE_HALF[1], WORKSPACE_Z[1]]))),
)

BINS = ("start_bin", "target_bin", "trash_bin")


def _bin_xml(name: str) -> str:
    """A bin as a mocap body (placed at reset): base and four walls, with robosuite's sizes."""
    inner = (BIN_SIZE[0] - BIN_WALL) / 2
    wall_half = BIN_SIZE / 2
    walls = [((0, -inner), (wall_half[0], BIN_WALL / 2)), ((-inner, 0), (BIN_WALL / 2, wall_half[1])),
             ((0, inner), (wall_half[0], BIN_WALL / 2)), ((inner, 0), (BIN_WALL / 2, wall_half[1]))]
    geoms = [f'      <geom name="{name}_base" class="static" pos="0 0 {BIN_BASE_OFFSET}" '
             f'size="{inner} {inner} {BIN_WALL / 2}" rgba="0.3 0.2 0.1 1"/>']
    geoms += [f'      <geom class="static" pos="{x} {y} 0" size="{sx} {sy} {wall_half[2]}" rgba="0.9 0.9 0.9 0.3"/>'
              for (x, y), (sx, sy) in walls]
    return f'    <body name="{name}" mocap="true">\n' + "\n".join(geoms) + "\n    </body>"


def _fixtures_xml() -> str:
    # the scene's floor is only drawn; here objects can fall off the tables, so the floor collides
    ground = '    <geom name="ground" type="plane" class="static" size="2 2 0.1" rgba="0 0 0 0"/>'
    tables = [f'    <geom name="table{i}" class="static" size="{TABLE_HALF[0]} {TABLE_HALF[1]} {TABLE_HALF[2]}" '
              f'pos="0 {y} {TABLE_TOP - TABLE_HALF[2]}"/>' for i, y in enumerate((-TABLE_Y, TABLE_Y))]
    return "\n".join([ground, *tables, *(_bin_xml(name) for name in BINS)])


def _objects_xml() -> str:
    """Lid, hammer and trash cube as free bodies, geoms and densities as robosuite's composite objects."""
    h, head_z = HEAD_HALF, HANDLE_HALF[2] + HEAD_HALF
    head = f'class="object" density="{HEAD_DENSITY}" rgba="0.3 0.6 0.8 1"'
    return f"""
    <body name="lid">
      <freejoint name="lid_free"/>
      <geom name="lid_top" class="object" pos="0 0 {-LID_HALF_HEIGHT + LID_PLATE_HALF[2]}"
            size="{LID_PLATE_HALF[0]} {LID_PLATE_HALF[1]} {LID_PLATE_HALF[2]}" density="250" rgba="0.9 0.9 0.9 0.3"/>
      <geom name="lid_handle" class="object" pos="0 0 {LID_HANDLE_OFFSET}"
            size="{LID_HANDLE_HALF[0]} {LID_HANDLE_HALF[1]} {LID_HANDLE_HALF[2]}" density="500" rgba="0.3 0.2 0.1 1"/>
    </body>
    <body name="payload">
      <freejoint name="payload_free"/>
      <geom name="payload_handle" class="object" size="{HANDLE_HALF[0]} {HANDLE_HALF[1]} {HANDLE_HALF[2]}"
            density="{HANDLE_DENSITY}" friction="{HANDLE_FRICTION} 0.005 0.0001" rgba="0.8 0.2 0.2 1"/>
      <geom name="payload_head" {head} pos="0 0 {head_z}" size="{2 * h} {h} {h}"/>
      <geom name="payload_neck" {head} type="cylinder" pos="{2.2 * h} 0 {head_z}" quat="0.707106 0 0.707106 0"
            size="{0.8 * h} {0.2 * h}"/>
      <geom name="payload_face" {head} type="cylinder" pos="{2.8 * h} 0 {head_z}" quat="0.707106 0 0.707106 0"
            size="{h} {0.4 * h}"/>
      <geom name="payload_claw" {head} pos="{-2 * h} 0 {head_z}" quat="0.9238795 0 0.3826834 0"
            size="{0.7072 * h} {0.95 * h} {0.7072 * h}"/>
    </body>
    <body name="trash">
      <freejoint name="trash_free"/>
      <geom name="trash" class="object" size="{TRASH_HALF} {TRASH_HALF} {TRASH_HALF}" density="1000"
            rgba="0.6 0.1 0.1 1"/>
    </body>"""


def payload_quat(head_yaw: float, body_y_up: bool) -> np.ndarray:
    """wxyz orientation of a hammer lying flat with its head at heading ``head_yaw`` (its body z axis)."""
    z = np.array([np.cos(head_yaw), np.sin(head_yaw), 0.0])
    y = np.array([0.0, 0.0, 1.0 if body_y_up else -1.0])
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([np.cross(y, z), y, z]).ravel())
    return quat


class TransportEnv(FloatingGrippersEnv):
    """robomimic Transport: robot0 takes the hammer out of the lidded start bin and hands it to robot1, which puts it
    in the target bin after moving the trash cube from there into the trash bin.

    Success is robosuite's: the hammer touches the target bin's base and the trash touches the trash bin's base.
    """

    task = "transport"

    def _arms(self) -> tuple[Arm, ...]:
        return ARMS

    def _build_model(self) -> mujoco.MjModel:
        model = build_model(self.task, _fixtures_xml(), _objects_xml(), grippers=tuple(arm.prefix for arm in ARMS))

        def geom(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

        def body(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)

        # A contact between geoms a and b is coded a * ngeom + b; these are the codes of each success contact.
        n = model.ngeom
        target_base, trash_base, trash = geom("target_bin_base"), geom("trash_bin_base"), geom("trash")
        payload_geoms = np.flatnonzero(model.geom_bodyid == body("payload")).tolist()
        self._payload_in_target_codes = {c for g in payload_geoms for c in (g * n + target_base, target_base * n + g)}
        self._trash_in_trash_codes = {trash * n + trash_base, trash_base * n + trash}
        self._contact_code = np.array([n, 1])
        self._bin_mocap = {name: int(model.body_mocapid[body(name)]) for name in BINS}
        return model

    def __init__(self, render_mode: str | None = None, width: int = 256, height: int = 256) -> None:
        super().__init__(render_mode, width, height)
        self._qpos = {name: self._joint_qpos_adr(f"{name}_free") for name in ("lid", "payload", "trash")}

    # -- state ------------------------------------------------------------------------------------------------

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position, wxyz quaternion) of the free body ``name``: lid, payload or trash (views into qpos)."""
        adr = self._qpos[name]
        return self.data.qpos[adr:adr + 3], self.data.qpos[adr + 3:adr + 7]

    def bin_pos(self, name: str) -> np.ndarray:
        """Centre of the base geom of bin ``name``, as robosuite's ``target_bin_pos`` and ``trash_bin_pos``."""
        return self.data.mocap_pos[self._bin_mocap[name]] + np.array([0.0, 0.0, BIN_BASE_OFFSET])

    def lid_handle_pos(self) -> np.ndarray:
        pos, quat = self.object_pose("lid")
        return pos + quat_to_mat(quat)[:, 2] * LID_HANDLE_OFFSET

    def in_bins(self) -> tuple[bool, bool]:
        """(payload touches the target bin's base, trash touches the trash bin's base): robosuite's contact tests
        ``payload_in_target_bin`` and ``trash_in_trash_bin``."""
        codes = set((self.data.contact.geom @ self._contact_code).tolist())
        return not codes.isdisjoint(self._payload_in_target_codes), not codes.isdisjoint(self._trash_in_trash_codes)

    # -- task hooks -------------------------------------------------------------------------------------------

    def _place_objects(self, rng: np.random.Generator) -> None:
        xy = {name: centre + rng.uniform(-PLACEMENT_TOL, PLACEMENT_TOL, 2)
              for name, centre in zip(BINS, (START_BIN_XY, TARGET_BIN_XY, TRASH_BIN_XY))}
        for name in BINS:
            self.data.mocap_pos[self._bin_mocap[name]] = [*xy[name], TABLE_TOP + BIN_SIZE[2] / 2]
        yaw = rng.uniform(*PAYLOAD_YAW)
        body_y_up = bool(rng.random() >= 0.5)
        self._set_pose("lid", [*xy["start_bin"], BIN_WALL_TOP + LID_HALF_HEIGHT], np.array([1.0, 0.0, 0.0, 0.0]))
        self._set_pose("payload", [*xy["start_bin"], BIN_FLOOR + HEAD_HALF],
                       payload_quat(yaw if body_y_up else -yaw, body_y_up))
        trash_yaw = rng.uniform(-TRASH_YAW, TRASH_YAW)
        self._set_pose("trash", [*xy["target_bin"], BIN_FLOOR + TRASH_HALF],
                       np.array([np.cos(trash_yaw / 2), 0.0, 0.0, np.sin(trash_yaw / 2)]))

    def _set_pose(self, name: str, pos: list[float], quat: np.ndarray) -> None:
        adr = self._qpos[name]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = quat

    def _is_success(self) -> bool:
        return all(self.in_bins())

    def _get_obs(self) -> np.ndarray:
        payload_in_target_bin, trash_in_trash_bin = self.in_bins()
        eef_pos = (self.hand_pos(0), self.hand_pos(1))
        payload, trash, lid = (self.object_pose(name) for name in ("payload", "trash", "lid"))
        objects = transport_object_features(
            payload_pos=payload[0], payload_quat=payload[1], trash_pos=trash[0], trash_quat=trash[1],
            lid_handle_pos=self.lid_handle_pos(), lid_handle_quat=lid[1],
            target_bin_pos=self.bin_pos("target_bin"), trash_bin_pos=self.bin_pos("trash_bin"), eef_pos=eef_pos,
            payload_in_target_bin=payload_in_target_bin, trash_in_trash_bin=trash_in_trash_bin)
        robots = robots_observation(eef_pos, (self.hand_quat(0), self.hand_quat(1)),
                                    (self.hand_fingers(0), self.hand_fingers(1)))
        return np.concatenate([objects, robots]).astype(np.float32)
