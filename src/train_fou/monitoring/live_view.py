"""What the Foxglove live view sends: channel names, schemas and payloads, built from ROS messages' fields.

Foxglove's panels pick their data by schema name. The camera goes out as
`foxglove.CompressedImage` (JPEG) and the detections over it as
`foxglove.ImageAnnotations` (a box and a `label score` caption per sign, the
image's stamp, in the pixels of the image as sent), both protobuf, as the SDK
encodes them. The pipeline's own messages go out as JSON with the ROS field
names (`/train/speed_command.power` plots as it does in rqt_plot, headers as
`header.stamp.{sec,nsec}` so the panels' "header stamp" time works), plus
`state_name` beside the controller's state number for the State Transitions
panel. Foxglove has no schema of its own for diagnostics; its Diagnostics
panels read topics whose schema is named `diagnostic_msgs/msg/DiagnosticArray`,
whatever the encoding, so `/diagnostics` is that message as JSON under that name.

Every function reads messages by their fields only (no rclpy): a test feeds it
plain objects.
"""
from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

import cv2
import numpy as np

from train_fou.policy.machine import Mode
from train_fou.vision.annotate import PALETTE
from train_fou.vision.cdr import parse_compressed, parse_image
from train_fou.vision.errors import ImageDecodeError
from train_fou.vision.images import decode_jpeg, encode_jpeg, image_from_raw

#: Controller state number -> name (SpeedCommand constants).
STATE_NAMES = {int(m): m.name for m in Mode}


class Channels(NamedTuple):
    """Foxglove topic names of one pipeline (ROS names: a namespace moves them all but /diagnostics)."""

    image: str
    annotations: str
    detections: str
    speed_command: str
    hub_state: str
    diagnostics: str


def channel_topics(namespace: str = '') -> Channels:
    prefix = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return Channels(image=f'{prefix}/camera/image/compressed', annotations=f'{prefix}/signs/annotations',
                    detections=f'{prefix}/signs/detections', speed_command=f'{prefix}/train/speed_command',
                    hub_state=f'{prefix}/hub/state', diagnostics='/diagnostics')


# --- JSON channels -----------------------------------------------------------------------------

_TIME = {'type': 'object', 'properties': {'sec': {'type': 'integer'}, 'nsec': {'type': 'integer'}}}
_HEADER = {'type': 'object', 'properties': {'stamp': _TIME, 'frame_id': {'type': 'string'}}}


def _object(**properties) -> dict[str, Any]:
    return {'type': 'object', 'properties': properties}


#: schema name -> JSON Schema of each JSON channel (Foxglove completes message paths from them).
JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    'train_fou.SpeedCommand': _object(
        header=_HEADER, source_stamp=_TIME, power={'type': 'integer', 'description': 'motor power, -100..100'},
        brake={'type': 'boolean'}, state={'type': 'integer'},
        state_name={'type': 'string', 'enum': list(STATE_NAMES.values())}, reason={'type': 'string'}),
    'train_fou.HubState': _object(
        header=_HEADER, connected={'type': 'boolean'}, name={'type': 'string'}, address={'type': 'string'},
        hub_kind={'type': 'integer'}, battery_percent={'type': 'integer', 'description': '-1: unknown'},
        rssi={'type': 'integer'}, applied_power={'type': 'integer'}, command_latency_ms={'type': 'number'},
        backend={'type': 'string'}, last_error={'type': 'string'}),
    'train_fou.SignDetectionArray': _object(
        header=_HEADER, image_width={'type': 'integer'}, image_height={'type': 'integer'},
        backend={'type': 'string'}, preprocess_ms={'type': 'number'}, inference_ms={'type': 'number'},
        postprocess_ms={'type': 'number'}, frames_dropped={'type': 'integer'}, count={'type': 'integer'},
        detections={'type': 'array', 'items': _object(
            class_id={'type': 'integer'}, label={'type': 'string'}, score={'type': 'number'},
            x_min={'type': 'number'}, y_min={'type': 'number'}, width={'type': 'number'},
            height={'type': 'number'})}),
    'diagnostic_msgs/msg/DiagnosticArray': _object(
        header=_HEADER, status={'type': 'array', 'items': _object(
            level={'type': 'integer', 'description': '0 OK, 1 WARN, 2 ERROR, 3 STALE'}, name={'type': 'string'},
            message={'type': 'string'}, hardware_id={'type': 'string'},
            values={'type': 'array', 'items': _object(key={'type': 'string'}, value={'type': 'string'})})}),
}


