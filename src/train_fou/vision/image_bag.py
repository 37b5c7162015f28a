"""Image frames from ROS 2 bags (MCAP and sqlite3) with rosbags, as serialized CDR bytes.

The bag player publishes the bytes unchanged (the recorded header stamps go
out as they are), so nothing is deserialized on the hot path. Every failure
is a BagError whose message names the bag and, for a bag without images, the
topics it does have.
"""
from __future__ import annotations

import pathlib
from typing import NamedTuple
from collections.abc import Iterator

from train_fou.vision.cdr import header_stamp
from train_fou.vision.errors import BagError, BagNotFoundError, ImageDecodeError

#: Message type -> image kind ('raw' publishes on camera/image_raw, 'compressed' on .../compressed).
IMAGE_TYPES = {'sensor_msgs/msg/Image': 'raw', 'sensor_msgs/msg/CompressedImage': 'compressed'}
KINDS = ('auto', 'raw', 'compressed')


class BagFrame(NamedTuple):
    log_time_ns: int  # when the recorder received it: the playback pace
    stamp: tuple[int, int]  # header stamp (sec, nanosec) inside the message
    data: bytes  # CDR, ready for Publisher.publish(bytes)


def _describe(topics) -> str:
    return ', '.join(f'{name} ({info.msgtype})' for name, info in sorted(topics.items())) or 'none'


class ImageBag:
    """One image topic of one bag. Use as a context manager or call close()."""

    def __init__(self, path: str | pathlib.Path, topic: str = '', kind: str = 'auto'):
        from rosbags.rosbag2 import Reader

        self.path = pathlib.Path(path)
        if kind not in KINDS:
            raise ValueError(f'message type {kind!r}: choose one of {", ".join(KINDS)}')
        if not str(path):
            raise BagNotFoundError('no bag given (empty path)')
        if not self.path.exists():
            raise BagNotFoundError(f'{self.path}: bag not found')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as err:  # rosbags raises ReaderError, KeyError, yaml/sqlite/mcap errors...
            raise BagError(f'{self.path}: cannot read bag: {err or type(err).__name__}') from err
        try:
            self.topic, self.kind, self.message_count = self._pick(topic, kind)
        except BaseException:
            self.close()
            raise
        self._connections = [c for c in self._reader.connections if c.topic == self.topic]

    def _pick(self, topic: str, kind: str) -> tuple[str, str, int]:
        topics = self._reader.topics
        images = {name: info for name, info in topics.items()
                  if info.msgtype in IMAGE_TYPES and (kind == 'auto' or IMAGE_TYPES[info.msgtype] == kind)}
        wanted = 'image' if kind == 'auto' else ('Image' if kind == 'raw' else 'CompressedImage')
        if topic:
            if topic not in images:
                raise BagError(f'{self.path}: no {wanted} topic `{topic}`; topics: {_describe(topics)}')
            name = topic
        else:
            if not images:
                raise BagError(f'{self.path}: no {wanted} topic (sensor_msgs/msg/Image or CompressedImage); '
                               f'topics: {_describe(topics)}')
            # Prefer raw images, then the topic with the most messages.
            name = sorted(images, key=lambda n: (IMAGE_TYPES[images[n].msgtype] != 'raw', -images[n].msgcount, n))[0]
        return name, IMAGE_TYPES[images[name].msgtype], images[name].msgcount

    @property
    def start_time_ns(self) -> int:
        return self._reader.start_time

    @property
    def duration_s(self) -> float:
        return self._reader.duration / 1e9

    def frames(self, start_offset_s: float = 0.0) -> Iterator[BagFrame]:
        """Frames in recording order from start + offset; BagError if the file breaks mid-way."""
        start = self._reader.start_time + int(start_offset_s * 1e9) if start_offset_s > 0 else None
        iterator = self._reader.messages(connections=self._connections, start=start)
        while True:
            try:
                _connection, log_time, raw = next(iterator)
                data = bytes(raw)
                stamp = header_stamp(data)
            except StopIteration:
                return
            except ImageDecodeError as err:
                raise BagError(f'{self.path}: {self.topic}: {err}') from err
            except Exception as err:
                raise BagError(f'{self.path}: corrupt data on {self.topic}: {err or type(err).__name__}') from err
            yield BagFrame(log_time, stamp, data)

    def close(self) -> None:
        reader, self._reader = getattr(self, '_reader', None), None
        if reader is not None and reader.is_open:
            reader.close()

    def __enter__(self) -> ImageBag:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
