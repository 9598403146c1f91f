"""MuJoCo scene of FurnitureSim's square-table tasks (one_leg), built from the furniture_bench package's assets.

What is taken from the package and what is ours (reference/furniture-notes.md §2-4 has the measurements):

- Visuals are the package's OBJ meshes (table top, legs, table, obstacles, base tag); they never collide.
- Collision is primitive. FurnitureSim collides the full meshes through PhysX SDFs; in MuJoCo convex decomposition
  fills the thread grooves (legs stick 7-19 mm above the seat) and mesh SDFs let the leg fall through the thread,
  so a leg is a box with a cylindrical peg (radius 10 mm, chamfered tip) and each hole of the top is a square cell
  filled by 16 convex wedges around an 11 mm bore, with a floor 27 mm below the top face (the blind hole).
- The thread is a constraint, not geometry: each hole has a hidden carrier body on a slide and a hinge along the
  hole axis, coupled by a fixed tendon (slide - pitch/2pi * hinge = 0) held by a tendon equality, and one inactive
  weld per (hole, leg) that ``screw`` switches on when a leg engages. The slide's lower limit is the seat, where
  the leg sits at the identity rotation FurnitureBench's success test asks for.
- The Panda is the package's ``franka_panda.urdf`` with its collision STLs (MuJoCo cannot read the visual .dae),
  torque motors with the URDF's effort limits, gravity compensated, armature 0.01 and joint friction 0.05 as
  FurnitureSim sets them; the fingers are damped and heavier than the URDF's (``FINGER_DAMPING``).
- Masses: 151 g for the top and 23.1 g per leg (furniture_bench's sim_config, which imports IsaacGym); friction
  0.15 for parts and table (sim_config), 1 for the finger pads.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import mujoco
import numpy as np

from inril_sim.furniture.frames import (OBSTACLE_FRONT_X, OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y, TABLE_CENTRE_Z,
                                         TABLE_SURFACE_Z, furniture_frames)

TIMESTEP = 1.0 / 120.0
PHYSICS_STEPS_PER_ENV_STEP = 6  # 0.05 s per env step, as FurnitureSim's 3 x (1/60 s) calls

# Square-table geometry in the part frames (from the OBJ bounds: top +-0.0812 x 0.0313, legs 0.03 square)
TOP_HALF_WIDTH = 0.08125           # SquareTableTop.half_width
TOP_HALF_THICKNESS = 0.0156
HOLE_OFFSET = 0.05625              # |x|, |z| of the holes = the assembled leg positions (SquareTable)
LEG_SEAT_Y = 0.046875              # assembled leg centre above the top's centre along the top's y (SquareTable)
LEG_HALF_WIDTH = 0.015             # SquareTableLeg.half_width
LEG_BODY_HALF_LENGTH = 0.0312      # the square body; the threaded peg below it reaches y = -0.0562
PEG_RADIUS, PEG_TIP_RADIUS, PEG_TIP_LENGTH = 0.010, 0.008, 0.002
PEG_BOTTOM_Y = -0.0562
BORE_RADIUS = 0.011
HOLE_CELL_HALF = 0.025             # square cell around each hole filled by the wedges
HOLE_DEPTH = 0.027                 # blind hole, from the top face
N_WEDGES = 16
TOP_MASS, LEG_MASS = 0.151, 0.0231
PART_FRICTION, PAD_FRICTION = 0.15, 1.0

# The thread, measured on the leg and top meshes (furniture-notes §1): right-handed, 9.6 mm pitch, about 2.4 cm
# engaged when seated, so it starts 24 mm above the seat: a leg held there has its peg 4 mm into the bore (the
# feasibility study engaged at 22 mm; a leg that FurnitureBench's expert presses into the hole and lets go of
# reaches 22.3-22.9 mm, and a model that misses the thread there drops legs the real one catches)
THREAD_PITCH = 0.0096
THREAD_START = 0.024
# MuJoCo's soft constraints yield in proportion to load / (impedance x effective mass of the constrained dofs), so a
# feather-light carrier lets a 5 N push slide a leg down the thread without turning it. The carrier's joints get the
# inertia of a leg-sized body (armature, weightless) and the thread's constraints are nearly hard (impedance 0.99 to
# 0.999, time constant 2 physics steps): the helix then holds within a few hundredths of a millimetre.
# The seat is the slide's lower limit, where the slide's armature makes the stop stiff (a 0.05 N m twist, 33 N
# along the axis, gives a fraction of a degree of give).
CARRIER_SLIDE_ARMATURE, CARRIER_HINGE_ARMATURE = 1.0, 3e-6
# Thread friction as a constant friction torque on the hinge: 0.01 N m holds a 5 N axial push (7.6 mN m through the
# helix), as a steel-on-plastic thread at its self-locking limit does, and is a fifth of the twist that screws.
THREAD_FRICTION = 0.01
THREAD_SOLREF = (2 * TIMESTEP, 1.0)
THREAD_SOLIMP = (0.999, 0.9999, 0.001, 0.5, 2.0)

ARM_ARMATURE, ARM_FRICTIONLOSS = 0.01, 0.05
# Fingers: damping 100 (the URDF's 0.3 lets them slam and throw a leg) and armature 5, without which the 13 N
# opening force pushes the light fingers 1 cm through their joint limits (MuJoCo's soft limits scale with inertia).
FINGER_DAMPING, FINGER_ARMATURE = 100.0, 5.0
GRIPPER_FORCE = 13.0               # sim_config gripper_torque, applied to each finger

LEG_NAMES = tuple(f"square_table_leg{i}" for i in range(1, 5))
TOP_NAME = "square_table_top"
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
EE_BODY = "k_ee_link"

# contype/conaffinity bits: the world and parts collide with everything, the robot never with itself
_WORLD, _PART, _ROBOT = 1, 2, 4


def hole_positions() -> np.ndarray:
    """(4, 3) hole centres at the seat height in the top's frame, in furniture_bench's assembled_rel_poses order."""
    return np.array([[sx * HOLE_OFFSET, LEG_SEAT_Y, sz * HOLE_OFFSET] for sz in (-1, 1) for sx in (-1, 1)])


def _asset_root() -> Path:
    try:
        return Path(str(files("furniture_bench") / "assets"))
    except ModuleNotFoundError as exc:
        raise ImportError("furniture_bench is not installed: run 'make setup' (furniture-bench 0.1, --no-deps)") \
            from exc


def _panda_spec(root: Path) -> mujoco.MjSpec:
    """The package's Panda URDF without its .dae visuals, meshes read from the flat collision-STL folder."""
    description = root / "franka_description_ros" / "franka_description"
    urdf = (description / "robots" / "franka_panda.urdf").read_text()
    urdf = re.sub(r"<visual>.*?</visual>", "", urdf, flags=re.S)
    compiler = (f'<mujoco><compiler meshdir="{description / "meshes" / "collision"}" strippath="true" '
                'fusestatic="false" discardvisual="false"/></mujoco>')
    urdf, n = re.subn(r"(<robot [^>]*>)", r"\1" + compiler, urdf, count=1)
    if n != 1:
        raise ValueError("furniture_bench's franka_panda.urdf has no <robot> element; is the package intact?")
    spec = mujoco.MjSpec.from_string(urdf)
    for joint in spec.joints:
        if joint.name in ARM_JOINTS:
            joint.armature, joint.frictionloss, joint.damping = ARM_ARMATURE, ARM_FRICTIONLOSS, 0.0
        elif joint.name in FINGER_JOINTS:
            joint.damping, joint.armature = FINGER_DAMPING, FINGER_ARMATURE
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = _ROBOT, _WORLD | _PART
        geom.friction = [PAD_FRICTION, 0.005, 0.0001]
    for body in spec.bodies:
        body.gravcomp = 1.0
    return spec


