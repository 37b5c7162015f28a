"""The live view's server without ROS: channels, viewers, the camera's throttle and drop policy, annotations
after their frame, a taken port. Frames are serialized CompressedImage messages written here (no rclpy)."""
from __future__ import annotations

import struct
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from train_fou.monitoring import live_view
from train_fou.monitoring.errors import MonitoringError
from train_fou.monitoring.live_server import THROTTLE_SLACK, LiveViewServer
from train_fou.vision.cdr import parse_compressed
from train_fou.vision.images import encode_jpeg

from helpers.foxglove_client import CHANNELS, FoxgloveClient, taken_port
from helpers.waiting import LIVENESS_S, wait_until



def _cdr_compressed(jpeg: bytes, sec: int, nanosec: int = 0, frame_id: str = 'camera') -> bytes:
    """A serialized sensor_msgs/CompressedImage (XCDR1, little endian), as an RMW writes it."""
    body = bytearray(struct.pack('<iI', sec, nanosec))

    def u32(value: int) -> None:
        body.extend(b'\x00' * (-len(body) % 4) + struct.pack('<I', value))

    for text in (frame_id, 'jpeg'):
        u32(len(text) + 1)
        body.extend(text.encode() + b'\x00')
    u32(len(jpeg))
    return b'\x00\x01\x00\x00' + bytes(body + jpeg)


def _jpeg(width: int = 640, height: int = 480) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 200, 255), -1)
    return encode_jpeg(image)


def _detections(sec: int, width: int = 640, box=(100.0, 50.0, 40.0, 60.0)):
    sign = NS(class_id=3, label='danger', score=0.71, x_min=box[0], y_min=box[1], width=box[2], height=box[3])
    return NS(header=NS(stamp=NS(sec=sec, nanosec=0), frame_id='camera'), image_width=width,
              image_height=width * 3 // 4, backend='onnxruntime-cpu', preprocess_ms=1.0, inference_ms=20.0,
              postprocess_ms=0.5, frames_dropped=0, detections=[sign])


@pytest.fixture
def view():
    """A compressed-camera live view at 5 fps, closed after the test."""
    server = LiveViewServer('compressed', 5.0, 640, 75)
    yield server
    server.close()


def _watching(view: LiveViewServer) -> FoxgloveClient:
    """A viewer subscribed to every channel (the server has seen each subscription)."""
    viewer = FoxgloveClient(f'ws://127.0.0.1:{view.port}')
    viewer.receive(LIVENESS_S, until=lambda v: len(v.channels) == len(CHANNELS))
    sinks = [view._annotations, *view._json.values()]
    assert wait_until(lambda: view.wants_camera and all(s.has_sinks() for s in sinks), LIVENESS_S)
    assert view.viewers == 1
    return viewer


def test_the_test_frames_are_what_the_camera_sends():
    fields = parse_compressed(_cdr_compressed(b'\xff\xd8abc', 7, 5, 'cam'))
    assert (fields.sec, fields.nanosec, fields.frame_id, fields.format, fields.data.tobytes()) == (
        7, 5, 'cam', 'jpeg', b'\xff\xd8abc')


def test_a_viewer_is_offered_every_channel_and_counted_while_it_subscribes(view):
    view.start('127.0.0.1', 0, 8)
    assert not view.wants_camera and view.viewers == 0 and view.status()[0] == 'no viewer'
    with _watching(view) as viewer:
        assert {c['topic']: (c['encoding'], c['schemaName']) for c in viewer.channels.values()} == CHANNELS
        message, values = view.status()
        assert message == '1 viewer(s), 0 frames sent'
        assert list(values)[:3] == ['port', 'viewers', 'camera_subscribed'] and values['port'] == view.port
        assert set(view.stats) <= set(values)
    assert wait_until(lambda: not view.wants_camera and view.viewers == 0, LIVENESS_S)


