"""The live view's payloads and the metrics, without ROS: what Foxglove and Prometheus get from each message."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from train_fou.monitoring import live_view
from train_fou.monitoring.metrics import TrainMetrics, number
from train_fou.paths import share_dir

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _stamp(sec, nanosec):
    return NS(sec=sec, nanosec=nanosec)


def _header(sec=12, nanosec=400_000_000, frame_id='camera'):
    return NS(stamp=_stamp(sec, nanosec), frame_id=frame_id)


def _detections(width=1280, dets=(), **kw):
    fields = dict(header=_header(), image_width=width, image_height=width * 3 // 4, backend='onnxruntime-cpu',
                  preprocess_ms=1.0, inference_ms=20.0, postprocess_ms=0.5, frames_dropped=0, detections=list(dets))
    fields.update(kw)
    return NS(**fields)


def _sign(label='danger', class_id=3, score=0.71, box=(100.0, 50.0, 40.0, 60.0)):
    return NS(class_id=class_id, label=label, score=score, x_min=box[0], y_min=box[1], width=box[2], height=box[3])


def _serialized_compressed(jpeg: bytes, sec=7, nanosec=5, frame_id='camera'):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage
    msg = CompressedImage(format='jpeg', data=jpeg)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return serialize_message(msg)


def _serialized_raw(image: np.ndarray, sec=7, nanosec=5):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    msg = Image(height=image.shape[0], width=image.shape[1], encoding='bgr8', step=image.shape[1] * 3,
                data=image.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, 'camera'
    return serialize_message(msg)


def _picture(width, height):
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 200, 255), -1)
    return image


def test_the_monitoring_package_never_imports_rclpy():
    code = ('import sys, train_fou.monitoring.live_view, train_fou.monitoring.live_server, '
            'train_fou.monitoring.metrics, train_fou.monitoring.layout; '
            'sys.exit(1 if "rclpy" in sys.modules else 0)')
    assert subprocess.run([sys.executable, '-c', code], timeout=120).returncode == 0


def test_channel_names_follow_the_namespace_except_diagnostics():
    assert live_view.channel_topics('') == live_view.Channels(
        '/camera/image/compressed', '/signs/annotations', '/signs/detections', '/train/speed_command', '/hub/state',
        '/diagnostics')
    assert live_view.channel_topics('/train1').speed_command == '/train1/train/speed_command'
    assert live_view.channel_topics('/train1').diagnostics == '/diagnostics'


def test_a_speed_command_is_json_with_its_state_name_and_header_stamp():
    msg = NS(header=_header(3, 9), source_stamp=_stamp(2, 8), power=-40, brake=False, state=1, reason='limit 50 %')
    doc = live_view.speed_command_json(msg)
    assert doc == {'header': {'stamp': {'sec': 3, 'nsec': 9}, 'frame_id': 'camera'},
                   'source_stamp': {'sec': 2, 'nsec': 8}, 'power': -40, 'brake': False, 'state': 1,
                   'state_name': 'LIMIT', 'reason': 'limit 50 %'}
    json.dumps(doc)
    assert set(doc) == set(live_view.JSON_SCHEMAS['train_fou.SpeedCommand']['properties'])


def test_diagnostics_keep_the_ros_fields_with_levels_as_numbers():
    """The Diagnostics panels read diagnostic_msgs/msg/DiagnosticArray's fields; rclpy's `byte` level is bytes."""
    status = NS(level=b'\x01', name='hub_node: LEGO hub', message='not connected', hardware_id='hub',
                values=[NS(key='battery_pct', value='-1')])
    doc = live_view.diagnostics_json(NS(header=_header(), status=[status]))
    assert doc['status'] == [{'level': 1, 'name': 'hub_node: LEGO hub', 'message': 'not connected',
                              'hardware_id': 'hub', 'values': [{'key': 'battery_pct', 'value': '-1'}]}]
    assert 'diagnostic_msgs/msg/DiagnosticArray' in live_view.JSON_SCHEMAS


def test_hub_state_and_detections_are_json_with_every_schema_field():
    hub = NS(header=_header(), connected=True, name='City', address='90:84', hub_kind=0x41, battery_percent=80,
             rssi=-60, applied_power=30, command_latency_ms=21.5, backend='sim', last_error='')
    assert set(live_view.hub_state_json(hub)) == set(live_view.JSON_SCHEMAS['train_fou.HubState']['properties'])
    doc = live_view.detections_json(_detections(dets=[_sign()]))
    assert set(doc) == set(live_view.JSON_SCHEMAS['train_fou.SignDetectionArray']['properties'])
    assert doc['count'] == 1 and doc['detections'][0]['label'] == 'danger'


@pytest.mark.parametrize('width, height', [(640, 480), (97, 31)])
def test_jpeg_size_reads_the_frame_header_without_decoding(width, height):
    from train_fou.vision.images import encode_jpeg
    assert live_view.jpeg_size(encode_jpeg(_picture(width, height))) == (width, height)
    assert live_view.jpeg_size(b'\x89PNG\r\n') is None and live_view.jpeg_size(b'\xff\xd8\xff') is None


def test_a_camera_jpeg_no_wider_than_the_limit_goes_out_unchanged():
    from train_fou.vision.images import encode_jpeg
    jpeg = encode_jpeg(_picture(640, 480), 60)
    frame = live_view.live_frame('compressed', _serialized_compressed(jpeg), 640, 75)
    assert frame == live_view.LiveFrame(7, 5, 'camera', jpeg, 640, 480, False)


def test_a_wide_or_raw_frame_is_shrunk_and_encoded():
    from train_fou.vision.images import decode_jpeg, encode_jpeg
    wide = live_view.live_frame('compressed', _serialized_compressed(encode_jpeg(_picture(1280, 960))), 640, 75)
    assert (wide.width, wide.height, wide.reencoded) == (640, 480, True)
    assert decode_jpeg(wide.jpeg).shape == (480, 640, 3)
    raw = live_view.live_frame('raw', _serialized_raw(_picture(320, 240)), 640, 75)
    assert (raw.sec, raw.nanosec, raw.width, raw.height, raw.reencoded) == (7, 5, 320, 240, True)
    assert np.abs(decode_jpeg(raw.jpeg).astype(int) - _picture(320, 240)).mean() < 3


def test_a_malformed_frame_is_an_image_decode_error():
    from train_fou.vision.errors import ImageDecodeError
    with pytest.raises(ImageDecodeError):
        live_view.live_frame('compressed', b'\x00\x01\x00\x00garbage', 640, 75)
    with pytest.raises(ImageDecodeError):
        live_view.live_frame('compressed', _serialized_compressed(b'\xff\xd8 truncated'), 640, 75)


def test_annotations_are_boxes_and_captions_in_the_pixels_of_the_image_sent():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from foxglove.messages import ImageAnnotations

    msg = _detections(width=1280, dets=[_sign(box=(100.0, 50.0, 40.0, 60.0))])
    encoded = live_view.image_annotations(msg, max_width=640).encode()
    schema = ImageAnnotations.get_schema()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(schema.data).file:
        pool.Add(file)
    decoded = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name)).FromString(encoded)
    assert (decoded.timestamp.seconds, decoded.timestamp.nanos) == (12, 400_000_000)
    [box] = decoded.points
    assert [(p.x, p.y) for p in box.points] == [(50, 25), (70, 25), (70, 55), (50, 55)]  # 1280 -> 640: half
    assert (box.timestamp.seconds, box.timestamp.nanos) == (12, 400_000_000)
    [caption] = decoded.texts
    assert caption.text == 'danger 0.71'


def test_the_committed_foxglove_layout_is_the_generated_one():
    from train_fou.monitoring.layout import layout, layout_text
    assert (share_dir() / 'config' / 'foxglove_layout.json').read_text() == layout_text()
    text = json.dumps(layout())
    for topic in live_view.channel_topics():
        if topic != '/signs/detections':
            assert topic in text, topic


# --- metrics -----------------------------------------------------------------------------------

def _value(metrics: TrainMetrics, name: str, labels: dict | None = None):
    return metrics.registry.get_sample_value(name, labels or {})


@pytest.mark.parametrize('text, expected', [('12.50', 12.5), ('True', 1.0), ('False', 0.0), ('n/a', None),
                                            ('never', None), ('nan', None), ('-1', -1.0)])
def test_diagnostics_values_read_as_numbers_or_nothing(text, expected):
    assert number(text) == expected


def test_frames_counted_and_dropped_frames_follow_the_detectors_count():
    m = TrainMetrics()
    m.detections(['danger', 'stop'], 0, 1.0, 20.0, 1.0, 'onnxruntime-cpu', now_s=100.0)
    m.detections([], 3, 1.0, 30.0, 1.0, 'onnxruntime-cpu')
    m.detections([], 5, 1.0, 30.0, 1.0, 'onnxruntime-cpu')
    m.detections([], 1, 1.0, 30.0, 1.0, 'onnxruntime-cpu')  # the detector restarted: counts from 0 again
    assert _value(m, 'train_fou_detector_frames_total') == 4
    assert _value(m, 'train_fou_detector_frames_dropped_total') == 6
    assert _value(m, 'train_fou_detector_detections_total', {'label': 'danger'}) == 1
    assert _value(m, 'train_fou_detector_processing_seconds_count') == 4
    assert _value(m, 'train_fou_detector_processing_seconds_sum') == pytest.approx(0.022 + 3 * 0.032)
    assert _value(m, 'train_fou_detector_info', {'backend': 'onnxruntime-cpu'}) == 1
    assert _value(m, 'train_fou_last_message_timestamp_seconds', {'topic': 'signs/detections'}) == 100.0


def test_the_controller_state_is_an_enum_a_number_and_counted_transitions():
    m = TrainMetrics()
    for state, power, brake in ((0, 60, False), (1, 50, False), (1, 50, False), (3, 0, True)):
        m.speed_command(state, power, brake)
    assert _value(m, 'train_fou_controller_state', {'train_fou_controller_state': 'DANGER_LATCHED'}) == 1
    assert _value(m, 'train_fou_controller_state', {'train_fou_controller_state': 'LIMIT'}) == 0
    assert _value(m, 'train_fou_controller_state_code') == 3
    assert _value(m, 'train_fou_controller_brake') == 1 and _value(m, 'train_fou_controller_power_percent') == 0
    assert _value(m, 'train_fou_controller_state_changes_total', {'state': 'LIMIT'}) == 1
    assert _value(m, 'train_fou_controller_commands_total') == 4


def test_the_hub_and_the_diagnostics_fill_their_gauges():
    m = TrainMetrics()
    m.hub_state(True, 80, -61, 30, 21.5, 'ble', 'Train A', '90:84:2B:00:11:22')
    m.hub_state(True, 80, -61, 30, 21.5, 'ble', 'Train A', '90:84:2B:00:11:22')  # periodic repeat: not a new write
    assert _value(m, 'train_fou_hub_connected') == 1 and _value(m, 'train_fou_hub_rssi_dbm') == -61
    assert _value(m, 'train_fou_hub_battery_percent') == 80
    assert _value(m, 'train_fou_hub_last_command_latency_seconds') == pytest.approx(0.0215)
    assert _value(m, 'train_fou_hub_command_latency_seconds_count') == 1
    assert _value(m, 'train_fou_hub_info', {'backend': 'ble', 'name': 'Train A', 'address': '90:84:2B:00:11:22'}) == 1
    m.diagnostic_status('detector_node: sign detector', 0, {'fps': '9.80', 'latency_p50_ms': '25.00',
                                                            'latency_p95_ms': 'n/a', 'model': 'signs.onnx'})
    m.diagnostic_status('speed_controller: speed policy', 1, {'limit_pct': '50'})
    m.diagnostic_status('hub_node: LEGO hub', 2, {'ready': 'False'})
    assert _value(m, 'train_fou_detector_fps') == pytest.approx(9.8)
    assert _value(m, 'train_fou_detector_latency_seconds', {'quantile': '0.5'}) == pytest.approx(0.025)
    assert _value(m, 'train_fou_detector_latency_seconds', {'quantile': '0.95'}) is None  # n/a: not set
    assert _value(m, 'train_fou_controller_limit_percent') == 50 and _value(m, 'train_fou_hub_ready') == 0
    assert _value(m, 'train_fou_diagnostic_level', {'name': 'hub_node: LEGO hub'}) == 2


def test_the_grafana_dashboard_uses_only_metrics_the_exporter_has():
    import re

    m = TrainMetrics()
    m.detections(['danger'], 1, 1.0, 20.0, 1.0, 'onnxruntime-cpu', now_s=1.0)
    m.speed_command(3, 0, True)
    m.hub_state(True, 80, -60, 127, 20.0, 'sim', 'hub', '')
    m.diagnostic_status('detector_node: sign detector', 0, {'fps': '10', 'latency_p50_ms': '20',
                                                            'latency_p95_ms': '30', 'model': 'm'})
    m.diagnostic_status('speed_controller: speed policy', 0, {'limit_pct': '50'})
    exposed = {s.name for family in m.registry.collect() for s in family.samples}
    dashboard = json.loads((ROOT / 'docs' / 'grafana_dashboard.json').read_text())
    used = {name for panel in dashboard['panels'] for t in panel['targets']
            for name in re.findall(r'\btrain_fou_[a-z_]+', t['expr'])}
    used |= set(re.findall(r'\btrain_fou_[a-z_]+', json.dumps(dashboard['templating'])))
    assert used and used <= exposed, sorted(used - exposed)
