"""foxglove_bridge: the pipeline over the Foxglove WebSocket protocol (foxglove-sdk), for a viewer without ROS.

Serves, on one port (ws://<host>:8765 by default), the camera as
`foxglove.CompressedImage` (JPEG), the detections over it as
`foxglove.ImageAnnotations`, the detections, the speed command (with the
controller's state name), the hub state and /diagnostics as JSON
(train_fou.monitoring.live_view names the channels and builds the payloads).
Read only: a viewer cannot publish, call services or set parameters.

A viewer must never slow the train. So:
- the camera is subscribed only while a viewer subscribes to the image channel
  (a timer checks `has_sinks()` every CHECK_VIEWERS_S); without one the camera
  costs this node nothing, not even the DDS delivery;
- the camera callback keeps at most one frame per 1/`image_max_rate_hz` and
  hands it, still serialized, to a one-place mailbox (train_fou.vision.frames.
  NewestSlot): frames are dropped and counted, never queued. A thread of its
  own parses, shrinks and encodes it (a JPEG camera's frame no wider than
  `image_max_width` goes out as the camera made it);
- the SDK gives each client a bounded outgoing buffer (`message_backlog`) and
  drops the oldest message when a slow client lets it fill.
The other callbacks only build small JSON payloads, and only while a viewer
subscribes to their channel.

Annotations go out only for frames the viewer got (same stamp, same
frame_id, boxes in the pixels of the image as sent): a detection that arrives
before its frame is encoded waits for it.
"""
from __future__ import annotations

import collections
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from train_fou import qos
from train_fou.monitoring import live_view
from train_fou.monitoring.errors import MonitoringError
from train_fou.msg import HubState, SignDetectionArray, SpeedCommand
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range, int_range
from train_fou.vision.cdr import header_stamp
from train_fou.vision.errors import ImageDecodeError
from train_fou.vision.frames import NewestSlot

TRANSPORTS = {'raw': ('camera/image_raw', Image), 'compressed': ('camera/image_raw/compressed', CompressedImage)}
#: Channel (a field of live_view.Channels) -> schema name of the JSON channels.
JSON_CHANNELS = {'detections': 'train_fou.SignDetectionArray', 'speed_command': 'train_fou.SpeedCommand',
                 'hub_state': 'train_fou.HubState', 'diagnostics': 'diagnostic_msgs/msg/DiagnosticArray'}
#: How often the node looks whether a viewer wants the camera (it subscribes or unsubscribes then).
CHECK_VIEWERS_S = 0.2
#: Frames whose annotations may still come (the detector answers a frame within a few frames).
PENDING_FRAMES = 16
#: A port that a server stopped just before is free again within milliseconds: retry this long.
BIND_RETRY_S = 2.0
#: A frame a little early for its slot still takes it (a 10 fps camera at a 5 fps limit sends 5, not 3.3).
THROTTLE_SLACK = 0.9
#: States of a frame in `_pending` besides None (taken, not sent) and its annotations (waiting for it).
_SENT = object()   # the frame went out, its annotations did not
_DONE = object()   # both went out


