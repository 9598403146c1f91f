"""MuJoCo scene of FurnitureSim's tasks, built from the furniture_bench package's assets: what every furniture shares.

The robot, the table, the obstacles, the cameras and the thread mechanism live here; each furniture's parts live in
their own module (``square_table_scene``: one_leg; ``round_table_scene``), which adds its parts to the spec and
says where its threads are. What is taken from the package and what is ours (reference/furniture-notes.md §2-4 has
the measurements):

- Visuals are the package's OBJ meshes (parts, table, obstacles, base tag); they never collide.
- Collision is primitive. FurnitureSim collides the full meshes through PhysX SDFs; in MuJoCo convex decomposition
  fills the thread grooves and mesh SDFs let a bolt fall through the thread, so bolts are chamfered cylinders and
  threaded holes are rings of convex wedges around a bore 1 mm wider than the bolt.
- The thread is a constraint, not geometry (``Thread``): each threaded hole has a hidden carrier body on a slide and
  a hinge along the hole axis, coupled by a fixed tendon (slide - pitch/2pi * hinge = 0) held by a tendon equality,
  and one inactive weld per part that can screw into it, which ``screw`` switches on when that part engages. The
  carrier sits at the screwed part's assembled pose (furniture_bench's ``assembled_rel_poses``), and the slide's
  lower limit is the seat: a seated part is exactly where FurnitureBench's success test wants it.
- The Panda is the package's ``franka_panda.urdf`` with its collision STLs (MuJoCo cannot read the visual .dae),
  torque motors with the URDF's effort limits, gravity compensated, armature 0.01 and joint friction 0.05 as
  FurnitureSim sets them; the fingers are damped and heavier than the URDF's (``FINGER_DAMPING``).
- Friction 0.15 for parts and table (sim_config), 1 for the finger pads.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np

from inril_sim.furniture.frames import (OBSTACLE_FRONT_X, OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y, TABLE_CENTRE_Z,
                                         TABLE_SURFACE_Z, furniture_frames)

TIMESTEP = 1.0 / 120.0
PHYSICS_STEPS_PER_ENV_STEP = 6  # 0.05 s per env step, as FurnitureSim's 3 x (1/60 s) calls

N_WEDGES = 16                      # convex wedges around each threaded bore
SIDES = 12                         # polygonal prisms (``add_polygon_prism``)
# threaded bolts (``add_bolt``): the round table's leg and base, the lamp's bulb
BOLT_RADIUS, BOLT_TIP_RADIUS, BOLT_TIP_LENGTH = 0.010, 0.008, 0.002
PART_FRICTION, PAD_FRICTION = 0.15, 1.0

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

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
EE_BODY = "k_ee_link"

# contype/conaffinity bits: the world and parts collide with everything, the robot never with itself
WORLD, PART, ROBOT = 1, 2, 4
ALONG_Y = (np.sqrt(0.5), -np.sqrt(0.5), 0, 0)  # quaternion turning a geom's z axis onto the body's y axis
PART_RGBA = (0.85, 0.75, 0.6, 1)


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
        geom.contype, geom.conaffinity = ROBOT, WORLD | PART
        geom.friction = [PAD_FRICTION, 0.005, 0.0001]
    for body in spec.bodies:
        body.gravcomp = 1.0
    return spec


def add_mesh(spec: mujoco.MjSpec, name: str, path: Path) -> str:
    mesh = spec.add_mesh()
    mesh.name, mesh.file = name, str(path)
    return name


def add_visual(body: mujoco.MjsBody, mesh: str, rgba: tuple[float, ...], pos=(0, 0, 0)) -> None:
    geom = body.add_geom()
    geom.type, geom.meshname, geom.rgba, geom.pos = mujoco.mjtGeom.mjGEOM_MESH, mesh, rgba, pos
    geom.contype = geom.conaffinity = 0
    geom.group, geom.density = 2, 0.0


def add_box(body: mujoco.MjsBody, half: tuple[float, float, float], pos=(0, 0, 0), contype: int = PART,
         friction: float = PART_FRICTION, name: str = "") -> mujoco.MjsGeom:
    geom = body.add_geom()
    geom.type, geom.size, geom.pos, geom.name = mujoco.mjtGeom.mjGEOM_BOX, half, pos, name
    geom.contype, geom.conaffinity = contype, WORLD | PART | ROBOT
    geom.friction = [friction, 0.005, 0.0001]
    geom.group, geom.rgba = 3, (0.5, 0.5, 0.5, 1)
    return geom


def add_cylinder(body: mujoco.MjsBody, radius: float, start: float, end: float, name: str = "") -> mujoco.MjsGeom:
    """A colliding cylinder of ``radius`` along the body's y axis from ``start`` to ``end``."""
    geom = body.add_geom()
    geom.type, geom.size = mujoco.mjtGeom.mjGEOM_CYLINDER, (radius, (end - start) / 2, 0)
    geom.pos, geom.quat, geom.name = (0, (start + end) / 2, 0), ALONG_Y, name
    geom.contype, geom.conaffinity = PART, WORLD | PART | ROBOT
    geom.friction, geom.group = [PART_FRICTION, 0.005, 0.0001], 3
    return geom


