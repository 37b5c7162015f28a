"""bag_player: the camera's replacement, images from a ROS 2 bag (MCAP or sqlite3).

Publishes the recorded image topic on camera/image_raw (or .../compressed) as
the recorded CDR bytes, so the bag's header stamps go out unchanged. Pace: the
recorded one times `rate`; with rate 0 each frame waits for the detector's
answer (signs/detections with its stamp, at most `lockstep_timeout_s`): as fast
as the pipeline takes it. A missing, corrupt or image-less bag gives one error
line naming the path and the topics that do exist; the node stays up and
reports ERROR on /diagnostics.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from train_fou import qos
from train_fou.msg import SignDetectionArray
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range
from train_fou.vision.errors import BagError
from train_fou.vision.image_bag import KINDS, ImageBag

OUTPUTS = {'raw': ('camera/image_raw', Image), 'compressed': ('camera/image_raw/compressed', CompressedImage)}


class BagPlayer(CheckedParameters, Node):
    def __init__(self, **kwargs):
        # what on_shutdown needs, before anything can fail
        self._stop = threading.Event()
        self._answered = threading.Condition()
        self._thread = None
        self._bag: ImageBag | None = None
        super().__init__('bag_player', **kwargs)
        with destroyed_on_failure(self):
            self._setup()

    def _setup(self) -> None:
        ro = dict(read_only=True)
        self.declare_parameter('bag_path', '', described('rosbag2 directory, .mcap or .db3 file', **ro))
        self.declare_parameter('topic', '', described(
            'image topic in the bag; empty: the first image topic (raw preferred)', **ro))
        self.declare_choice('message_type', 'auto', KINDS,
                            'auto, raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)')
        self.declare_parameter('rate', 1.0, float_range(
            'playback speed factor; 0: as fast as the detector answers', 0, 100))
        self.declare_parameter('loop', False, described('start over at the end'))
        self.declare_parameter('start_offset_s', 0.0, float_range('skip this much of the recording', 0, 1e6, **ro))
        self.declare_parameter('lockstep_timeout_s', 1.0, float_range(
            'with rate 0: longest wait for the answer to a frame', 0.01, 60))
        self.declare_parameter('wait_for_subscriber_s', 5.0, float_range(
            'before the first frame, wait this long for a subscriber (0: do not wait)', 0, 3600, **ro))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._answered_stamp: tuple[int, int] | None = None
        self.published = 0
        self.loops = 0
        self._anchor: tuple[float, int, float] | None = None  # (monotonic, log time ns, rate) of the pace
        self._last_sent: tuple[float, int] | None = None
        self.finished = False
        self.error = ''
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        kind = self.get_parameter('message_type').value
        try:
            self._bag = ImageBag(self.get_parameter('bag_path').value, self.get_parameter('topic').value, kind)
        except BagError as err:
            self.error = str(err)
            self.get_logger().error(self.error)
        kind = self._bag.kind if self._bag else (kind if kind != 'auto' else 'raw')
        topic, msg_type = OUTPUTS[kind]
        self._pub = self.create_publisher(msg_type, topic, qos.SENSOR)
        self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE)
        self.create_timer(1.0, self._publish_diagnostics)
        if self._bag is not None:
            self.get_logger().info(f'playing {self._bag.path}: {self._bag.topic} ({self._bag.message_count} '
                                   f'{kind} images, {self._bag.duration_s:.1f} s) on {self._pub.topic_name}')
            self._thread = threading.Thread(target=self._play, name='bag_player', daemon=True)
            self._thread.start()

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'message_type' and param.value not in KINDS:
                return SetParametersResult(successful=False, reason=f'message_type must be one of {", ".join(KINDS)}')
        return SetParametersResult(successful=True)

    def _on_detections(self, msg) -> None:
        with self._answered:
            self._answered_stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self._answered.notify_all()

    def _wait_for_answer(self, stamp, timeout_s: float) -> None:
        with self._answered:
            self._answered.wait_for(lambda: self._answered_stamp == stamp or self._stop.is_set(), timeout_s)

    def _pace(self, log_time_ns: int) -> bool:
        """Wait until a frame recorded at `log_time_ns` is due at the current rate; False when stopping.

        The pace is anchored at the last frame sent and re-anchored when `rate` changes,
        so a new rate applies to the very next gap, even in the middle of a long one.
        """
        while not self._stop.is_set():
            rate = self.get_parameter('rate').value
            if rate <= 0:  # lockstep: the previous frame's answer was the wait
                self._anchor = None
                return True
            if self._anchor is None or self._anchor[2] != rate:
                start, first = self._last_sent if self._anchor is not None and self._last_sent else (
                    time.monotonic(), log_time_ns)
                self._anchor = (start, first, rate)
            start, first, _ = self._anchor
            remaining = start + (log_time_ns - first) / 1e9 / rate - time.monotonic()
            if remaining <= 0:
                return True
            self._stop.wait(min(remaining, 0.1))
        return False

    def _play(self) -> None:
        offset = self.get_parameter('start_offset_s').value
        deadline = time.monotonic() + self.get_parameter('wait_for_subscriber_s').value
        while self._pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            if self._stop.wait(0.02):
                return
        try:
            while not self._stop.is_set():
                self._anchor = None
                for frame in self._bag.frames(offset):
                    if not self._pace(frame.log_time_ns):
                        return
                    self._pub.publish(frame.data)
                    self._last_sent = (time.monotonic(), frame.log_time_ns)
                    self.published += 1
                    if self.get_parameter('rate').value == 0:
                        self._wait_for_answer(frame.stamp, self.get_parameter('lockstep_timeout_s').value)
                if not self.get_parameter('loop').value:
                    break
                self.loops += 1
        except BagError as err:
            self.error = str(err)
            self.get_logger().error(self.error)
        finally:
            self.finished = True

    def _publish_diagnostics(self) -> None:
        if self.error:
            level, message = 'error', self.error
        elif self.finished:
            level, message = 'ok', 'finished'
        else:
            level, message = 'ok', 'playing'
        bag = self._bag
        values = {'bag': bag.path if bag else self.get_parameter('bag_path').value, 'topic': bag.topic if bag else '',
                  'published': self.published, 'loops': self.loops}
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'bag_player: playback',
                                                  level, message, values))

    def on_shutdown(self) -> None:
        self._stop.set()
        with self._answered:
            self._answered.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if self._bag is not None:
            self._bag.close()
            self._bag = None

    def destroy_node(self):
        self.on_shutdown()
        return super().destroy_node()
