"""What every bench measurement shares: frames, ready-serialized images, answer timing, percentiles.

Times are taken where the cost being measured ends: a detections message is timed on
arrival, before it is deserialized (turning it into Python objects is the bench's cost,
not the node's), and images are published as ready CDR bytes (a C++ camera driver's
cost, not the node's).
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from train_fou.msg import SignDetectionArray
from train_fou.nodes.image_msgs import image_msg
from train_fou.vision.cdr import header_stamp, write_header_stamp


def percentile(values, q: float) -> float | None:
    """The q-th percentile of `values`, rounded to 3 decimals; None when there are none."""
    return None if not values else round(float(np.percentile(values, q)), 3)


def make_frames(count: int, width: int, height: int, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """(camera-like BGR frames, what they show): signs on track backgrounds, else textured noise."""
    rng = np.random.default_rng(seed)
    frames = []
    try:
        from train_fou.render.scene import background, paste_rgba
        from train_fou.render.signs import CLASS_KINDS, render_sign
        for _i in range(count):
            rgb, _ground = background('rails', width, height, rng)
            for _ in range(int(rng.integers(0, 3))):
                sprite, _box = render_sign(CLASS_KINDS[int(rng.integers(len(CLASS_KINDS)))],
                                           int(rng.integers(24, height // 3)), rng)
                paste_rgba(rgb, sprite, int(rng.integers(0, width - 40)), int(rng.integers(0, height // 2)))
            frames.append(np.ascontiguousarray(rgb[..., ::-1]))
        return frames, 'train_fou.render signs on rails backgrounds'
    except Exception:  # the renderer is optional here: any frames measure the same cost
        base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        return [np.roll(base, i * 7, axis=1) for i in range(count)], 'random texture'


def stamp_ns(serialized) -> int:
    """header.stamp, in nanoseconds, of a serialized message whose first field is a std_msgs/Header."""
    sec, nanosec = header_stamp(serialized)
    return sec * 1_000_000_000 + nanosec


class SerializedFrames:
    """Image messages serialized once; each send patches the stamp into the CDR bytes."""

    def __init__(self, frames):
        self._buffers = [bytearray(serialize_message(image_msg(f, Header(frame_id='bench_camera')))) for f in frames]

    def __len__(self) -> int:
        return len(self._buffers)

    def stamped(self, index: int, ns: int) -> bytes:
        buffer = self._buffers[index % len(self._buffers)]
        write_header_stamp(buffer, *divmod(ns, 1_000_000_000))
        return bytes(buffer)


class Collector:
    """Detections and speed commands from the bench's own subscriptions, with arrival times."""

    def __init__(self):
        self.cond = threading.Condition()
        self.arrivals: dict[int, tuple[float, bytes]] = {}
        self.command_latencies: list[float] = []
        self._last_source = None

    def on_detections(self, serialized: bytes) -> None:
        """Raw subscription: the arrival time is taken before anything is deserialized."""
        now = time.perf_counter()
        key = stamp_ns(serialized)
        with self.cond:
            self.arrivals[key] = (now, serialized)
            self.cond.notify_all()

    def on_command(self, msg) -> None:
        source = msg.source_stamp.sec * 1_000_000_000 + msg.source_stamp.nanosec
        if source and source != self._last_source:  # the first command decided on a new image
            self.command_latencies.append((time.time_ns() - source) / 1e6)
        self._last_source = source

    def wait_for(self, key: int, timeout_s: float):
        """(arrival perf_counter, SignDetectionArray) of the frame stamped `key`, or None."""
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrivals, timeout_s):
                return None
            arrived, serialized = self.arrivals.pop(key)
        return arrived, deserialize_message(serialized, SignDetectionArray)

    def take_all(self) -> dict:
        """Every arrival not waited for yet: stamp -> (arrival perf_counter, SignDetectionArray)."""
        with self.cond:
            arrivals, self.arrivals = self.arrivals, {}
        return {key: (t, deserialize_message(data, SignDetectionArray)) for key, (t, data) in arrivals.items()}

    def forget_arrivals(self) -> None:
        with self.cond:
            self.arrivals.clear()

    def forget_commands(self) -> None:
        with self.cond:
            self.command_latencies.clear()