def wedge_vertices(index: int, bore: float, half: float, half_y: float, square: bool = True,
                   mouth: float | None = None, outer_mouth: float | None = None) -> np.ndarray:
    """Vertices of wedge ``index``: the part of the square cell [-half, half]^2 (x, z), or with ``square=False`` of
    the disc of radius ``half`` (its outer arc as a chord), outside the bore between two angles, extruded over
    +-half_y along y; with ``mouth`` the bore widens linearly to that radius at +half_y (a lead-in cone), with
    ``outer_mouth`` (discs only) the disc does (a conical shell: the lamp's hood). Convex, so MuJoCo collides it
    exactly."""
    if outer_mouth is not None and square:
        raise ValueError("outer_mouth widens a disc; a square cell has none: pass square=False")
    a0, a1 = 2 * np.pi * index / N_WEDGES, 2 * np.pi * (index + 1) / N_WEDGES
    outer = []
    for a in (a0, a1):
        direction = np.array([np.cos(a), np.sin(a)])
        outer.append(direction * half / (np.max(np.abs(direction)) if square else 1.0))
    for corner in ((half, half), (-half, half), (-half, -half), (half, -half)) if square else ():
        angle = np.arctan2(corner[1], corner[0]) % (2 * np.pi)
        if a0 < angle < a1:
            outer.append(np.array(corner))
    vertices = []
    for radius, y, scale in ((bore, -half_y, 1.0),
                             (bore if mouth is None else mouth, half_y,
                              1.0 if outer_mouth is None else outer_mouth / half)):
        inner = [radius * np.array([np.cos(a), np.sin(a)]) for a in (a0, a1)]
        vertices += [[x, y, z] for x, z in inner + [point * scale for point in outer]]
    return np.array(vertices)


def add_bore_ring(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, bore: float, half: float, y0: float,
                  y1: float, centre=(0.0, 0.0), square: bool = True, quat=(1.0, 0.0, 0.0, 0.0),
                  mouth: float | None = None, outer_mouth: float | None = None) -> None:
    """A threaded hole's walls: ``N_WEDGES`` convex wedges around a bore of radius ``bore`` (x, z centre
    ``centre``) from ``y0`` to ``y1`` along y (widening to ``mouth`` at ``y1`` when given), inside a square cell of
    half-width ``half`` (or a disc of radius ``half``, widening to ``outer_mouth`` at ``y1`` when given), the whole
    ring turned by ``quat`` in the body frame (a hole along z: a quarter turn about x)."""
    for i in range(N_WEDGES):
        mesh = spec.add_mesh()
        mesh.name = f"{name}_wedge{i}"
        mesh.uservert = wedge_vertices(i, bore, half, (y1 - y0) / 2, square, mouth, outer_mouth).reshape(-1)
        geom = body.add_geom()
        pos = np.zeros(3)
        mujoco.mju_rotVecQuat(pos, np.array([centre[0], (y0 + y1) / 2, centre[1]]), np.asarray(quat, float))
        geom.type, geom.meshname, geom.pos, geom.quat = mujoco.mjtGeom.mjGEOM_MESH, mesh.name, pos, quat
        geom.contype, geom.conaffinity = PART, WORLD | PART | ROBOT
        geom.friction, geom.group, geom.density = [PART_FRICTION, 0.005, 0.0001], 3, 0.0