class FoxgloveBridge(CheckedParameters, Node):
    def __init__(self, **kwargs):
        # what destroy_node needs, before anything can fail
        self._slot: NewestSlot = NewestSlot()
        self._thread = threading.Thread(target=self._encode_loop, name='foxglove_encoder', daemon=True)
        self._server = None
        self._destroyed = False
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
        import foxglove
        from foxglove.channels import CompressedImageChannel, ImageAnnotationsChannel

        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self._transport = value('input_transport')
        self._period_s = 1.0 / value('image_max_rate_hz')
        self._max_width = value('image_max_width')
        self._quality = value('jpeg_quality')
        self._lock = threading.Lock()
        self._pending: collections.OrderedDict = collections.OrderedDict()  # (sec, nsec) -> None | annotations
        self._last_accept = -1e9
        self._camera_sub = None
        self._camera_group = MutuallyExclusiveCallbackGroup()
        self._viewers: set[int] = set()
        self.stats = {'images_sent': 0, 'image_bytes': 0, 'images_reencoded': 0, 'frames_throttled': 0,
                      'frames_dropped': 0, 'bad_frames': 0, 'annotations_sent': 0, 'json_messages': 0,
                      'camera_subscriptions': 0, 'last_problem': ''}

        self._foxglove = foxglove.Context()
        self.topics = live_view.channel_topics(self.get_namespace())
        self._image = CompressedImageChannel(self.topics.image, context=self._foxglove)
        self._annotations = ImageAnnotationsChannel(self.topics.annotations, context=self._foxglove)
        self._json = {}
        for key, schema in JSON_CHANNELS.items():
            self._json[key] = foxglove.Channel(
                getattr(self.topics, key), message_encoding='json', context=self._foxglove,
                schema=foxglove.Schema(name=schema, encoding='jsonschema', data=live_view.schema_bytes(schema)))
        self._server = self._serve(foxglove, value('host'), value('port'), value('message_backlog'))
        self.port = self._server.port

        self._thread.start()
        self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE)
        self.create_subscription(SpeedCommand, 'train/speed_command', self._json_callback(
            'speed_command', live_view.speed_command_json), qos.RELIABLE)
        self.create_subscription(HubState, 'hub/state', self._json_callback(
            'hub_state', live_view.hub_state_json), qos.LATCHED)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._json_callback(
            'diagnostics', live_view.diagnostics_json), qos.DIAGNOSTICS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_timer(CHECK_VIEWERS_S, self._check_viewers)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f'Foxglove live view on ws://{value("host")}:{self.port} '
                               f'(camera: {TRANSPORTS[self._transport][0]}, at most {1 / self._period_s:g} fps)')

    def _serve(self, foxglove, host: str, port: int, backlog: int):
        listener = _Listener(self._viewers, self._lock)
        deadline = time.monotonic() + BIND_RETRY_S
        while True:
            try:
                return foxglove.start_server(name='train_fou', host=host, port=port, context=self._foxglove,
                                             server_listener=listener, message_backlog_size=backlog)
            except RuntimeError as err:
                if 'in use' in str(err) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                reason = str(err).removeprefix('FoxgloveError: ')
                raise MonitoringError(f'foxglove_bridge: cannot serve the live view on {host}:{port}: {reason} '
                                      '(another live view on this port? set port)') from None

    # --- camera: subscribed while a viewer watches, one frame per period, encoded off the executor ---------
    def _check_viewers(self) -> None:
        wanted = self._image.has_sinks()
        if wanted and self._camera_sub is None:
            topic, msg_type = TRANSPORTS[self._transport]
            self._camera_sub = self.create_subscription(msg_type, topic, self._on_image, qos.NEWEST_FRAME,
                                                        callback_group=self._camera_group, raw=True)
            self.stats['camera_subscriptions'] += 1
        elif not wanted and self._camera_sub is not None:
            self.destroy_subscription(self._camera_sub)
            self._camera_sub = None
            with self._lock:
                self._pending.clear()

    def _on_image(self, serialized: bytes) -> None:
        now = time.monotonic()
        if now - self._last_accept < THROTTLE_SLACK * self._period_s:
            self.stats['frames_throttled'] += 1
            return
        try:
            stamp = header_stamp(serialized)
        except ImageDecodeError as err:
            self._problem(f'camera frame: {err}')
            return
        self._last_accept = now
        with self._lock:
            self._pending[stamp] = None
            while len(self._pending) > PENDING_FRAMES:
                self._pending.popitem(last=False)
        self._slot.put(serialized)

    def _encode_loop(self) -> None:
        while True:
            serialized = self._slot.take(0.5)
            self.stats['frames_dropped'] = self._slot.dropped
            if serialized is None:
                if self._slot.closed:
                    return
                continue
            try:
                frame = live_view.live_frame(self._transport, serialized, self._max_width, self._quality)
            except ImageDecodeError as err:
                self._problem(f'camera frame: {err}')
                continue
            try:
                self._image.log(live_view.compressed_image(frame))
            except Exception as err:  # the server went away (shutdown): nothing to send to
                self._problem(f'image not sent: {err}')
                continue
            self.stats['images_sent'] += 1
            self.stats['image_bytes'] += len(frame.jpeg)
            self.stats['images_reencoded'] += int(frame.reencoded)
            key = (frame.sec, frame.nanosec)
            with self._lock:
                waiting = self._pending.get(key)
                annotated = waiting is not None and waiting is not _SENT and waiting is not _DONE
                if key in self._pending:
                    self._pending[key] = _DONE if annotated else _SENT
            if annotated:
                self._log_annotations(waiting)

    def _on_detections(self, msg: SignDetectionArray) -> None:
        channel = self._json['detections']
        if channel.has_sinks():
            channel.log(live_view.detections_json(msg))
            self.stats['json_messages'] += 1
        if not self._annotations.has_sinks():
            return
        key = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        with self._lock:
            if key not in self._pending:
                return  # a frame the viewer does not get
        annotations = live_view.image_annotations(msg, self._max_width)
        with self._lock:
            state = self._pending.get(key)
            if state is None and key in self._pending:
                self._pending[key] = annotations  # the encoder sends it with its frame
                return
            if state is not _SENT:
                return  # already annotated (a frame answered twice)
            self._pending[key] = _DONE
        self._log_annotations(annotations)

    def _log_annotations(self, annotations) -> None:
        self._annotations.log(annotations)
        self.stats['annotations_sent'] += 1

    def _json_callback(self, key: str, build):
        channel = self._json[key]

        def callback(msg) -> None:
            if channel.has_sinks():
                channel.log(build(msg))
                self.stats['json_messages'] += 1
        return callback

    # --- status -----------------------------------------------------------------------------------
    def _problem(self, text: str) -> None:
        self.stats['bad_frames'] += 1
        self.stats['last_problem'] = text

    @property
    def viewers(self) -> int:
        """Clients subscribed to at least one channel."""
        with self._lock:
            return len({client for client, _channel in self._viewers})

    def _publish_diagnostics(self) -> None:
        values = {'port': self.port, 'viewers': self.viewers, 'camera_subscribed': self._camera_sub is not None,
                  **self.stats}
        message = (f'{values["viewers"]} viewer(s), {self.stats["images_sent"]} frames sent'
                   if values['viewers'] else 'no viewer')
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'foxglove_bridge: live view',
                                                  'ok', message, values))

    # --- teardown -----------------------------------------------------------------------------------
    def destroy_node(self):
        if not self._destroyed:
            self._destroyed = True
            self._slot.close()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(5.0)
            if self._server is not None:
                self._server.stop()
        return super().destroy_node()


class _Listener:
    """foxglove ServerListener: which client subscribes to which channel (called on the SDK's thread)."""

    def __init__(self, subscriptions: set, lock: threading.Lock) -> None:
        self._subscriptions = subscriptions
        self._lock = lock

    def on_subscribe(self, client, channel) -> None:
        with self._lock:
            self._subscriptions.add((client.id, channel.id))

    def on_unsubscribe(self, client, channel) -> None:
        with self._lock:
            self._subscriptions.discard((client.id, channel.id))
