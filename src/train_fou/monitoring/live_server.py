"""The Foxglove live view's server: its channels, its viewers, the camera's throttle and encoder (no rclpy).

`LiveViewServer` owns one foxglove Context and its WebSocket server, with the
channels of live_view.Channels: the camera as `foxglove.CompressedImage`, the
detections over it as `foxglove.ImageAnnotations`, the JSON channels of
JSON_CHANNELS. The foxglove_bridge node only hands it what it receives.

A viewer must never slow the train. So:
- `wants_camera` says whether a viewer subscribes to the image channel; the
  node subscribes to the camera only then (`camera_on`, `camera_off`);
- `offer_frame` keeps at most one frame per 1/`max_rate_hz` (THROTTLE_SLACK for
  a camera's jitter) and hands it, still serialized, to a one-place mailbox
  (train_fou.vision.frames.NewestSlot): frames are dropped and counted, never
  queued. A thread of its own parses, shrinks and encodes it
  (live_view.live_frame);
- the SDK gives each client a bounded outgoing buffer (`backlog`) and drops the
  oldest message when a slow client lets it fill;
- JSON payloads are built only while a viewer subscribes to their channel.

Annotations go out only for frames the viewer got (same stamp, same
frame_id, boxes in the pixels of the image as sent), after their frame: a
detection that arrives before its frame is encoded waits for it.
Time is passed in (`now_s`, monotonic seconds).
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from train_fou.monitoring import live_view
from train_fou.monitoring.errors import MonitoringError
from train_fou.vision.cdr import header_stamp
from train_fou.vision.errors import ImageDecodeError
from train_fou.vision.frames import NewestSlot

#: Channel (a field of live_view.Channels) -> (schema name, payload builder) of the JSON channels.
JSON_CHANNELS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    'detections': ('train_fou.SignDetectionArray', live_view.detections_json),
    'speed_command': ('train_fou.SpeedCommand', live_view.speed_command_json),
    'hub_state': ('train_fou.HubState', live_view.hub_state_json),
    'diagnostics': ('diagnostic_msgs/msg/DiagnosticArray', live_view.diagnostics_json),
}
#: Frames whose annotations may still come (the detector answers a frame within a few frames).
PENDING_FRAMES = 16
#: A port that a server stopped just before is free again within milliseconds: retry this long.
BIND_RETRY_S = 2.0
#: A frame a little early for its slot still takes it (a 10 fps camera at a 5 fps limit sends 5, not 3.3).
THROTTLE_SLACK = 0.9
#: States of a frame in `_pending` besides None (taken, not sent) and its annotations (waiting for it).
_SENT = object()   # the frame went out, its annotations did not
_DONE = object()   # both went out


class LiveViewServer:
    """The live view of one pipeline: `start` it, feed it messages by their fields, `close` it."""

    def __init__(self, transport: str, max_rate_hz: float, max_width: int, quality: int, namespace: str = '',
                 name: str = 'foxglove_bridge') -> None:
        """`transport`: raw (serialized sensor_msgs/Image) or compressed (CompressedImage); `name` starts
        its error lines."""
        import foxglove
        from foxglove.channels import CompressedImageChannel, ImageAnnotationsChannel

        self.name, self.transport, self.max_width, self.quality = name, transport, max_width, quality
        self.period_s = 1.0 / max_rate_hz
        self.topics = live_view.channel_topics(namespace)
        self.port: int | None = None
        self.camera_subscribed = False
        self.stats: dict[str, Any] = {
            'images_sent': 0, 'image_bytes': 0, 'images_reencoded': 0, 'frames_throttled': 0, 'frames_dropped': 0,
            'bad_frames': 0, 'annotations_sent': 0, 'json_messages': 0, 'camera_subscriptions': 0, 'last_problem': ''}
        self._lock = threading.Lock()
        self._pending: collections.OrderedDict = collections.OrderedDict()  # (sec, nsec) -> None | annotations
        self._last_accept = -1e9
        self._subscriptions: set[tuple[int, int]] = set()  # (client id, channel id)
        self._slot: NewestSlot = NewestSlot()
        self._thread = threading.Thread(target=self._encode_loop, name='foxglove_encoder', daemon=True)
        self._server = None
        self._closed = False
        self._foxglove = foxglove.Context()
        self._image = CompressedImageChannel(self.topics.image, context=self._foxglove)
        self._annotations = ImageAnnotationsChannel(self.topics.annotations, context=self._foxglove)
        self._json = {key: foxglove.Channel(
            getattr(self.topics, key), message_encoding='json', context=self._foxglove,
            schema=foxglove.Schema(name=schema, encoding='jsonschema', data=live_view.schema_bytes(schema)))
            for key, (schema, _build) in JSON_CHANNELS.items()}

    def start(self, host: str, port: int, backlog: int) -> int:
        """Serve on host:port (0: any free port), `backlog` messages per viewer, and start the encoder.
        Returns the port; MonitoringError (one line) when it cannot listen."""
        import foxglove

        listener = _Listener(self._subscriptions, self._lock)
        deadline = time.monotonic() + BIND_RETRY_S
        while self._server is None:
            try:
                self._server = foxglove.start_server(
                    name='train_fou', host=host, port=port, context=self._foxglove, server_listener=listener,
                    message_backlog_size=backlog)
            except RuntimeError as err:
                if 'in use' in str(err) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                reason = str(err).removeprefix('FoxgloveError: ')
                raise MonitoringError(f'{self.name}: cannot serve the live view on {host}:{port}: {reason} '
                                      '(another live view on this port? set port)') from None
        self.port = self._server.port
        self._thread.start()
        return self.port

    # --- the camera ---------------------------------------------------------------------------------
    @property
    def wants_camera(self) -> bool:
        """A viewer subscribes to the image channel."""
        return self._image.has_sinks()

    def camera_on(self) -> None:
        self.camera_subscribed = True
        self.stats['camera_subscriptions'] += 1

    def camera_off(self) -> None:
        """The camera is unsubscribed: no frame still waiting for its annotations will come."""
        self.camera_subscribed = False
        with self._lock:
            self._pending.clear()

    def offer_frame(self, serialized, now_s: float) -> None:
        """One serialized camera message, received at `now_s`: kept for the encoder, or throttled, or a
        bad frame (counted). Never blocks."""
        if now_s - self._last_accept < THROTTLE_SLACK * self.period_s:
            self.stats['frames_throttled'] += 1
            return
        try:
            stamp = header_stamp(serialized)
        except ImageDecodeError as err:
            self._problem(f'camera frame: {err}')
            return
        self._last_accept = now_s
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
                frame = live_view.live_frame(self.transport, serialized, self.max_width, self.quality)
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

    # --- the other channels ---------------------------------------------------------------------------
    def detections(self, msg) -> None:
        """A SignDetectionArray (read by its fields): its JSON, and its annotations once its frame went out."""
        self.send('detections', msg)
        if not self._annotations.has_sinks():
            return
        key = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        with self._lock:
            if key not in self._pending:
                return  # a frame the viewer does not get
        annotations = live_view.image_annotations(msg, self.max_width)
        with self._lock:
            state = self._pending.get(key)
            if state is None and key in self._pending:
                self._pending[key] = annotations  # the encoder sends it with its frame
                return
            if state is not _SENT:
                return  # already annotated (a frame answered twice)
            self._pending[key] = _DONE
        self._log_annotations(annotations)

    def send(self, channel: str, msg) -> None:
        """A message of a JSON channel (a key of JSON_CHANNELS), built only while a viewer subscribes to it."""
        sink = self._json[channel]
        if sink.has_sinks():
            sink.log(JSON_CHANNELS[channel][1](msg))
            self.stats['json_messages'] += 1

    def _log_annotations(self, annotations) -> None:
        self._annotations.log(annotations)
        self.stats['annotations_sent'] += 1

    # --- status ---------------------------------------------------------------------------------------
    def _problem(self, text: str) -> None:
        self.stats['bad_frames'] += 1
        self.stats['last_problem'] = text

    @property
    def viewers(self) -> int:
        """Clients subscribed to at least one channel."""
        with self._lock:
            return len({client for client, _channel in self._subscriptions})

    def status(self) -> tuple[str, dict[str, Any]]:
        """(message, values) of the live view's diagnostics status."""
        values = {'port': self.port, 'viewers': self.viewers, 'camera_subscribed': self.camera_subscribed,
                  **self.stats}
        message = (f'{values["viewers"]} viewer(s), {self.stats["images_sent"]} frames sent'
                   if values['viewers'] else 'no viewer')
        return message, values

    def close(self) -> None:
        """Stop the encoder, then the server; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if self._server is not None:
            self._server.stop()


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