def _mesh(spec: mujoco.MjSpec, name: str, path: Path) -> str:
    mesh = spec.add_mesh()
    mesh.name, mesh.file = name, str(path)
    return name


def _visual(body: mujoco.MjsBody, mesh: str, rgba: tuple[float, ...], pos=(0, 0, 0)) -> None:
    geom = body.add_geom()
    geom.type, geom.meshname, geom.rgba, geom.pos = mujoco.mjtGeom.mjGEOM_MESH, mesh, rgba, pos
    geom.contype = geom.conaffinity = 0
    geom.group, geom.density = 2, 0.0


def _box(body: mujoco.MjsBody, half: tuple[float, float, float], pos=(0, 0, 0), contype: int = _PART,
         friction: float = PART_FRICTION, name: str = "") -> mujoco.MjsGeom:
    geom = body.add_geom()
    geom.type, geom.size, geom.pos, geom.name = mujoco.mjtGeom.mjGEOM_BOX, half, pos, name
    geom.contype, geom.conaffinity = contype, _WORLD | _PART | _ROBOT
    geom.friction = [friction, 0.005, 0.0001]
    geom.group, geom.rgba = 3, (0.5, 0.5, 0.5, 1)
    return geom


def _wedge_vertices(index: int, bore: float, half: float, half_y: float) -> np.ndarray:
    """Vertices of wedge ``index``: the part of the square cell [-half, half]^2 (x, z) outside the bore between two
    angles, extruded over +-half_y along y. Convex, so MuJoCo collides it exactly."""
    a0, a1 = 2 * np.pi * index / N_WEDGES, 2 * np.pi * (index + 1) / N_WEDGES
    points = [bore * np.array([np.cos(a), np.sin(a)]) for a in (a0, a1)]
    for a in (a0, a1):
        direction = np.array([np.cos(a), np.sin(a)])
        points.append(direction * half / np.max(np.abs(direction)))
    for corner in ((half, half), (-half, half), (-half, -half), (half, -half)):
        angle = np.arctan2(corner[1], corner[0]) % (2 * np.pi)
        if a0 < angle < a1:
            points.append(np.array(corner))
    return np.array([[x, y, z] for x, z in points for y in (-half_y, half_y)])


