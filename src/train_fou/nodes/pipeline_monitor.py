"""pipeline_monitor: watches the pipeline's outputs for the CLI (replay lines, summary, report).

Subscribes to signs/detections, train/speed_command and hub/state (and, for
reports, the camera), and records what it sees. State changes are queued for
the CLI to print; the node itself never prints.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from train_fou import qos
from train_fou.msg import HubState, SignDetectionArray, SpeedCommand
from train_fou.nodes.ros_helpers import stamp_ns


def bgr_of(msg) -> np.ndarray:
    """BGR pixels of an Image or CompressedImage (ImageDecodeError when malformed)."""
    from train_fou.vision.images import decode_jpeg, image_from_raw
    if isinstance(msg, CompressedImage):
        return decode_jpeg(msg.data)
    return image_from_raw(msg.encoding, msg.height, msg.width, msg.step, msg.data)


@dataclass(frozen=True)
class StateChange:
    source_stamp_ns: int
    before: int | None
    after: int
    power: int
    brake: bool
    reason: str


@dataclass
class FrameRecord:
    stamp_ns: int
    detections: list                 #: (label, score, (x, y, w, h))
    command_power: int | None = None
    brake: bool = False
    state: int | None = None
    applied_power: int | None = None
    frames_dropped: int = 0
    inference_ms: float = 0.0


@dataclass
class Observed:
    frames: list[FrameRecord] = field(default_factory=list)
    commands: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    images: dict[int, object] = field(default_factory=dict)   #: stamp -> small BGR frame (reports)


class PipelineMonitor(Node):
    def __init__(self, camera_transport: str = '', keep_images_every: int = 0, image_width: int = 320, **kwargs):
        """`camera_transport`: '' (no images), 'raw' or 'compressed'; images are kept downscaled."""
        super().__init__('pipeline_monitor', **kwargs)
        self.changes: queue.Queue[StateChange] = queue.Queue()
        self.observed = Observed()
        self._lock = threading.Lock()
        self._command: SpeedCommand | None = None
        self._applied: int | None = None
        self._images_seen = 0
        self._keep_every = keep_images_every
        self._image_width = image_width
        self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE)
        self.create_subscription(SpeedCommand, 'train/speed_command', self._on_command, qos.RELIABLE)
        self.create_subscription(HubState, 'hub/state', self._on_hub, qos.LATCHED)
        if camera_transport and keep_images_every:
            msg_type, topic = ((Image, 'camera/image_raw') if camera_transport == 'raw'
                               else (CompressedImage, 'camera/image_raw/compressed'))
            self.create_subscription(msg_type, topic, self._on_image, qos.SENSOR)

    def _on_detections(self, msg: SignDetectionArray) -> None:
        record = FrameRecord(stamp_ns(msg.header.stamp),
                             [(d.label, float(d.score), (d.x_min, d.y_min, d.width, d.height)) for d in msg.detections],
                             frames_dropped=int(msg.frames_dropped), inference_ms=float(msg.inference_ms))
        with self._lock:
            self.observed.frames.append(record)
            self._fill(record)

    def _fill(self, record: FrameRecord) -> None:
        command = self._command
        if command is not None:
            record.command_power, record.brake = int(command.power), bool(command.brake)
            record.state = int(command.state)
        record.applied_power = self._applied

    def _on_command(self, msg: SpeedCommand) -> None:
        with self._lock:
            before = self._command
            self._command = msg
            self.observed.commands += 1
            # The answer to a frame arrives after its detections: attach it to that frame.
            source = stamp_ns(msg.source_stamp)
            for record in reversed(self.observed.frames[-5:]):
                if record.stamp_ns == source:
                    self._fill(record)
                    break
        # A new state, or a new decision within it (a limit 30 -> 50 stays LIMIT): one line each.
        if before is None or before.state != msg.state or before.reason != msg.reason:
            self.changes.put(StateChange(stamp_ns(msg.source_stamp), None if before is None else int(before.state),
                                         int(msg.state), int(msg.power), bool(msg.brake), msg.reason))

    def _on_hub(self, msg: HubState) -> None:
        with self._lock:
            self._applied = int(msg.applied_power)
            if msg.command_latency_ms > 0:
                self.observed.latencies_ms.append(float(msg.command_latency_ms))

    def _on_image(self, msg) -> None:
        self._images_seen += 1
        if (self._images_seen - 1) % self._keep_every:
            return
        import cv2

        from train_fou.vision.errors import ImageDecodeError
        try:
            image = bgr_of(msg)
        except ImageDecodeError:
            return  # the detector reports malformed frames
        scale = self._image_width / image.shape[1]
        small = cv2.resize(image, (self._image_width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        with self._lock:
            self.observed.images[stamp_ns(msg.header.stamp)] = (small, scale)

    def snapshot(self) -> Observed:
        with self._lock:
            return Observed(list(self.observed.frames), self.observed.commands, list(self.observed.latencies_ms),
                            dict(self.observed.images))