def cylinder_inertia(mass: float, radius: float, length: float, axis: int) -> np.ndarray:
    """Principal inertia of a uniform solid cylinder about its centre, ``axis`` (0, 1, 2) its long axis: the
    parts' inertia where sim_config gives only masses (FurnitureSim computes it from the mesh)."""
    across = mass * (3 * radius ** 2 + length ** 2) / 12
    inertia = np.full(3, across)
    inertia[axis] = mass * radius ** 2 / 2
    return inertia


def add_polygon_prism(body: mujoco.MjsBody, radius: float, start: float, end: float, along_z: bool = False) -> None:
    """A prism along y (or z) whose cross-section is the regular 12-gon inscribed in a circle of ``radius``, as the
    union of 6 boxes turned by 30 degrees each (their corners are the polygon's vertices). Used where a part rests
    on the table: a round cylinder lying there rolls away at the slightest torque (MuJoCo has no rolling friction at
    condim 3; the real leg's grip is knurled), and one standing on its end spins up on MuJoCo's few cylinder-box
    contact points, where box-box contacts are exact."""
    for k in range(SIDES // 2):
        angle = np.pi * k / (SIDES // 2)
        across, side, half_length = radius * np.cos(np.pi / SIDES), radius * np.sin(np.pi / SIDES), (end - start) / 2
        mid = (start + end) / 2
        if along_z:
            geom = add_box(body, (across, side, half_length), pos=(0.0, 0.0, mid))
            geom.quat = (np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2))
        else:
            geom = add_box(body, (across, half_length, side), pos=(0.0, mid, 0.0))
            geom.quat = (np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0)


def add_bolt(body: mujoco.MjsBody, tip: float, root: float, along_z: bool) -> None:
    """A threaded bolt from its flat tip at ``tip`` to ``root``: a 12-gon prism of radius 10 mm with a 2 mm
    chamfer (radius 8 mm) at the tip."""
    sign = np.sign(root - tip)
    chamfer = tip + sign * BOLT_TIP_LENGTH
    add_polygon_prism(body, BOLT_RADIUS, *sorted((chamfer, root)), along_z=along_z)
    add_polygon_prism(body, BOLT_TIP_RADIUS, *sorted((tip, chamfer)), along_z=along_z)


def add_free_part(spec: mujoco.MjSpec, root: Path, name: str, mesh: str, mass: float,
                  inertia: np.ndarray) -> mujoco.MjsBody:
    """A free part with FurnitureBench's mass, the given principal inertia and the package's OBJ ``mesh`` (relative
    to the assets' furniture/mesh folder) as its visual."""
    body = spec.worldbody.add_body()
    body.name = name
    body.add_freejoint().name = f"{name}_free"
    body.mass, body.explicitinertial, body.inertia = mass, True, inertia
    add_visual(body, add_mesh(spec, name, root / "furniture/mesh" / mesh), PART_RGBA)
    return body


def _add_fixtures(spec: mujoco.MjSpec, root: Path) -> None:
    world = spec.worldbody
    frames = furniture_frames()
    table = world.add_body()
    table.name, table.pos = "table", (0, 0, TABLE_CENTRE_Z)
    add_visual(table, add_mesh(spec, "table", root / "furniture/mesh/table.obj"), (0.55, 0.55, 0.55, 1))
    add_box(table, (0.65, 0.4, 0.015), contype=WORLD, name="table_top")
    tag = world.add_body()
    tag.name, tag.pos = "base_tag", frames.base_tag_position + (0, 0, 0.0005)
    add_visual(tag, add_mesh(spec, "base_tag", root / "furniture/mesh/base_tag.obj"), (0.95, 0.95, 0.95, 1))
    quarter_turn = (np.sqrt(0.5), 0, 0, np.sqrt(0.5))
    front_mesh = add_mesh(spec, "obstacle_front", root / "furniture/mesh/obstacle_front.obj")
    side_mesh = add_mesh(spec, "obstacle_side", root / "furniture/mesh/obstacle_side.obj")
    tag_x = frames.base_tag_position[0]
    for name, mesh, pos, half in (
            ("obstacle_front", front_mesh, (tag_x + OBSTACLE_FRONT_X, 0), (0.175, 0.01, 0.015)),
            ("obstacle_right", side_mesh, (tag_x + OBSTACLE_SIDE_X, -OBSTACLE_SIDE_Y), (0.01, 0.085, 0.015)),
            ("obstacle_left", side_mesh, (tag_x + OBSTACLE_SIDE_X, OBSTACLE_SIDE_Y), (0.01, 0.085, 0.015))):
        body = world.add_body()
        body.name, body.pos, body.quat = name, (*pos, TABLE_SURFACE_Z + 0.015), quarter_turn
        add_visual(body, mesh, (0.3, 0.3, 0.35, 1))
        add_box(body, half, contype=WORLD, name=name)


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


@dataclass(frozen=True)
class Thread:
    """A threaded joint: ``parts`` can screw into a hole of ``host`` and seat at ``seat``.

    ``seat`` is the screwed part's pose in the host's frame when assembled (furniture_bench's
    ``assembled_rel_poses``), ``axis`` the hole axis in that seated part's frame, pointing out of the hole (the way
    the part backs out), ``pitch`` the right-handed thread's pitch and ``start`` how far above the seat the threads
    first meet (the engaged length when seated). ``snap_on_engage``: an engaging part is moved onto the carrier
    at once (``screw``), rather than pulled there by the weld over a few steps."""
    host: str
    parts: tuple[str, ...]
    seat: np.ndarray
    axis: tuple[float, float, float]
    pitch: float
    start: float
    snap_on_engage: bool = True


@dataclass(frozen=True, eq=False)  # hashed by identity: the compiled-model cache's key
class FurnitureParts:
    """What one furniture adds to the shared scene: its part bodies in furniture_bench's ``parts`` order, a
    function that adds them to the spec (given the assets' root) and the threads between them."""
    name: str
    part_names: tuple[str, ...]
    add_parts: Callable[[mujoco.MjSpec, Path], None]
    threads: tuple[Thread, ...]


def _add_carrier(host: mujoco.MjsBody, index: int, thread: Thread) -> None:
    """The screw's carrier at the seat: slide and hinge along the thread's axis."""
    carrier = host.add_body()
    carrier.name, carrier.pos = f"carrier{index}", thread.seat[:3, 3]
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(thread.seat[:3, :3]).reshape(-1))
    carrier.quat = quat
    carrier.mass, carrier.explicitinertial, carrier.inertia = 1e-3, True, (1e-6, 1e-6, 1e-6)
    carrier.gravcomp = 1.0  # armature has no weight: the carrier's inertia is all in its joints
    slide = carrier.add_joint()
    slide.name, slide.type, slide.axis = f"carrier{index}_slide", mujoco.mjtJoint.mjJNT_SLIDE, thread.axis
    slide.range, slide.limited = (0.0, thread.start + thread.pitch), mujoco.mjtLimited.mjLIMITED_TRUE
    slide.armature, slide.solref_limit, slide.solimp_limit = CARRIER_SLIDE_ARMATURE, THREAD_SOLREF, THREAD_SOLIMP
    hinge = carrier.add_joint()
    hinge.name, hinge.type, hinge.axis = f"carrier{index}_hinge", mujoco.mjtJoint.mjJNT_HINGE, thread.axis
    hinge.limited = mujoco.mjtLimited.mjLIMITED_FALSE  # the slide's lower limit is the seat
    hinge.frictionloss, hinge.damping, hinge.armature = THREAD_FRICTION, 0.01, CARRIER_HINGE_ARMATURE


