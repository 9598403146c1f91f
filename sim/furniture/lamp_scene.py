"""The lamp's parts in the shared MuJoCo scene (``mujoco_scene``): base (part 0), bulb (1), hood (2).

The bulb screws into the base's threaded hole and the hood is put over the bulb (furniture_bench's
``Lamp.should_be_assembled = [(0, 1), (0, 2)]``; the hood's pair is ``position_only`` and counts only after the
bulb's, ``should_assembled_first``). furniture_bench has no thread on the hood: FurnitureSim lets it rest on the
bulb, so here it is a free part whose inner cone rests on the bulb's globe. Sizes are read off the package's OBJ
meshes (part frames, metres, every part's axis is its y; vertex radii about it, binned along it, a helix fitted to
the thread vertices, a sphere to the globe):

- base (its -y points up): a square foot of half-width 0.04235 from y 0.0172 (the table) to 0.0059, a square flare
  narrowing to half-width 0.0184 at y -0.0148 (the hole floor), a round neck of radius 0.0184, and a square plate of
  half-width 0.0276 from y -0.0408 to the top face at y -0.0458; a threaded hole (female crest radius 11.2 mm, root
  15.1 mm) from y -0.0398 down to a plain bore of radius 12.5 mm that ends at the floor, and a counterbore of
  radius 12.5 mm above the thread;
- bulb (+y points up when screwed in): a threaded bolt (crest radius 12.2 mm, root 7.8 mm, tip at y -0.053), a
  round grip of radius 0.0223 from y -0.020 to 0.018 and a globe, a sphere of radius 0.030 centred at y 0.038;
- hood (-y up): a conical shell open at both ends, inner radius 26 mm at its top (y -0.0514) widening to 40 mm at
  its rim (y 0.0486), 4 mm thick.

Collision is primitive as for the tables: the hole is a ring of 16 convex wedges around an 11 mm bore with a cone
to 12.5 mm above the thread (the counterbore), the bolt a chamfered 12-gon prism (``mujoco_scene.add_bolt``), the
grip a 12-gon prism (it rests on the table when the bulb lies on its side), the globe a sphere, the foot a box and
the flare one convex frustum, the hood 16 wedges of a conical shell (``add_bore_ring`` with ``outer_mouth``).
Seated at furniture_bench's assembled pose, the bulb's tip lands on the hole floor (y -0.0148 in the base, from the
meshes), and its grip stops 2 mm above the plate.

The hood rests on the globe. On the meshes its inner cone clears the globe by 0.46 mm at the assembled pose (it
would sink 3.2 mm below it, onto the plate's corners, which clear the rim by 0.36 mm); the wedges' inner faces sit
where the globe holds the hood exactly at furniture_bench's assembled pose (``_hood_inner_radii``: the wedges' vertex
radii come out 0.04 and 0.32 mm outside the mesh's, as a 16-gon's faces lie 1.9 % inside its vertices), and
the plate's collision is 0.58 mm narrower than the mesh (half-width 0.027) so its corners clear the rim by 0.5 mm.

Thread (right-handed on both surfaces, as the tables'): a helix fitted to the crest and root vertices gives 9.38 mm
on the base's hole and 9.375-9.38 on the bulb, modelled at 9.38 mm. Engaged length when seated, from the overlap of
the male and female crests: 13.3 mm (about 1.4 turns), so the thread starts that high above the seat.

Masses from furniture_bench's sim_config (mesh volume x density): base 59.65 g, bulb 38.47 g, hood 59.99 g.
Inertia: ours, as uniform solid cylinders (the hood as a thin shell) of each part's outer size about the part's
origin (sim_config has none; FurnitureSim computes it from the mesh).
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from inril_sim.furniture.contracts import assembled_rel_pose
from inril_sim.furniture.mujoco_scene import (N_WEDGES, FurnitureParts, Thread, add_bolt, add_bore_ring, add_box,
                                              add_free_part, add_polygon_prism, cylinder_inertia)

BASE_NAME, BULB_NAME, HOOD_NAME = "lamp_base", "lamp_bulb", "lamp_hood"
BASE_MASS, BULB_MASS, HOOD_MASS = 0.05965, 0.03847, 0.05999

# base (y down): foot, flare, neck, plate, hole
BASE_BOTTOM_Y, FOOT_TOP_Y, FOOT_HALF = 0.0172, 0.00594, 0.04235
FLARE_TOP_HALF = 0.0184             # the flare's square half-width at the hole floor; 0.041 where it meets the foot
FLARE_BOTTOM_HALF = 0.0410
HOLE_FLOOR_Y, THREAD_TOP_Y, BASE_TOP_Y = -0.0148, -0.0398, -0.0458
NECK_RADIUS, PLATE_HALF = 0.0184, 0.027
BORE_RADIUS, COUNTERBORE_RADIUS = 0.011, 0.0125

# bulb (y up when screwed in)
BULB_TIP_Y, GRIP_BOTTOM_Y, GRIP_TOP_Y, GRIP_RADIUS = -0.053, -0.020, 0.018, 0.0223
GLOBE_CENTRE_Y, GLOBE_RADIUS = 0.038, 0.030

# hood (y down): the mesh's cone, and the globe's centre in the hood's frame when assembled
HOOD_TOP_Y, HOOD_RIM_Y = -0.051417, 0.048583
HOOD_MESH_INNER_TOP, HOOD_MESH_INNER_RIM, HOOD_WALL = 0.026, 0.040, 0.004

# The hood's cone narrows only 8 degrees from the vertical, so a contact that yields r across the cone lets the hood
# sink r / tan(8 deg) = 7 r, and at the parts' friction 0.15 (> tan 8 deg = 0.14) the cone is self-locking: a hood
# dropped 2 cm onto the globe wedged 5.1-5.3 mm below its assembled pose (past FurnitureBench's 5 mm) and stayed.
# Plastic on plastic, the hood's and the globe's contacts are nearly hard (MuJoCo averages the two geoms'
# impedances), and their friction is below the locking limit (MuJoCo takes the larger of two geoms' frictions, so
# only the hood-globe pair changes: both meet the table at its 0.15 and the fingers at 1).
HOOD_CONTACT_SOLIMP = (0.99, 0.999, 0.001, 0.5, 2.0)
HOOD_GLOBE_FRICTION = 0.1
# The fingers pinch the hood at its top, 5 cm above its centre of mass, and the seated bulb's globe to screw it in: at
# MuJoCo's point contacts (condim 3, no torsional friction) both turn freely about the fingers' axis; the carried
# hood swung 16 degrees off the vertical and its rim knocked the lamp away, and the lamp tipped over in the twisting
# hand. Torsional friction on the hood's and the globe's contacts (condim 4, the parts' 0.005 m) stands in for a
# finger pad's contact patch: 0.13 N m at the 13 N grip against 0.03 N m of the hood's weight at 90 degrees.
PINCHED_CONDIM = 4

THREAD_PITCH = 0.00938
THREAD_START = 0.0133

_FLIP_Y = (0.0, 0.0, 0.0, 1.0)  # half a turn about z: a ring built along +y opens towards the base's -y (up)


def _hood_inner_radii() -> tuple[float, float]:
    """The hood wedges' inner vertex radii at its top and rim: the mesh's cone moved in so that its faces touch the
    globe of the bulb screwed into the base when the hood is at furniture_bench's assembled pose."""
    bulb = assembled_rel_pose("lamp", (0, 1))
    hood = assembled_rel_pose("lamp", (0, 2))
    globe_in_hood = (np.linalg.inv(hood) @ bulb @ np.array([0.0, GLOBE_CENTRE_Y, 0.0, 1.0]))[1]
    slope = (HOOD_MESH_INNER_RIM - HOOD_MESH_INNER_TOP) / (HOOD_RIM_Y - HOOD_TOP_Y)
    face_at_globe = GLOBE_RADIUS * np.sqrt(1.0 + slope ** 2)  # radius of the cone's face that the globe touches
    face_top = face_at_globe - slope * (globe_in_hood - HOOD_TOP_Y)
    to_vertex = 1.0 / np.cos(np.pi / N_WEDGES)
    return face_top * to_vertex, (face_top + slope * (HOOD_RIM_Y - HOOD_TOP_Y)) * to_vertex