def _add_top(spec: mujoco.MjSpec, root: Path) -> None:
    body = spec.worldbody.add_body()
    body.name = TOP_NAME
    body.add_freejoint().name = f"{TOP_NAME}_free"
    body.mass, body.explicitinertial = TOP_MASS, True
    body.inertia = TOP_MASS / 12 * np.array([4 * TOP_HALF_WIDTH ** 2 + 4 * TOP_HALF_THICKNESS ** 2,
                                             8 * TOP_HALF_WIDTH ** 2,
                                             4 * TOP_HALF_WIDTH ** 2 + 4 * TOP_HALF_THICKNESS ** 2])
    _visual(body, _mesh(spec, TOP_NAME, root / "furniture/mesh/square_table/square_table_top.obj"),
            (0.85, 0.75, 0.6, 1))
    inner = TOP_HALF_WIDTH - 2 * HOLE_CELL_HALF  # the cross between the four corner cells
    _box(body, (inner, TOP_HALF_THICKNESS, TOP_HALF_WIDTH))
    for sx in (-1, 1):
        _box(body, (HOLE_CELL_HALF, TOP_HALF_THICKNESS, inner), pos=(sx * HOLE_OFFSET, 0, 0))
    floor_half = (TOP_HALF_THICKNESS * 2 - HOLE_DEPTH) / 2
    for k, hole in enumerate(hole_positions()):
        for i in range(N_WEDGES):
            mesh = spec.add_mesh()
            mesh.name = f"hole{k}_wedge{i}"
            mesh.uservert = _wedge_vertices(i, BORE_RADIUS, HOLE_CELL_HALF, TOP_HALF_THICKNESS).reshape(-1)
            geom = body.add_geom()
            geom.type, geom.meshname, geom.pos = mujoco.mjtGeom.mjGEOM_MESH, mesh.name, (hole[0], 0, hole[2])
            geom.contype, geom.conaffinity = _PART, _WORLD | _PART | _ROBOT
            geom.friction, geom.group, geom.density = [PART_FRICTION, 0.005, 0.0001], 3, 0.0
        _box(body, (HOLE_CELL_HALF, floor_half, HOLE_CELL_HALF),
             pos=(hole[0], -TOP_HALF_THICKNESS + floor_half, hole[2]))
        _add_carrier(body, k, hole)


