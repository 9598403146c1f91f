"""MJCF for the fast tasks: floating parallel grippers (one, or two for Transport), task fixtures and free objects.

Why this shape of scene (the point of the fast tasks is >= 1,000 env steps/s on one core):

- No arm. The hand is a free body welded to a mocap body; the weld is a critically damped soft constraint, so
  the hand follows the mocap target like robosuite's OSC_POSE controller (a gravity-compensated critically
  damped PD) follows its goal, but inside MuJoCo's constraint solver instead of Python. Its time constant was
  fitted to robosuite's measured response: 8 steps of a = +1 along x move robosuite's Panda 0.0055, 0.0153, ...,
  0.0858 m and this hand 0.0052, 0.0150, ..., 0.0844 m. robosuite re-anchors the goal on the measured pose every
  control step, and so does the env (see ``base_env``).
- Fingers copy robosuite's Panda gripper where it matters for the observation and the grasp: slide joints
  ``finger_joint1`` in [0, 0.04] and ``finger_joint2`` in [-0.04, 0] (their qpos is ``robot0_gripper_qpos``),
  position actuators kp 1000 limited to 20 N, joint damping 100 and armature 1, pad friction 2, condim 4.
  The pads are longer than the Panda's (a 5 cm flat finger) so box-box contacts give several points and grasps
  stay stable at a 2 ms step. The pad inner faces sit at +-qpos, so the finger gap is ``qpos1 - qpos2``.
- Collision filtering by bits: static fixtures (contype 1) touch objects and gripper; objects (contype 2)
  touch everything; gripper geoms (contype 4) never touch each other. Visual-only geoms have contype 0.
- Table tops and bin floors collide as planes: plane contacts are the cheapest and give a standing cylinder
  (the can) four contact points, where box-cylinder would give one and let the can rock.

Frames: the hand body origin is robosuite's ``robot0_eef_pos`` (the grip site between the pads) and its
orientation is robosuite's ``robot0_eef_quat`` frame (z along the fingers, pointing down at rest; fingers open
along y).
"""
from __future__ import annotations

import mujoco

TIMESTEP = 0.002
CONTROL_DT = 0.05  # 20 Hz, as robomimic
WELD_TIMECONST = 0.095  # seconds; fitted to robosuite Panda OSC_POSE step responses (see above)

# One floating gripper; ``{p}`` prefixes every name so a scene can hold several (the single-arm tasks use "").
_GRIPPER_BODIES = """
    <body name="{p}hand_target" mocap="true"/>
    <body name="{p}hand" gravcomp="1">
      <freejoint name="{p}hand_free"/>
      <inertial pos="0 0 -0.05" mass="0.5" diaginertia="0.002 0.002 0.002"/>
      <geom name="{p}palm" class="gripper" size="0.025 0.065 0.015" pos="0 0 -0.06" friction="1 0.005 0.0001"/>
      <body name="{p}finger1" gravcomp="1">
        <inertial pos="0 0 -0.02" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
        <joint name="{p}finger_joint1" class="finger" range="0 0.04"/>
        <geom name="{p}finger1_pad" class="pad" pos="0 0.004 -0.02"/>
      </body>
      <body name="{p}finger2" gravcomp="1">
        <inertial pos="0 0 -0.02" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
        <joint name="{p}finger_joint2" class="finger" range="-0.04 0"/>
        <geom name="{p}finger2_pad" class="pad" pos="0 -0.004 -0.02"/>
      </body>
    </body>"""
_GRIPPER_WELD = """
    <weld name="{p}hand_to_target" body1="{p}hand_target" body2="{p}hand" relpose="0 0 0 1 0 0 0"
          solref="{timeconst:.6f} 1" solimp="0.99 0.99 0.001"/>"""
_GRIPPER_ACTUATORS = """
    <position name="{p}gripper_finger_joint1" joint="{p}finger_joint1" kp="1000" ctrlrange="0 0.04"
              forcerange="-20 20"/>
    <position name="{p}gripper_finger_joint2" joint="{p}finger_joint2" kp="1000" ctrlrange="-0.04 0"
              forcerange="-20 20"/>"""

_TEMPLATE = """
<mujoco model="inril_{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="20"/>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="0"/></visual>
  <default>
    <geom type="box" contype="0" conaffinity="0" group="1"/>
    <default class="static">
      <geom contype="1" conaffinity="0" group="0" friction="1 0.005 0.0001" rgba="0.6 0.5 0.4 1"/>
    </default>
    <default class="object"><geom contype="2" conaffinity="7" group="0"/></default>
    <default class="gripper"><geom contype="4" conaffinity="1" group="0" rgba="0.9 0.9 0.9 1"/></default>
    <default class="pad">
      <geom contype="4" conaffinity="1" group="0" size="0.009 0.004 0.025" friction="2 0.05 0.0001" condim="4"
            solref="0.01 0.5" rgba="0.5 0.5 0.5 1"/>
    </default>
    <default class="finger"><joint type="slide" axis="0 1 0" damping="100" armature="1" frictionloss="1"/></default>
  </default>
  <worldbody>
    <light pos="1 1 1.5" dir="-0.2 -0.2 -1" directional="true" castshadow="false"/>
    <camera name="agentview" pos="1.0 0 1.75" quat="0.653 0.271 0.271 0.653"/>
    <camera name="frontview" pos="1.6 0 1.45" quat="0.56 0.43 0.43 0.56"/>
    <geom name="floor" type="plane" size="2 2 0.1" rgba="0.8 0.8 0.8 1"/>
{fixtures}
{grippers}
{objects}
  </worldbody>
  <equality>{welds}
  </equality>
  <actuator>{actuators}
  </actuator>
</mujoco>
"""


def table_xml(top_z: float, half_size: float = 0.4) -> str:
    """A table whose top is at ``top_z``: a plane for contacts, a box for looks."""
    return (
        f'    <geom name="table_top" type="plane" class="static" size="{half_size} {half_size} 0.01" '
        f'pos="0 0 {top_z}"/>\n'
        f'    <geom name="table_visual" size="{half_size} {half_size} {top_z / 2}" pos="0 0 {top_z / 2}" '
        f'rgba="0.6 0.5 0.4 1"/>'
    )


def build_model(name: str, fixtures: str, objects: str, grippers: tuple[str, ...] = ("",)) -> mujoco.MjModel:
    """Compile the scene for task ``name``: fixture and object MJCF fragments (worldbody level) and one floating
    gripper per name prefix in ``grippers``, each with its mocap target, weld and two finger actuators (in that
    order, so gripper i drives ``ctrl[2 i : 2 i + 2]``)."""
    xml = _TEMPLATE.format(
        name=name,
        timestep=TIMESTEP,
        fixtures=fixtures,
        grippers="\n".join(_GRIPPER_BODIES.format(p=p) for p in grippers),
        objects=objects,
        welds="".join(_GRIPPER_WELD.format(p=p, timeconst=WELD_TIMECONST) for p in grippers),
        actuators="".join(_GRIPPER_ACTUATORS.format(p=p) for p in grippers),
    )
    return mujoco.MjModel.from_xml_string(xml)
