"""The graph's contract in one place: topic and service names, message types, QoS profiles (docs/graph.md).

Every node imports its names and QoS from here, so a publisher and its subscribers cannot drift apart. Names are
absolute: drivers on the real robot keep their upstream names (``/joint_states``) and are remapped onto these in
``config/graph.yaml``; our own nodes live under ``/inril``.

Message choice: standard types only (custom .msg files cannot be built without a ROS distro). Low-rate metadata
(episodes, checkpoint announcements, per-step outcomes) travels as ``std_msgs/String`` holding one JSON object;
transitions travel as ``std_msgs/UInt8MultiArray`` in the versioned byte layout of ``inril_core.transitions``.
"""
from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

NAMESPACE = "/inril"

# -- robot / sim side: what the drivers (or sim_bridge) publish ---------------------------------------------------
JOINT_STATES = "/joint_states"              # sensor_msgs/JointState: arm joints where the backend has them
EEF_POSE = "/inril/robot/eef_pose"          # geometry_msgs/PoseStamped, base frame (real: franka current_pose)
EEF_TWIST = "/inril/robot/eef_twist"        # geometry_msgs/TwistStamped, base frame: tasks whose observation has
                                            # the end-effector velocity (FurnitureBench's robot_state)
GRIPPER_STATE = "/inril/robot/gripper"      # sensor_msgs/JointState: the two finger positions (m)
OBJECT_POSES = "/inril/objects/poses"       # geometry_msgs/PoseArray: task objects (FurnitureBench: parts) in the
                                            # task's order and frame (inril_ros.task_io)
CLOCK = "/clock"                            # rosgraph_msgs/Clock (sim only)
# std_msgs/String JSON {stamp, step, episode, reward, success, terminated, truncated} per env step. ``stamp`` is
# the stamp of the observation the step produced (so a step's reward and the command that caused it are stamped one
# period apart); a reset publishes no step_info but advances the clock one period (docs/graph.md "Time").
STEP_INFO = "/inril/sim/step_info"
SIM_RESET = "/inril/sim_bridge/reset"       # std_srvs/Trigger: new episode; response.message = JSON {seed, episode}


def camera_image(name: str) -> str:
    """sensor_msgs/Image (rgb8) of camera ``name``, realsense2_camera's naming."""
    return f"/camera/{name}/color/image_raw"


def camera_info(name: str) -> str:
    """sensor_msgs/CameraInfo of camera ``name``."""
    return f"/camera/{name}/color/camera_info"


# -- our nodes ------------------------------------------------------------------------------------------------------
ACTION_CHUNK = "/inril/policy/action_chunk"  # trajectory_msgs/JointTrajectory: h points, stamped with the obs time
POLICY_VERSION = "/inril/policy/version"     # std_msgs/String JSON {version, sha256} (latched)
TRANSITIONS = "/inril/transitions"           # std_msgs/UInt8MultiArray, inril_core.transitions layout
COMMAND = "/inril/executor/command"          # trajectory_msgs/JointTrajectory, 1 point: the executed action
EPISODE = "/inril/episode"                   # std_msgs/String JSON episode record (EPISODE_RECORDS)
CHECKPOINT = "/inril/learner/checkpoint"     # std_msgs/String JSON {version, path, sha256, ...} (latched)
LEARNER_METRICS = "/inril/learner/metrics"   # std_msgs/String JSON per learner update
ESTOP = "/inril/estop"                       # std_msgs/Bool (latched); true = stop commanding the arm
ESTOP_RESET = "/inril/safety_monitor/reset"  # std_srvs/Trigger: the only way to clear the e-stop
ESTOP_TRIGGER = "/inril/safety_monitor/trigger"  # std_srvs/Trigger: latch the e-stop by hand
HEARTBEAT = "/inril/heartbeat"               # std_msgs/Header: frame_id = node name, stamp = node clock
DIAGNOSTICS = "/diagnostics"                 # diagnostic_msgs/DiagnosticArray

# The action vector's components, JointTrajectory.joint_names of chunks and commands, depend on the task's action
# convention: inril_core.safety.ACTION_NAMES, chosen per task by inril_ros.task_io (docs/contracts.md).

# -- QoS ------------------------------------------------------------------------------------------------------------
# Latched state: a late joiner (a restarted node) gets the latest value at once.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)
# Latest-sample state and commands: only the newest matters, but lock-step must never lose one.
LATEST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
# Streams where every message counts (transitions, step outcomes): a queue deep enough to ride out a busy learner.
STREAM = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
# /inril/episode: latched *and* every record counts (the learner joins each "ended" outcome with its transitions,
# the recorder closes a bag on it), but records come back to back: "ended" then "done", or "ended" then the next
# "running" one reset later. With LATCHED (depth 1) the "ended" record was overwritten before a reader took it, so
# writer and readers keep a deep history; a late joiner gets the recent records in order, the newest last.
EPISODE_RECORDS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
# The same queue without the replay, for a reader to whom records from before it joined are noise (the learner:
# those episodes' transitions never reached it). Volatile readers match the transient-local writer.
EPISODE_RECORDS_LIVE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
# Camera images: best effort, as realsense2_camera subscribers use; a dropped frame is replaced by the next one.
SENSOR = qos_profile_sensor_data

# Robot state (joint states, end-effector pose, gripper) as a reader takes it, per graph profile (``robot_state_qos``
# in config/graph.yaml). sim_bridge publishes it reliably and lock-step must never lose an observation, so the sim
# reads it reliably; franka_ros2 publishes current_pose best effort, which a reliable reader never matches (DDS
# request/offer), so on the robot the readers ask for best effort, which matches either kind of writer.
ROBOT_STATE_TOPICS = (JOINT_STATES, EEF_POSE, EEF_TWIST, GRIPPER_STATE)
LATEST_BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                                durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
ROBOT_STATE_QOS = {"reliable": LATEST, "best_effort": LATEST_BEST_EFFORT}


def robot_state_qos(name: str) -> QoSProfile:
    """The reader QoS called ``name`` (a key of ROBOT_STATE_QOS); an unknown name raises, naming the valid ones."""
    if name not in ROBOT_STATE_QOS:
        raise ValueError(f"robot_state_qos must be one of {sorted(ROBOT_STATE_QOS)}, got {name!r}")
    return ROBOT_STATE_QOS[name]
