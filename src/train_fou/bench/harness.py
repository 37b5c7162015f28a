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
from train_fou.vision.cdr import CdrReader, header_stamp, write_header_stamp


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
        self.height, self.width = frames[0].shape[:2]

    def __len__(self) -> int:
        return len(self._buffers)

    def stamped(self, index: int, ns: int) -> bytes:
        buffer = self._buffers[index % len(self._buffers)]
        write_header_stamp(buffer, *divmod(ns, 1_000_000_000))
        return bytes(buffer)


def command_source_ns(serialized) -> int:
    """source_stamp, in nanoseconds, of a serialized train_fou/SpeedCommand (header, then source_stamp)."""
    reader = CdrReader(serialized)
    reader.int32('header.stamp.sec')
    reader.uint32('header.stamp.nanosec')
    reader.string('header.frame_id')
    return reader.int32('source_stamp.sec') * 1_000_000_000 + reader.uint32('source_stamp.nanosec')


class Collector:
    """Detections and speed commands from the bench's own subscriptions, with arrival times.

    Both subscriptions are raw and read only stamps: they share the executor thread and
    the GIL with the pipeline under test, so they must cost it as little as possible.
    """

    def __init__(self):
        self.cond = threading.Condition()
        self.arrivals: dict[int, tuple[float, bytes]] = {}
        self.timings: dict[int, object] = {}  #: stamp -> the in-process detector's FrameTiming
        self.command_latencies: list[float] = []
        self.command_arrivals: dict[int, int] = {}  #: source stamp -> time_ns of its first command
        self._last_source = None

    def on_timing(self, timing) -> None:
        """InferenceWorker.on_timing of a detector in this process (same perf_counter clock)."""
        with self.cond:
            self.timings[timing.sec * 1_000_000_000 + timing.nanosec] = timing
            self.cond.notify_all()

    def wait_timing(self, key: int, timeout_s: float):
        """The FrameTiming of the frame stamped `key` (it follows the answer by microseconds), or None."""
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.timings, timeout_s):
                return None
            return self.timings.pop(key)

    def on_detections(self, serialized: bytes) -> None:
        """Raw subscription: the arrival time is taken before anything is deserialized."""
        now = time.perf_counter()
        key = stamp_ns(serialized)
        with self.cond:
            self.arrivals[key] = (now, serialized)
            self.cond.notify_all()

    def on_command(self, serialized: bytes) -> None:
        """Raw subscription to the controller's commands: the first one on each new image is timed."""
        now = time.time_ns()
        source = command_source_ns(serialized)
        if source and source != self._last_source:  # the first command decided on a new image
            with self.cond:
                self.command_latencies.append((now - source) / 1e6)
                self.command_arrivals[source] = now
        self._last_source = source

    def wait_arrival(self, key: int, timeout_s: float) -> float | None:
        """Arrival perf_counter of the detections of the frame stamped `key` (not deserialized), or None."""
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrivals, timeout_s):
                return None
            return self.arrivals.pop(key)[0]

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
            self.timings.clear()

    def forget_commands(self) -> None:
        with self.cond:
            self.command_latencies.clear()
            self.command_arrivals.clear()