def _add_convex(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, vertices: np.ndarray) -> None:
    """A colliding convex hull of ``vertices`` (body frame), as the wedges are."""
    mesh = spec.add_mesh()
    mesh.name, mesh.uservert = name, np.asarray(vertices, dtype=float).reshape(-1)
    geom = add_box(body, (0.0, 0.0, 0.0))  # a part's collision settings, the mesh's shape
    geom.type, geom.meshname, geom.density = mujoco.mjtGeom.mjGEOM_MESH, name, 0.0


def _square_frustum(y0: float, half0: float, y1: float, half1: float) -> np.ndarray:
    corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=float)
    return np.array([[x * half, y, z * half] for y, half in ((y0, half0), (y1, half1)) for x, z in corners])


def _add_base(spec: mujoco.MjSpec, root: Path) -> None:
    height = BASE_BOTTOM_Y - BASE_TOP_Y
    body = add_free_part(spec, root, BASE_NAME, "lamp/lamp_base.obj", BASE_MASS,
                         cylinder_inertia(BASE_MASS, FLARE_BOTTOM_HALF, height, axis=1))
    foot_half_height = (BASE_BOTTOM_Y - FOOT_TOP_Y) / 2
    add_box(body, (FOOT_HALF, foot_half_height, FOOT_HALF), pos=(0, FOOT_TOP_Y + foot_half_height, 0))
    _add_convex(spec, body, "lamp_base_flare", _square_frustum(HOLE_FLOOR_Y, FLARE_TOP_HALF, FOOT_TOP_Y,
                                                                FLARE_BOTTOM_HALF))
    # the rings are built in the flipped frame, where the hole runs from -HOLE_FLOOR_Y up to -BASE_TOP_Y
    add_bore_ring(spec, body, "lamp_hole", BORE_RADIUS, NECK_RADIUS, -HOLE_FLOOR_Y, -THREAD_TOP_Y, square=False,
                  quat=_FLIP_Y)
    add_bore_ring(spec, body, "lamp_plate", BORE_RADIUS, PLATE_HALF, -THREAD_TOP_Y, -BASE_TOP_Y, quat=_FLIP_Y,
                  mouth=COUNTERBORE_RADIUS)