def _add_screw_constraints(spec: mujoco.MjSpec, threads: tuple[Thread, ...]) -> None:
    for k, thread in enumerate(threads):
        tendon = spec.add_tendon()
        tendon.name = f"thread{k}"
        tendon.wrap_joint(f"carrier{k}_slide", 1.0)
        tendon.wrap_joint(f"carrier{k}_hinge", -thread.pitch / (2 * np.pi))
        eq = spec.add_equality()
        eq.name, eq.type, eq.name1 = f"thread{k}", mujoco.mjtEq.mjEQ_TENDON, tendon.name
        eq.data[:5] = 0.0
        eq.solref, eq.solimp = THREAD_SOLREF, THREAD_SOLIMP
        for part in thread.parts:
            weld = spec.add_equality()
            weld.name, weld.type = f"screw{k}_{part}", mujoco.mjtEq.mjEQ_WELD
            weld.name1, weld.name2, weld.objtype = f"carrier{k}", part, mujoco.mjtObj.mjOBJ_BODY
            weld.active, weld.solref, weld.solimp = False, THREAD_SOLREF, THREAD_SOLIMP
            weld.data[:11] = 0.0
            weld.data[6] = 1.0   # relative quaternion (1, 0, 0, 0): the part sits exactly on the carrier
            weld.data[10] = 1.0  # torquescale