def _add_carrier(top: mujoco.MjsBody, hole_index: int, seat: np.ndarray) -> None:
    """The screw's carrier at ``seat`` (the seated leg pose): slide and hinge along the top's y axis."""
    carrier = top.add_body()
    carrier.name, carrier.pos = f"carrier{hole_index}", seat
    carrier.mass, carrier.explicitinertial, carrier.inertia = 1e-3, True, (1e-6, 1e-6, 1e-6)
    carrier.gravcomp = 1.0  # armature has no weight: the carrier's inertia is all in its joints
    slide = carrier.add_joint()
    slide.name, slide.type, slide.axis = f"carrier{hole_index}_slide", mujoco.mjtJoint.mjJNT_SLIDE, (0, 1, 0)
    slide.range, slide.limited = (0.0, THREAD_START + THREAD_PITCH), mujoco.mjtLimited.mjLIMITED_TRUE
    slide.armature, slide.solref_limit, slide.solimp_limit = CARRIER_SLIDE_ARMATURE, THREAD_SOLREF, THREAD_SOLIMP
    hinge = carrier.add_joint()
    hinge.name, hinge.type, hinge.axis = f"carrier{hole_index}_hinge", mujoco.mjtJoint.mjJNT_HINGE, (0, 1, 0)
    hinge.limited = mujoco.mjtLimited.mjLIMITED_FALSE  # the slide's lower limit is the seat
    hinge.frictionloss, hinge.damping, hinge.armature = THREAD_FRICTION, 0.01, CARRIER_HINGE_ARMATURE


def _add_leg(spec: mujoco.MjSpec, root: Path, name: str) -> None:
    body = spec.worldbody.add_body()
    body.name = name
    body.add_freejoint().name = f"{name}_free"
    body.mass, body.explicitinertial = LEG_MASS, True
    length = LEG_BODY_HALF_LENGTH * 2
    body.inertia = LEG_MASS / 12 * np.array([length ** 2 + (2 * LEG_HALF_WIDTH) ** 2, 2 * (2 * LEG_HALF_WIDTH) ** 2,
                                             length ** 2 + (2 * LEG_HALF_WIDTH) ** 2])
    _visual(body, _mesh(spec, name, root / f"furniture/mesh/square_table/{name}.obj"), (0.85, 0.75, 0.6, 1))
    _box(body, (LEG_HALF_WIDTH, LEG_BODY_HALF_LENGTH, LEG_HALF_WIDTH), name=f"{name}_body")
    along_y = (np.sqrt(0.5), -np.sqrt(0.5), 0, 0)  # cylinder z axis onto the leg's y axis
    peg_top, peg_tip = -LEG_BODY_HALF_LENGTH, PEG_BOTTOM_Y + PEG_TIP_LENGTH
    for radius, y0, y1 in ((PEG_RADIUS, peg_tip, peg_top), (PEG_TIP_RADIUS, PEG_BOTTOM_Y, peg_tip)):
        geom = body.add_geom()
        geom.type, geom.size = mujoco.mjtGeom.mjGEOM_CYLINDER, (radius, (y1 - y0) / 2, 0)
        geom.pos, geom.quat, geom.name = (0, (y0 + y1) / 2, 0), along_y, f"{name}_peg" if radius == PEG_RADIUS else ""
        geom.contype, geom.conaffinity = _PART, _WORLD | _PART | _ROBOT
        geom.friction, geom.group = [PART_FRICTION, 0.005, 0.0001], 3


