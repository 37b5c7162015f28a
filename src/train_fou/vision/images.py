"""Raw image buffers and JPEG bytes <-> BGR uint8 arrays, validated (no ROS types here).

The nodes pass the fields of sensor_msgs/Image (encoding, height, width, step,
data) or CompressedImage (format, data); every malformation becomes an
ImageDecodeError that says what is wrong, so a node can warn and skip the frame.

A truncated JPEG is an error here, although libjpeg decodes it: it fills the
missing rows with grey and only prints a warning, so the detector would look at
half a picture and report "no signs". `check_complete` finds the end-of-image
marker after the first scan (entropy-coded data never holds FF D9, a marker
segment before the scan, such as an EXIF thumbnail, may); PNG ends with IEND.
"""
from __future__ import annotations

from typing import NamedTuple

import pathlib

import cv2
import numpy as np

from train_fou.vision.errors import ImageDecodeError


class Encoding(NamedTuple):
    channels: int
    to_bgr: int | None  # cv2 colour conversion code, None when already BGR


#: sensor_msgs/image_encodings the detector accepts (8-bit only).
ENCODINGS: dict[str, Encoding] = {
    'bgr8': Encoding(3, None),
    'rgb8': Encoding(3, cv2.COLOR_RGB2BGR),
    'bgra8': Encoding(4, cv2.COLOR_BGRA2BGR),
    'rgba8': Encoding(4, cv2.COLOR_RGBA2BGR),
    'mono8': Encoding(1, cv2.COLOR_GRAY2BGR),
}

#: Refuse absurd sizes before allocating anything.
MAX_SIDE = 16384


def image_from_raw(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """A BGR uint8 HxWx3 array from the fields of a raw image.

    bgr8 comes back as a zero-copy view of `data` (read-only when data is bytes);
    other encodings are converted (a new array).
    """
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ImageDecodeError(
            f'unsupported encoding {encoding!r}; supported: {", ".join(ENCODINGS)}')
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ImageDecodeError(f'bad image size {width}x{height}')
    row_bytes = width * spec.channels
    if step < row_bytes:
        raise ImageDecodeError(f'step {step} is smaller than width {width} x {spec.channels} bytes = {row_bytes}')
    buffer = np.frombuffer(data, dtype=np.uint8)
    expected = step * height
    if buffer.size != expected:
        what = 'truncated' if buffer.size < expected else 'oversized'
        raise ImageDecodeError(
            f'{what} data: {buffer.size} bytes for {width}x{height} {encoding} with step {step} '
            f'(expected {expected})')
    rows = buffer.reshape(height, step)
    image = rows[:, :row_bytes].reshape(height, width, spec.channels)
    if spec.to_bgr is None:
        return image
    return cv2.cvtColor(image, spec.to_bgr)


JPEG_SOI = b'\xff\xd8'
JPEG_EOI = b'\xff\xd9'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of the first scan's entropy-coded data (after SOS), None when the bytes end before it,
    -1 when they are no marker sequence at all (the decoder then says what is wrong)."""
    pos = len(JPEG_SOI)
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        pos += 2 + length
        if marker == 0xDA:  # start of scan
            return pos if pos <= len(data) else None
    return None


def check_complete(data) -> None:
    """ImageDecodeError when JPEG or PNG bytes end before the image does; other bytes pass."""
    head = bytes(data[:8])
    if head.startswith(JPEG_SOI):
        data = bytes(data)
        scan = _jpeg_scan_start(data)
        if scan is None or (scan >= 0 and data.find(JPEG_EOI, scan) < 0):
            raise ImageDecodeError(f'truncated JPEG ({len(data)} bytes, no end-of-image marker)')
    elif head == PNG_SIGNATURE and b'IEND' not in bytes(data[-12:]):
        raise ImageDecodeError(f'truncated PNG ({len(data)} bytes, no IEND chunk)')


def decode_jpeg(data) -> np.ndarray:
    """A BGR image from JPEG (or PNG) bytes; ImageDecodeError when they do not decode or are truncated."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError('empty compressed image')
    check_complete(buffer)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(f'undecodable compressed image ({buffer.size} bytes)')
    return image


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """A BGR image from an image file; ImageDecodeError (naming the file) when it cannot be read whole."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageDecodeError(f'{path}: not found') from None
    except OSError as err:
        raise ImageDecodeError(f'{path}: cannot read: {err.strerror or err}') from None
    try:
        return decode_jpeg(data)
    except ImageDecodeError as err:
        raise ImageDecodeError(f'{path}: not a readable image: {err}') from None


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, encoded = cv2.imencode('.jpg', image_bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ImageDecodeError(f'cannot encode a {image_bgr.shape} image as JPEG')
    return encoded.tobytes()