@dataclass(frozen=True)
class SceneIds:
    """Indices into the compiled model that the env, screw and controller read every step."""
    arm_qpos: np.ndarray
    arm_dof: np.ndarray
    finger_qpos: np.ndarray
    ee_body: int
    robot_base_body: int
    part_bodies: np.ndarray     # (parts,) in furniture_bench's parts order
    part_qpos: np.ndarray       # (parts, 7) qpos addresses of each part's free joint
    part_dof: np.ndarray        # (parts, 6)
    threads: tuple[Thread, ...]
    thread_hosts: np.ndarray    # (threads,) body ids
    thread_parts: np.ndarray    # (threads, parts per thread) body ids of the parts that can screw in
    carrier_qpos: np.ndarray    # (threads, 2) slide, hinge
    carrier_dof: np.ndarray     # (threads, 2)
    screw_welds: np.ndarray     # (threads, parts per thread) equality ids

    @property
    def top_body(self) -> int:
        """FurnitureBench's part 0 (both tables' top)."""
        return int(self.part_bodies[0])

    @property
    def leg_bodies(self) -> np.ndarray:
        """The parts after the top (the square table's four legs; the round table's leg and base)."""
        return self.part_bodies[1:]


@lru_cache(maxsize=None)
def _compiled_model(furniture: FurnitureParts) -> mujoco.MjModel:
    """The scene compiled once per process and furniture (about a second: mesh loading); envs get copies of it."""
    root = _asset_root()
    spec = mujoco.MjSpec()
    spec.modelname = f"furniture_{furniture.name}"
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
    furniture.add_parts(spec, root)
    for k, thread in enumerate(furniture.threads):
        _add_carrier(spec.body(thread.host), k, thread)
    _add_screw_constraints(spec, furniture.threads)
    return spec.compile()


def build_model(furniture: FurnitureParts) -> tuple[mujoco.MjModel, SceneIds]:
    """A fresh model of ``furniture``'s scene and the ids the env needs."""
    model = copy.deepcopy(_compiled_model(furniture))
    jnt = model.joint
    threads = furniture.threads
    n = len(threads)
    ids = SceneIds(
        arm_qpos=np.array([jnt(j).qposadr[0] for j in ARM_JOINTS]),
        arm_dof=np.array([jnt(j).dofadr[0] for j in ARM_JOINTS]),
        finger_qpos=np.array([jnt(j).qposadr[0] for j in FINGER_JOINTS]),
        ee_body=model.body(EE_BODY).id, robot_base_body=model.body("panda_link0").id,
        part_bodies=np.array([model.body(p).id for p in furniture.part_names]),
        part_qpos=np.array([jnt(f"{p}_free").qposadr[0] + np.arange(7) for p in furniture.part_names]),
        part_dof=np.array([jnt(f"{p}_free").dofadr[0] + np.arange(6) for p in furniture.part_names]),
        threads=threads, thread_hosts=np.array([model.body(t.host).id for t in threads]),
        thread_parts=np.array([[model.body(p).id for p in t.parts] for t in threads]),
        carrier_qpos=np.array([[jnt(f"carrier{k}_{j}").qposadr[0] for j in ("slide", "hinge")] for k in range(n)]),
        carrier_dof=np.array([[jnt(f"carrier{k}_{j}").dofadr[0] for j in ("slide", "hinge")] for k in range(n)]),
        screw_welds=np.array([[model.equality(f"screw{k}_{p}").id for p in t.parts] for k, t in enumerate(threads)]))
    return model, ids