def _add_fixtures(spec: mujoco.MjSpec, root: Path) -> None:
    world = spec.worldbody
    frames = furniture_frames()
    table = world.add_body()
    table.name, table.pos = "table", (0, 0, TABLE_CENTRE_Z)
    _visual(table, _mesh(spec, "table", root / "furniture/mesh/table.obj"), (0.55, 0.55, 0.55, 1))
    _box(table, (0.65, 0.4, 0.015), contype=_WORLD, name="table_top")
    tag = world.add_body()
    tag.name, tag.pos = "base_tag", frames.base_tag_position + (0, 0, 0.0005)
    _visual(tag, _mesh(spec, "base_tag", root / "furniture/mesh/base_tag.obj"), (0.95, 0.95, 0.95, 1))
    quarter_turn = (np.sqrt(0.5), 0, 0, np.sqrt(0.5))
    front_mesh = _mesh(spec, "obstacle_front", root / "furniture/mesh/obstacle_front.obj")
    side_mesh = _mesh(spec, "obstacle_side", root / "furniture/mesh/obstacle_side.obj")
    tag_x = frames.base_tag_position[0]
    for name, mesh, pos, half in (
            ("obstacle_front", front_mesh, (tag_x + OBSTACLE_FRONT_X, 0), (0.175, 0.01, 0.015)),
            ("obstacle_right", side_mesh, (tag_x + OBSTACLE_SIDE_X, -OBSTACLE_SIDE_Y), (0.01, 0.085, 0.015)),
            ("obstacle_left", side_mesh, (tag_x + OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y), (0.01, 0.085, 0.015))):
        body = world.add_body()
        body.name, body.pos, body.quat = name, (*pos, TABLE_SURFACE_Z + 0.015), quarter_turn
        _visual(body, mesh, (0.3, 0.3, 0.35, 1))
        _box(body, half, contype=_WORLD, name=name)


def _add_robot(spec: mujoco.MjSpec, root: Path) -> None:
    frames = furniture_frames()
    frame = spec.worldbody.add_frame()
    frame.pos = frames.robot_base_in_sim[:3, 3]
    frame.attach_body(_panda_spec(root).worldbody.first_body(), "", "")
    for joint in ARM_JOINTS + FINGER_JOINTS:
        act = spec.add_actuator()
        act.name, act.target, act.trntype = joint, joint, mujoco.mjtTrn.mjTRN_JOINT
        act.gainprm[0], act.biastype = 1.0, mujoco.mjtBias.mjBIAS_NONE
        limit = GRIPPER_FORCE if joint in FINGER_JOINTS else spec.joint(joint).actfrcrange[1]
        act.ctrlrange, act.ctrllimited = (-limit, limit), mujoco.mjtLimited.mjLIMITED_TRUE


# FurnitureBench's three cameras (furniture_sim_env.py:set_camera, 224 x 224 images): IsaacGym frames, x forward and
# z up; MuJoCo cameras look along -z with y up. Field of view: 55 deg on the wrist, 40 elsewhere (square images, so
# MuJoCo's vertical fovy equals IsaacGym's horizontal one).
CAMERAS = ("wrist", "front", "rear")
IMAGE_SIZE = 224
_ISAAC_TO_MUJOCO_CAMERA = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _look_at(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """IsaacGym camera frame at ``pos`` looking at ``target`` (x forward, z as close to world up as it can be)."""
    x = (target - pos) / np.linalg.norm(target - pos)
    y = np.cross([0.0, 0.0, 1.0], x)
    y /= np.linalg.norm(y)
    return np.column_stack([x, y, np.cross(x, y)])


def _camera(body: mujoco.MjsBody, name: str, pos, isaac_rot: np.ndarray, fovy: float) -> None:
    cam = body.add_camera()
    cam.name, cam.pos, cam.fovy = name, pos, fovy
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (isaac_rot @ _ISAAC_TO_MUJOCO_CAMERA).reshape(-1))
    cam.quat = quat


def _add_cameras(spec: mujoco.MjSpec) -> None:
    base = furniture_frames().robot_base_in_sim[:3, 3]
    _camera(spec.body(EE_BODY), "wrist", (-0.04, 0.0, -0.05), _rot_y(np.radians(-70.0)), 55.0)
    front = np.array([0.90, 0.0, 0.65])
    _camera(spec.worldbody, "front", front, _look_at(front, np.array([-1.0, 0.0, 0.3])), 40.0)
    _camera(spec.worldbody, "rear", base + (0.08, 0.0, 0.2), _rot_y(np.radians(35.0)), 40.0)