def test_json_is_built_only_for_a_subscribed_viewer(view):
    view.start('127.0.0.1', 0, 8)
    command = NS(header=NS(stamp=NS(sec=3, nanosec=9), frame_id=''), source_stamp=NS(sec=2, nanosec=8), power=40,
                 brake=False, state=1, reason='limit 50 %')
    view.send('speed_command', command)
    assert view.stats['json_messages'] == 0
    with _watching(view) as viewer:
        view.send('speed_command', command)
        viewer.receive(LIVENESS_S, until=lambda v: v.messages['/train/speed_command'])
        assert viewer.decoded('/train/speed_command') == [live_view.speed_command_json(command)]
    assert view.stats['json_messages'] == 1


def test_frames_are_throttled_and_dropped_never_queued(view):
    """Offered before the encoder runs: three frames pass the throttle, the mailbox keeps the newest."""
    period = view.period_s
    for sec, now in ((1, 0.0), (2, 0.5 * period), (3, THROTTLE_SLACK * period), (4, 1.5 * period),
                     (5, 2.0 * period)):
        view.offer_frame(_cdr_compressed(_jpeg(), sec), now)
    view.offer_frame(b'not a message', 10.0)  # a bad frame takes no slot: the next one passes
    view.offer_frame(_cdr_compressed(_jpeg(), 6), 10.0)
    assert view.stats['frames_throttled'] == 2
    assert view.stats['bad_frames'] == 1 and view.stats['last_problem'].startswith('camera frame: ')
    view.start('127.0.0.1', 0, 8)
    assert wait_until(lambda: view.stats['images_sent'] == 1, LIVENESS_S)
    view.close()  # joins the encoder: nothing more goes out
    assert view.stats['images_sent'] == 1 and view.stats['frames_dropped'] == 3
    assert view.stats['images_reencoded'] == 0 and view.stats['image_bytes'] == len(_jpeg())


def test_annotations_go_out_once_after_their_frame_in_the_pixels_sent(view):
    view.start('127.0.0.1', 0, 8)
    with _watching(view) as viewer:
        view.camera_on()
        view.offer_frame(_cdr_compressed(_jpeg(1280, 960), 7), 0.0)
        view.detections(_detections(7, width=1280))  # before or after its frame is encoded: either way once
        view.detections(_detections(7, width=1280))  # the same frame answered twice
        view.detections(_detections(8, width=1280))  # a frame the viewer did not get
        viewer.receive(LIVENESS_S, until=lambda v: v.messages['/camera/image/compressed']
                       and v.messages['/signs/annotations'] and len(v.messages['/signs/detections']) == 3)
        view.close()
        [image] = viewer.decoded('/camera/image/compressed')
        [annotations] = viewer.decoded('/signs/annotations')
    assert cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    assert (annotations.timestamp.seconds, annotations.timestamp.nanos) == (image.timestamp.seconds, 0) == (7, 0)
    assert [(p.x, p.y) for p in annotations.points[0].points][0] == (50, 25)  # 1280 -> 640: half
    assert viewer.messages['/camera/image/compressed'][0][2] <= viewer.messages['/signs/annotations'][0][2]
    assert view.stats['annotations_sent'] == 1 and view.stats['images_reencoded'] == 1
    assert view.stats['camera_subscriptions'] == 1 and view.camera_subscribed


def test_a_camera_turned_off_forgets_the_frames_awaiting_annotations(view):
    view.start('127.0.0.1', 0, 8)
    with _watching(view):
        view.camera_on()
        view.offer_frame(_cdr_compressed(_jpeg(), 7), 0.0)
        assert wait_until(lambda: view.stats['images_sent'] == 1, LIVENESS_S)
        view.camera_off()
        view.detections(_detections(7))
    assert view.stats['annotations_sent'] == 0 and not view.camera_subscribed


def test_a_taken_port_is_one_line_naming_it(view):
    with taken_port() as port, pytest.raises(MonitoringError) as caught:
        view.start('127.0.0.1', port, 8)
    assert str(caught.value).startswith(f'foxglove_bridge: cannot serve the live view on 127.0.0.1:{port}: ')
    assert '\n' not in str(caught.value)
    view.close()
    view.close()
