"""The project's QoS profiles (SPEC §4), chosen once, used by every node."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

#: camera/image_raw, camera/camera_info, signs/annotated: best effort, newest wins.
SENSOR = qos_profile_sensor_data

#: The detector only ever wants the newest frame: keep-last 1.
NEWEST_FRAME = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)

#: signs/detections and train/speed_command: reliable, keep last 10.
RELIABLE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=10,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)

#: hub/state: a late joiner (rqt) gets the latest state at once.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1,
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: /diagnostics
DIAGNOSTICS = 10