def schema_bytes(name: str) -> bytes:
    return json.dumps(JSON_SCHEMAS[name]).encode()


def stamp_json(stamp) -> dict[str, int]:
    return {'sec': int(stamp.sec), 'nsec': int(stamp.nanosec)}


def header_json(header) -> dict[str, Any]:
    return {'stamp': stamp_json(header.stamp), 'frame_id': str(header.frame_id)}


def speed_command_json(msg) -> dict[str, Any]:
    state = int(msg.state)
    return {'header': header_json(msg.header), 'source_stamp': stamp_json(msg.source_stamp),
            'power': int(msg.power), 'brake': bool(msg.brake), 'state': state,
            'state_name': STATE_NAMES.get(state, str(state)), 'reason': str(msg.reason)}


def hub_state_json(msg) -> dict[str, Any]:
    return {'header': header_json(msg.header), 'connected': bool(msg.connected), 'name': str(msg.name),
            'address': str(msg.address), 'hub_kind': int(msg.hub_kind), 'battery_percent': int(msg.battery_percent),
            'rssi': int(msg.rssi), 'applied_power': int(msg.applied_power),
            'command_latency_ms': float(msg.command_latency_ms), 'backend': str(msg.backend),
            'last_error': str(msg.last_error)}


def detections_json(msg) -> dict[str, Any]:
    return {'header': header_json(msg.header), 'image_width': int(msg.image_width),
            'image_height': int(msg.image_height), 'backend': str(msg.backend),
            'preprocess_ms': float(msg.preprocess_ms), 'inference_ms': float(msg.inference_ms),
            'postprocess_ms': float(msg.postprocess_ms), 'frames_dropped': int(msg.frames_dropped),
            'count': len(msg.detections),
            'detections': [{'class_id': int(d.class_id), 'label': str(d.label), 'score': float(d.score),
                            'x_min': float(d.x_min), 'y_min': float(d.y_min), 'width': float(d.width),
                            'height': float(d.height)} for d in msg.detections]}


def diagnostic_level(value) -> int:
    # diagnostic_msgs' `byte level` arrives as bytes of length 1 in rclpy
    return value[0] if isinstance(value, (bytes, bytearray)) else int(value)


def diagnostics_json(msg) -> dict[str, Any]:
    return {'header': header_json(msg.header),
            'status': [{'level': diagnostic_level(s.level), 'name': str(s.name), 'message': str(s.message),
                        'hardware_id': str(s.hardware_id),
                        'values': [{'key': str(kv.key), 'value': str(kv.value)} for kv in s.values]}
                       for s in msg.status]}


# --- the camera ----------------------------------------------------------------------------------

class LiveFrame(NamedTuple):
    """One camera frame as the viewer gets it."""

    sec: int
    nanosec: int
    frame_id: str
    jpeg: bytes
    width: int     #: of the JPEG sent
    height: int
    reencoded: bool  #: False: the camera's own JPEG went out unchanged


