"""BGR arrays -> sensor_msgs image messages (camera, track_sim, detector's annotated image)."""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


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
