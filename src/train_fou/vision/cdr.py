"""Zero-copy views into serialized (CDR) sensor_msgs/Image and CompressedImage messages.

The detector subscribes to serialized messages: deserializing an image into a
Python message copies its pixels into an array object (docs/performance.md);
reading the few header fields here and viewing the pixels in place does not.
Layout (XCDR1, as every ROS 2 RMW writes it): a 4-byte encapsulation header,
then the fields, each aligned to its size relative to the end of that header.
Every message with a std_msgs/Header first (Image, CompressedImage) starts with
its stamp: `header_stamp` reads it, `write_header_stamp` patches it in place.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from train_fou.vision.errors import ImageDecodeError

#: Representation identifiers: CDR big endian, CDR little endian.
_ENDIAN = {b'\x00\x00': '>', b'\x00\x01': '<'}
#: header.stamp (int32 sec, uint32 nanosec), the first field: right after the encapsulation header.
_STAMP_OFFSET = 4
_STAMP = {'>': struct.Struct('>iI'), '<': struct.Struct('<iI')}


class CdrReader:
    """Sequential reader over one CDR payload; every overrun is an ImageDecodeError."""

    def __init__(self, data):
        self.view = memoryview(data).cast('B')
        endian = _ENDIAN.get(bytes(self.view[:2]))
        if endian is None or len(self.view) < 4:
            raise ImageDecodeError(f'not a CDR message (starts {bytes(self.view[:4]).hex() or "empty"})')
        self._u32 = struct.Struct(endian + 'I')
        self._i32 = struct.Struct(endian + 'i')
        self.pos = 4

    def _need(self, size: int, what: str) -> None:
        if self.pos + size > len(self.view):
            raise ImageDecodeError(f'truncated message: {what} needs {size} bytes at offset {self.pos}, '
                                   f'message has {len(self.view)}')

    def _align(self, size: int) -> None:
        self.pos += -(self.pos - 4) % size

    def uint32(self, what: str) -> int:
        self._align(4)
        self._need(4, what)
        (value,) = self._u32.unpack_from(self.view, self.pos)
        self.pos += 4
        return value

    def int32(self, what: str) -> int:
        self._align(4)
        self._need(4, what)
        (value,) = self._i32.unpack_from(self.view, self.pos)
        self.pos += 4
        return value

    def uint8(self, what: str) -> int:
        self._need(1, what)
        value = self.view[self.pos]
        self.pos += 1
        return value

    def string(self, what: str) -> str:
        size = self.uint32(what)  # includes the terminating NUL
        self._need(size, what)
        raw = bytes(self.view[self.pos:self.pos + size])
        self.pos += size
        return raw.rstrip(b'\x00').decode('utf-8', errors='replace')

    def octets(self, what: str) -> np.ndarray:
        size = self.uint32(what)
        self._need(size, what)
        array = np.frombuffer(self.view, dtype=np.uint8, count=size, offset=self.pos)
        self.pos += size
        return array


class ImageFields(NamedTuple):
    sec: int
    nanosec: int
    frame_id: str
    height: int
    width: int
    encoding: str
    step: int
    data: np.ndarray  # a view into the serialized message


class CompressedFields(NamedTuple):
    sec: int
    nanosec: int
    frame_id: str
    format: str
    data: np.ndarray


def header_stamp(data) -> tuple[int, int]:
    """(sec, nanosec) of the header that starts a serialized message; ImageDecodeError when there is none."""
    reader = CdrReader(data)
    return reader.int32('header.stamp.sec'), reader.uint32('header.stamp.nanosec')


def write_header_stamp(buffer: bytearray, sec: int, nanosec: int) -> None:
    """Patch the header stamp of a serialized message in place (in its own byte order)."""
    endian = _ENDIAN.get(bytes(buffer[:2]))
    if endian is None or len(buffer) < _STAMP_OFFSET + _STAMP[endian].size:
        raise ImageDecodeError(f'not a CDR message with a header ({len(buffer)} bytes)')
    _STAMP[endian].pack_into(buffer, _STAMP_OFFSET, sec, nanosec)


def _header(reader: CdrReader) -> tuple[int, int, str]:
    return reader.int32('header.stamp.sec'), reader.uint32('header.stamp.nanosec'), reader.string('header.frame_id')


def parse_image(data) -> ImageFields:
    """The fields of a serialized sensor_msgs/Image; pixels stay in `data`."""
    reader = CdrReader(data)
    sec, nanosec, frame_id = _header(reader)
    height, width = reader.uint32('height'), reader.uint32('width')
    encoding = reader.string('encoding')
    reader.uint8('is_bigendian')
    step = reader.uint32('step')
    return ImageFields(sec, nanosec, frame_id, height, width, encoding, step, reader.octets('data'))


def parse_compressed(data) -> CompressedFields:
    """The fields of a serialized sensor_msgs/CompressedImage; bytes stay in `data`."""
    reader = CdrReader(data)
    sec, nanosec, frame_id = _header(reader)
    fmt = reader.string('format')
    return CompressedFields(sec, nanosec, frame_id, fmt, reader.octets('data'))