def view_scale(width: int, max_width: int) -> float:
    """The factor the live view shrinks an image of `width` pixels by (1.0: sent at its size)."""
    return 1.0 if width <= max_width or width <= 0 else max_width / width


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless ...): they carry the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, without decoding; None when there is none."""
    view = bytes(data[:65536])
    if not view.startswith(b'\xff\xd8'):
        return None
    pos = 2
    while pos + 4 <= len(view):
        if view[pos] != 0xFF:
            return None
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        (length,) = struct.unpack_from('>H', view, pos + 2)
        if marker in _SOF:
            if pos + 9 > len(view):
                return None
            height, width = struct.unpack_from('>HH', view, pos + 5)
            return width, height
        pos += 2 + length
    return None


def _shrunk(image: np.ndarray, max_width: int) -> np.ndarray:
    scale = view_scale(image.shape[1], max_width)
    if scale == 1.0:
        return image
    size = (max_width, max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def live_frame(transport: str, serialized, max_width: int, quality: int) -> LiveFrame:
    """The JPEG the viewer gets for one serialized camera message (`raw`: sensor_msgs/Image,
    `compressed`: sensor_msgs/CompressedImage). A JPEG no wider than `max_width` goes out as the
    camera made it; anything else is decoded, shrunk to `max_width` and encoded at `quality`.
    ImageDecodeError when the message is malformed."""
    if transport == 'compressed':
        fields = parse_compressed(serialized)
        size = jpeg_size(fields.data)
        if size is not None and size[0] <= max_width:
            return LiveFrame(fields.sec, fields.nanosec, fields.frame_id, fields.data.tobytes(), size[0], size[1],
                             False)
        image = decode_jpeg(fields.data)
    elif transport == 'raw':
        fields = parse_image(serialized)
        image = image_from_raw(fields.encoding, fields.height, fields.width, fields.step, fields.data)
    else:
        raise ImageDecodeError(f'unknown camera transport {transport!r}: expected raw or compressed')
    image = _shrunk(image, max_width)
    return LiveFrame(fields.sec, fields.nanosec, fields.frame_id, encode_jpeg(image, quality), image.shape[1],
                     image.shape[0], True)


# --- foxglove messages -------------------------------------------------------------------------------

def _colour(class_id: int, alpha: float = 1.0):
    from foxglove.messages import Color
    b, g, r = PALETTE[int(class_id) % len(PALETTE)]
    return Color(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=alpha)


def compressed_image(frame: LiveFrame):
    """The foxglove.CompressedImage of a live frame."""
    from foxglove.messages import CompressedImage, Timestamp
    return CompressedImage(timestamp=Timestamp(frame.sec, frame.nanosec), frame_id=frame.frame_id,
                           data=frame.jpeg, format='jpeg')


#: Caption height in image pixels.
CAPTION_PX = 12.0


def image_annotations(msg, max_width: int):
    """The foxglove.ImageAnnotations of a SignDetectionArray: per sign a closed box and a `label score`
    caption, in the pixels of the image the live view sends (scaled as `live_frame` scales it), with
    the detections' stamp (the source image's)."""
    from foxglove.messages import (Color, ImageAnnotations, Point2, PointsAnnotation, PointsAnnotationType,
                                   TextAnnotation, Timestamp)
    stamp = msg.header.stamp
    scale = view_scale(int(msg.image_width), max_width)
    boxes, captions = [], []
    white = Color(r=1.0, g=1.0, b=1.0, a=1.0)
    for d in msg.detections:
        x1, y1 = d.x_min * scale, d.y_min * scale
        x2, y2 = (d.x_min + d.width) * scale, (d.y_min + d.height) * scale
        boxes.append(PointsAnnotation(
            timestamp=Timestamp(int(stamp.sec), int(stamp.nanosec)), type=PointsAnnotationType.LineLoop,
            points=[Point2(x=x1, y=y1), Point2(x=x2, y=y1), Point2(x=x2, y=y2), Point2(x=x1, y=y2)],
            outline_color=_colour(d.class_id), thickness=2.0))
        captions.append(TextAnnotation(  # position: the caption's bottom-left, just above the box
            timestamp=Timestamp(int(stamp.sec), int(stamp.nanosec)),
            position=Point2(x=x1, y=max(CAPTION_PX, y1 - 3.0)), text=f'{d.label or d.class_id} {d.score:.2f}',
            font_size=CAPTION_PX, text_color=white, background_color=_colour(d.class_id, 0.8)))
    return ImageAnnotations(timestamp=Timestamp(int(stamp.sec), int(stamp.nanosec)), points=boxes, texts=captions)
