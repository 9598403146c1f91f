"""The round table's parts in the shared MuJoCo scene (``mujoco_scene``): top (part 0), leg (1), base (2).

The leg screws into the top's centre hole and the base screws onto the leg's other end (furniture_bench's
``RoundTable.should_be_assembled = [(0, 1), (1, 2)]``). Sizes are read off the package's OBJ meshes (part frames,
metres; vertex radii about each part's axis, binned along it, and a helix fitted to the thread vertices):

- top: a disc of radius 0.100 from z -0.00125 to 0.005, a rim (radius 0.09375-0.100) up to z 0.0175, and a central
  boss of radius 0.02125 up to z 0.03125 with a threaded blind hole (female crest radius 10.9 mm, root 12.5 mm) down
  to the disc at z 0.005;
- leg (long axis y): a threaded bolt (crest radius 12.2 mm, root 7.8 mm, flat tip of radius 10 mm at y -0.039375)
  up to a round body of radius 0.02125 from y -0.013125 to 0.051875, with a threaded blind hole from its top face
  down to y 0.024375;
- base (axis z): a disc of radius 0.065 (0.0667 at its lip) from z -0.00125 to 0.01125 and a threaded bolt down to
  a flat tip at z -0.02875.

Collision is primitive as for the square table: holes are rings of 16 convex wedges around an 11 mm bore, bolts
(radius 10 mm with a 2 mm chamfer of radius 8 mm), the leg's body and the discs of the top and base are 12-gon prisms
made of boxes (``mujoco_scene.add_polygon_prism``: MuJoCo's cylinder-box contacts let the 10 cm top sink 6 mm into
the table, let a lying leg roll away and a base standing on its bolt tip spin up; box-box contacts are exact). Seated at
furniture_bench's assembled poses, the leg's tip rests on the top's hole floor and its shoulder on the boss face, the
base's tip on the leg's hole floor and its disc on the leg's face, as in the meshes.

Threads (right-handed on all four surfaces; pitch from fitting a helix to the crest and root vertices: 9.38 mm on
the top's hole, 9.42 on the leg's bolt crest, 9.46 on its root, 9.42 on the leg's hole and the base's bolt; the
same fit gives 9.38 mm on the square table's leg, which the one_leg port models at 9.6): pitch 9.4 mm. Engaged
length when seated, from the overlap of the male and female thread crests: 11.7 mm for the leg in the top, 11.0 mm
for the base on the leg, so the threads start that high above the seat (about 1.2 turns; the square table's are
2.4 cm long).

Masses from furniture_bench's sim_config (mesh volume x density): top 121.69 g, leg 32.28 g, base 33.96 g. Inertia:
ours, as uniform solid cylinders of each part's outer size about the part's origin (sim_config has none; FurnitureSim
computes it from the mesh).
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from inril_sim.furniture.contracts import assembled_rel_pose
from inril_sim.furniture.mujoco_scene import (FurnitureParts, Thread, add_bolt, add_bore_ring, add_box, add_free_part,
                                              add_polygon_prism, cylinder_inertia)

TOP_NAME, LEG_NAME, BASE_NAME = "round_table_top", "round_table_leg", "round_table_base"
TOP_MASS, LEG_MASS, BASE_MASS = 0.12169, 0.03228, 0.03396

TOP_RADIUS, TOP_BOTTOM_Z, TOP_DISC_Z = 0.100, -0.00125, 0.005
RIM_INNER, RIM_TOP_Z, RIM_SEGMENTS = 0.09375, 0.0175, 24
BOSS_RADIUS, BOSS_TOP_Z = 0.02125, 0.03125
LEG_RADIUS, LEG_SHOULDER_Y, LEG_HOLE_FLOOR_Y, LEG_TOP_Y = 0.02125, -0.013125, 0.024375, 0.051875
LEG_TIP_Y = -0.039375
BASE_RADIUS, BASE_BOTTOM_Z, BASE_TOP_Z, BASE_TIP_Z = 0.065, -0.00125, 0.01125, -0.02875
BORE_RADIUS = 0.011
# Above the female threads both holes are a plain counterbore of radius 12.5 mm (7.5 mm deep in the top's boss,
# 8.3 mm in the leg); modelled as a cone from the bore to 12.5 mm at the face, which centres a bolt let go up to
# 4.5 mm off the axis (a flat step at 11 mm throws it out: FurnitureBench's expert lets the leg go 5 cm up)
COUNTERBORE_RADIUS = 0.0125
TOP_THREAD_END_Z, LEG_THREAD_END_Y = 0.02375, 0.0436
THREAD_PITCH = 0.0094
LEG_THREAD_START, BASE_THREAD_START = 0.0117, 0.0110

_Y_TO_Z = (np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0)  # a quarter turn about x: a ring built along y stands along z


def _add_top(spec: mujoco.MjSpec, root: Path) -> None:
    thickness = TOP_DISC_Z - TOP_BOTTOM_Z
    body = add_free_part(spec, root, TOP_NAME, "round_table/round_table_top.obj", TOP_MASS,
                         cylinder_inertia(TOP_MASS, TOP_RADIUS, thickness, axis=2))
    add_polygon_prism(body, TOP_RADIUS, TOP_BOTTOM_Z, TOP_DISC_Z, along_z=True)
    mid = (RIM_INNER + TOP_RADIUS) / 2
    for i in range(RIM_SEGMENTS):
        angle = 2 * np.pi * i / RIM_SEGMENTS
        half = ((TOP_RADIUS - RIM_INNER) / 2, mid * np.tan(np.pi / RIM_SEGMENTS), (RIM_TOP_Z - TOP_DISC_Z) / 2)
        geom = add_box(body, half, pos=(mid * np.cos(angle), mid * np.sin(angle), (RIM_TOP_Z + TOP_DISC_Z) / 2))
        geom.quat = (np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2))
    add_bore_ring(spec, body, "top_hole", BORE_RADIUS, BOSS_RADIUS, TOP_DISC_Z, TOP_THREAD_END_Z, square=False,
                  quat=_Y_TO_Z)
    add_bore_ring(spec, body, "top_mouth", BORE_RADIUS, BOSS_RADIUS, TOP_THREAD_END_Z, BOSS_TOP_Z, square=False,
                  quat=_Y_TO_Z, mouth=COUNTERBORE_RADIUS)


def _add_leg(spec: mujoco.MjSpec, root: Path) -> None:
    body = add_free_part(spec, root, LEG_NAME, "round_table/round_table_leg.obj", LEG_MASS,
                         cylinder_inertia(LEG_MASS, LEG_RADIUS, LEG_TOP_Y - LEG_TIP_Y, axis=1))
    add_bolt(body, LEG_TIP_Y, LEG_SHOULDER_Y, along_z=False)
    add_polygon_prism(body, LEG_RADIUS, LEG_SHOULDER_Y, LEG_HOLE_FLOOR_Y)
    add_bore_ring(spec, body, "leg_hole", BORE_RADIUS, LEG_RADIUS, LEG_HOLE_FLOOR_Y, LEG_THREAD_END_Y, square=False)
    add_bore_ring(spec, body, "leg_mouth", BORE_RADIUS, LEG_RADIUS, LEG_THREAD_END_Y, LEG_TOP_Y, square=False,
                  mouth=COUNTERBORE_RADIUS)


def _add_base(spec: mujoco.MjSpec, root: Path) -> None:
    body = add_free_part(spec, root, BASE_NAME, "round_table/round_table_base.obj", BASE_MASS,
                         cylinder_inertia(BASE_MASS, BASE_RADIUS, BASE_TOP_Z - BASE_BOTTOM_Z, axis=2))
    add_polygon_prism(body, BASE_RADIUS, BASE_BOTTOM_Z, BASE_TOP_Z, along_z=True)
    add_bolt(body, BASE_TIP_Z, BASE_BOTTOM_Z, along_z=True)


def _add_parts(spec: mujoco.MjSpec, root: Path) -> None:
    _add_top(spec, root)
    _add_leg(spec, root)
    _add_base(spec, root)


ROUND_TABLE = FurnitureParts(
    name="round_table", part_names=(TOP_NAME, LEG_NAME, BASE_NAME), add_parts=_add_parts,
    threads=(Thread(host=TOP_NAME, parts=(LEG_NAME,), seat=assembled_rel_pose("round_table", (0, 1)),
                    axis=(0.0, 1.0, 0.0), pitch=THREAD_PITCH, start=LEG_THREAD_START),
             Thread(host=LEG_NAME, parts=(BASE_NAME,), seat=assembled_rel_pose("round_table", (1, 2)),
                    axis=(0.0, 0.0, 1.0), pitch=THREAD_PITCH, start=BASE_THREAD_START)))
