"""BGR arrays -> sensor_msgs image messages, and diagnostic statuses (camera, bag player, detector)."""
from __future__ import annotations

import array

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR,
          'stale': DiagnosticStatus.STALE}


def image_msg(image_bgr: np.ndarray, header: Header) -> Image:
    """A bgr8 Image; one copy of the pixels into the message's array."""
    msg = Image(header=header, height=image_bgr.shape[0], width=image_bgr.shape[1], encoding='bgr8',
                is_bigendian=0, step=image_bgr.shape[1] * 3)
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(image_bgr).data)
    msg.data = data  # an array('B') skips the per-element check of the generated setter
    return msg


def compressed_msg(jpeg: bytes, header: Header) -> CompressedImage:
    msg = CompressedImage(header=header, format='jpeg')
    data = array.array('B')
    data.frombytes(jpeg)
    msg.data = data
    return msg


def _text(value) -> str:
    return 'n/a' if value is None else (f'{value:.2f}' if isinstance(value, float) else str(value))


def diagnostics(stamp, name: str, level: str, message: str, values: dict) -> DiagnosticArray:
    """A DiagnosticArray with one status; values are stringified (None -> 'n/a')."""
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id='train_fou')
    status.values = [KeyValue(key=str(k), value=_text(v)) for k, v in values.items()]
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