def _add_bulb(spec: mujoco.MjSpec, root: Path) -> None:
    body = add_free_part(spec, root, BULB_NAME, "lamp/lamp_bulb.obj", BULB_MASS,
                         cylinder_inertia(BULB_MASS, GRIP_RADIUS, GLOBE_CENTRE_Y + GLOBE_RADIUS - BULB_TIP_Y, axis=1))
    add_bolt(body, BULB_TIP_Y, GRIP_BOTTOM_Y, along_z=False)
    add_polygon_prism(body, GRIP_RADIUS, GRIP_BOTTOM_Y, GRIP_TOP_Y)
    globe = add_box(body, (GLOBE_RADIUS, 0.0, 0.0), pos=(0.0, GLOBE_CENTRE_Y, 0.0), name="lamp_bulb_globe")
    globe.type = mujoco.mjtGeom.mjGEOM_SPHERE  # a part's collision settings (add_box's), a sphere's shape
    globe.solimp, globe.friction[0], globe.condim = HOOD_CONTACT_SOLIMP, HOOD_GLOBE_FRICTION, PINCHED_CONDIM


def _add_hood(spec: mujoco.MjSpec, root: Path) -> None:
    radius, length = (HOOD_MESH_INNER_TOP + HOOD_MESH_INNER_RIM) / 2 + HOOD_WALL / 2, HOOD_RIM_Y - HOOD_TOP_Y
    across = radius ** 2 / 2 + length ** 2 / 12  # a thin cylindrical shell of the cone's mean radius
    inertia = HOOD_MASS * np.array([across, radius ** 2, across])
    body = add_free_part(spec, root, HOOD_NAME, "lamp/lamp_hood.obj", HOOD_MASS, inertia)
    inner_top, inner_rim = _hood_inner_radii()
    add_bore_ring(spec, body, "lamp_hood", inner_top, HOOD_MESH_INNER_TOP + HOOD_WALL, HOOD_TOP_Y, HOOD_RIM_Y,
                  square=False, mouth=inner_rim, outer_mouth=HOOD_MESH_INNER_RIM + HOOD_WALL)
    for geom in body.geoms:
        if geom.contype:
            geom.solimp, geom.friction[0], geom.condim = HOOD_CONTACT_SOLIMP, HOOD_GLOBE_FRICTION, PINCHED_CONDIM


def _add_parts(spec: mujoco.MjSpec, root: Path) -> None:
    _add_base(spec, root)
    _add_bulb(spec, root)
    _add_hood(spec, root)


LAMP = FurnitureParts(
    name="lamp", part_names=(BASE_NAME, BULB_NAME, HOOD_NAME), add_parts=_add_parts,
    threads=(Thread(host=BASE_NAME, parts=(BULB_NAME,), seat=assembled_rel_pose("lamp", (0, 1)),
                    axis=(0.0, 1.0, 0.0), pitch=THREAD_PITCH, start=THREAD_START),))
