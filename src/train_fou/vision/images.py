"""Raw image buffers and JPEG bytes <-> BGR uint8 arrays, validated (no ROS types here).

The nodes pass the fields of sensor_msgs/Image (encoding, height, width, step,
data) or CompressedImage (format, data); every malformation becomes an
ImageDecodeError that says what is wrong, so a node can warn and skip the frame.
"""
from __future__ import annotations

from typing import NamedTuple

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


def decode_jpeg(data) -> np.ndarray:
    """A BGR image from JPEG (or PNG) bytes; ImageDecodeError when they do not decode."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError('empty compressed image')
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(f'undecodable compressed image ({buffer.size} bytes)')
    return image


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, encoded = cv2.imencode('.jpg', image_bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ImageDecodeError(f'cannot encode a {image_bgr.shape} image as JPEG')
    return encoded.tobytes()