def _add_screw_constraints(spec: mujoco.MjSpec) -> None:
    for k in range(len(hole_positions())):
        tendon = spec.add_tendon()
        tendon.name = f"thread{k}"
        tendon.wrap_joint(f"carrier{k}_slide", 1.0)
        tendon.wrap_joint(f"carrier{k}_hinge", -THREAD_PITCH / (2 * np.pi))
        eq = spec.add_equality()
        eq.name, eq.type, eq.name1 = f"thread{k}", mujoco.mjtEq.mjEQ_TENDON, tendon.name
        eq.data[:5] = 0.0
        eq.solref, eq.solimp = THREAD_SOLREF, THREAD_SOLIMP
        for leg in LEG_NAMES:
            weld = spec.add_equality()
            weld.name, weld.type = f"screw{k}_{leg}", mujoco.mjtEq.mjEQ_WELD
            weld.name1, weld.name2, weld.objtype = f"carrier{k}", leg, mujoco.mjtObj.mjOBJ_BODY
            weld.active, weld.solref, weld.solimp = False, THREAD_SOLREF, THREAD_SOLIMP
            weld.data[:11] = 0.0
            weld.data[6] = 1.0   # relative quaternion (1, 0, 0, 0): the leg sits exactly on the carrier
            weld.data[10] = 1.0  # torquescale


@dataclass(frozen=True)
class SceneIds:
    """Indices into the compiled model that the env, screw and controller read every step."""
    arm_qpos: np.ndarray
    arm_dof: np.ndarray
    finger_qpos: np.ndarray
    ee_body: int
    robot_base_body: int
    top_body: int
    leg_bodies: np.ndarray
    part_qpos: np.ndarray       # (5, 7) qpos addresses of each part's free joint: top, then legs 1-4
    part_dof: np.ndarray        # (5, 6)
    carrier_qpos: np.ndarray    # (4, 2) slide, hinge
    carrier_dof: np.ndarray     # (4, 2)
    screw_welds: np.ndarray     # (4 holes, 4 legs) equality ids


@lru_cache(maxsize=1)
def _compiled_model() -> mujoco.MjModel:
    """The scene compiled once per process (about a second: mesh loading); envs get copies of it."""
    root = _asset_root()
    spec = mujoco.MjSpec()
    spec.modelname = "furniture_square_table"
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.impratio = 10.0
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.compiler.degree = False
    spec.visual.global_.offwidth = spec.visual.global_.offheight = IMAGE_SIZE
    # FurnitureSim's light (sim_config lights): 0.8 colour, 0.35 ambient, from above and slightly behind
    spec.visual.headlight.ambient, spec.visual.headlight.diffuse = (0.35,) * 3, (0.3,) * 3
    light = spec.worldbody.add_light()
    light.type, light.dir, light.diffuse, light.castshadow = (mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                                                              (-0.1, 0.03, -0.2), (0.8, 0.8, 0.8), False)
    _add_fixtures(spec, root)
    _add_robot(spec, root)
    _add_cameras(spec)
    _add_top(spec, root)
    for leg in LEG_NAMES:
        _add_leg(spec, root, leg)
    _add_screw_constraints(spec)
    return spec.compile()


def build_square_table_model() -> tuple[mujoco.MjModel, SceneIds]:
    """A fresh model of the square-table scene and the ids the env needs."""
    model = copy.deepcopy(_compiled_model())
    jnt = model.joint
    parts = (TOP_NAME,) + LEG_NAMES
    ids = SceneIds(
        arm_qpos=np.array([jnt(j).qposadr[0] for j in ARM_JOINTS]),
        arm_dof=np.array([jnt(j).dofadr[0] for j in ARM_JOINTS]),
        finger_qpos=np.array([jnt(j).qposadr[0] for j in FINGER_JOINTS]),
        ee_body=model.body(EE_BODY).id, robot_base_body=model.body("panda_link0").id,
        top_body=model.body(TOP_NAME).id, leg_bodies=np.array([model.body(n).id for n in LEG_NAMES]),
        part_qpos=np.array([jnt(f"{p}_free").qposadr[0] + np.arange(7) for p in parts]),
        part_dof=np.array([jnt(f"{p}_free").dofadr[0] + np.arange(6) for p in parts]),
        carrier_qpos=np.array([[jnt(f"carrier{k}_{j}").qposadr[0] for j in ("slide", "hinge")] for k in range(4)]),
        carrier_dof=np.array([[jnt(f"carrier{k}_{j}").dofadr[0] for j in ("slide", "hinge")] for k in range(4)]),
        screw_welds=np.array([[model.equality(f"screw{k}_{leg}").id for leg in LEG_NAMES] for k in range(4)]))
    return model, ids
