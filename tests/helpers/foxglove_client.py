"""A Foxglove WebSocket client for tests: what a viewer sees of the live view.

Speaks the protocol the Foxglove app speaks (subprotocol `foxglove.sdk.v1`, the
current name of `foxglove.websocket.v1`, same messages): it reads the server's
`advertise`, subscribes to every channel, and keeps each binary message-data
frame (opcode 1: subscription id, log time, payload) with its channel. Payloads
decode with the advertised schema: protobuf from the FileDescriptorSet the
server sends, JSON as JSON. Bounded in time: every read has a deadline.
"""
from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import time
from collections import defaultdict

SUBPROTOCOL = 'foxglove.sdk.v1'
MESSAGE_DATA = 0x01
#: what the live view must advertise: topic -> (encoding, schema name)
CHANNELS = {
    '/camera/image/compressed': ('protobuf', 'foxglove.CompressedImage'),
    '/signs/annotations': ('protobuf', 'foxglove.ImageAnnotations'),
    '/signs/detections': ('json', 'train_fou.SignDetectionArray'),
    '/train/speed_command': ('json', 'train_fou.SpeedCommand'),
    '/hub/state': ('json', 'train_fou.HubState'),
    '/diagnostics': ('json', 'diagnostic_msgs/msg/DiagnosticArray'),
}


@contextlib.contextmanager
def taken_port():
    """A local TCP port that another socket is listening on, for as long as the block runs."""
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        yield taken.getsockname()[1]


class FoxgloveClient:
    def __init__(self, url: str, connect_timeout_s: float = 30.0) -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._connection = connect(url, subprotocols=[SUBPROTOCOL], open_timeout=5, max_size=None)
                self.ws = self._connection.__enter__()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.server_info: dict = {}
        self.channels: dict[int, dict] = {}       #: channel id -> advertised channel
        self.messages: dict[str, list] = defaultdict(list)   #: topic -> [(log_time_ns, payload bytes, wall_s)]
        self.bytes_received = 0
        self.first_s: float | None = None
        self.last_s: float | None = None
        self._subscribed: set[int] = set()
        self._classes: dict[int, type] = {}

    def close(self) -> None:
        self._connection.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _subscribe_new(self) -> None:
        new = [cid for cid in self.channels if cid not in self._subscribed]
        if new:
            subscriptions = [{'id': cid, 'channelId': cid} for cid in new]  # subscription id = channel id
            self.ws.send(json.dumps({'op': 'subscribe', 'subscriptions': subscriptions}))
            self._subscribed.update(new)

    def receive(self, seconds: float, until=None) -> None:
        """Read for `seconds` (or until `until(self)` is true, or the server closes)."""
        from websockets.exceptions import ConnectionClosed

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until(self)):
            try:
                frame = self.ws.recv(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            now = time.monotonic()
            self.bytes_received += len(frame)
            if isinstance(frame, str):
                message = json.loads(frame)
                if message['op'] == 'serverInfo':
                    self.server_info = message
                elif message['op'] == 'advertise':
                    self.channels.update({c['id']: c for c in message['channels']})
                    self._subscribe_new()
                elif message['op'] == 'unadvertise':
                    for cid in message['channelIds']:
                        self.channels.pop(cid, None)
                        self._subscribed.discard(cid)
                continue
            if frame[0] != MESSAGE_DATA:
                continue
            subscription, log_time = struct.unpack_from('<IQ', frame, 1)
            channel = self.channels.get(subscription)  # subscription id == channel id
            if channel is not None:
                self.first_s = self.first_s or now
                self.last_s = now
                self.messages[channel['topic']].append((log_time, bytes(frame[13:]), now))

    def channel(self, topic: str) -> dict:
        return next(c for c in self.channels.values() if c['topic'] == topic)

    def decode(self, topic: str, payload: bytes):
        """A payload as its channel's schema says: a protobuf message, or the JSON value."""
        channel = self.channel(topic)
        if channel['encoding'] == 'json':
            return json.loads(payload)
        if channel['encoding'] != 'protobuf':
            raise ValueError(f'{topic}: encoding {channel["encoding"]!r} is not one this client reads')
        cls = self._classes.get(channel['id'])
        if cls is None:
            from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
            files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel['schema']))
            pool = descriptor_pool.DescriptorPool()
            for file in files.file:
                pool.Add(file)
            cls = self._classes[channel['id']] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(channel['schemaName']))
        return cls.FromString(payload)

    def decoded(self, topic: str) -> list:
        return [self.decode(topic, payload) for _t, payload, _w in self.messages[topic]]
