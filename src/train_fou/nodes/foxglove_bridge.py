"""foxglove_bridge: the pipeline over the Foxglove WebSocket protocol (foxglove-sdk), for a viewer without ROS.

Topic wiring over train_fou.monitoring.live_server.LiveViewServer, which owns
the server on one port (ws://<host>:8765 by default), its channels, the
camera's throttle and its encoder thread. Read only: a viewer cannot publish,
call services or set parameters.

A viewer must never slow the train: the camera is subscribed, serialized, only
while a viewer subscribes to the image channel (a timer looks every
CHECK_VIEWERS_S); without one the camera costs this node nothing, not even the
DDS delivery. Its callback only throttles and hands the frame over; the other
callbacks build small JSON payloads, and only while a viewer subscribes.
"""
from __future__ import annotations

import functools
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from train_fou import qos
from train_fou.monitoring.live_server import LiveViewServer
from train_fou.msg import HubState, SignDetectionArray, SpeedCommand
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range, int_range

TRANSPORTS = {'raw': ('camera/image_raw', Image), 'compressed': ('camera/image_raw/compressed', CompressedImage)}
#: How often the node looks whether a viewer wants the camera (it subscribes or unsubscribes then).
CHECK_VIEWERS_S = 0.2


class FoxgloveBridge(CheckedParameters, Node):
    def __init__(self, **kwargs):
        self._view: LiveViewServer | None = None  # what destroy_node needs, before anything can fail
        super().__init__('foxglove_bridge', **kwargs)
        with destroyed_on_failure(self):
            self._declare()
            self._start()

    def _declare(self) -> None:
        ro = dict(read_only=True)
        declare = self.declare_parameter
        declare('host', '0.0.0.0', described('address to listen on (0.0.0.0: every interface, 127.0.0.1: this '
                                             'machine only)', **ro))
        declare('port', 8765, int_range('WebSocket port (0: any free port)', 0, 65535, **ro))
        self.declare_choice('input_transport', 'raw', tuple(TRANSPORTS),
                            'camera topic: raw (camera/image_raw) or compressed (camera/image_raw/compressed)')
        declare('image_max_rate_hz', 5.0, float_range('camera frames per second sent to viewers, at most '
                                                      '(10 % slack for a camera\'s jitter)', 0.1, 60.0, **ro))
        declare('image_max_width', 640, int_range('wider frames are shrunk to this width (pixels)', 32, 8192, **ro))
        declare('jpeg_quality', 75, int_range('JPEG quality of frames the node encodes', 10, 100, **ro))
        declare('message_backlog', 32, int_range(
            'messages buffered per viewer; a slow viewer loses the oldest', 1, 4096, **ro))
        if not self.get_parameter('host').value.strip():
            raise self.parameter_error('host', '', 'an address to listen on, e.g. 0.0.0.0 or 127.0.0.1')

    def _start(self) -> None:
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self._transport = value('input_transport')
        self._camera_sub = None
        self._camera_group = MutuallyExclusiveCallbackGroup()
        view = self._view = LiveViewServer(self._transport, value('image_max_rate_hz'), value('image_max_width'),
                                           value('jpeg_quality'), self.get_namespace())
        self.topics, self.stats = view.topics, view.stats
        self.port = view.start(value('host'), value('port'), value('message_backlog'))

        self.create_subscription(SignDetectionArray, 'signs/detections', view.detections, qos.RELIABLE)
        self.create_subscription(SpeedCommand, 'train/speed_command', functools.partial(view.send, 'speed_command'),
                                 qos.RELIABLE)
        self.create_subscription(HubState, 'hub/state', functools.partial(view.send, 'hub_state'), qos.LATCHED)
        self.create_subscription(DiagnosticArray, '/diagnostics', functools.partial(view.send, 'diagnostics'),
                                 qos.DIAGNOSTICS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_timer(CHECK_VIEWERS_S, self._check_viewers)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'Foxglove live view on ws://{value("host")}:{self.port} '
                               f'(camera: {TRANSPORTS[self._transport][0]}, at most {1 / view.period_s:g} fps)')

    def _check_viewers(self) -> None:
        wanted = self._view.wants_camera
        if wanted and self._camera_sub is None:
            topic, msg_type = TRANSPORTS[self._transport]
            self._camera_sub = self.create_subscription(msg_type, topic, self._on_image, qos.NEWEST_FRAME,
                                                        callback_group=self._camera_group, raw=True)
            self._view.camera_on()
        elif not wanted and self._camera_sub is not None:
            self.destroy_subscription(self._camera_sub)
            self._camera_sub = None
            self._view.camera_off()

    def _on_image(self, serialized: bytes) -> None:
        self._view.offer_frame(serialized, time.monotonic())

    @property
    def viewers(self) -> int:
        """Clients subscribed to at least one channel."""
        return self._view.viewers

    def _publish_diagnostics(self) -> None:
        message, values = self._view.status()
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'foxglove_bridge: live view',
                                                  'ok', message, values))

    def destroy_node(self):
        if self._view is not None:
            self._view.close()
        return super().destroy_node()
