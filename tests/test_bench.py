"""train_fou.bench: the measuring behind `train-fou bench`, piece by piece (the CLI's runs: test_cli_detect_bench)."""
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from train_fou.bench.compare import measure_ultralytics
from train_fou.bench.detector import DetectorResult, SoakResult
from train_fou.bench.e2e import E2eResult
from train_fou.bench.harness import Collector, SerializedFrames, command_source_ns, percentile, stamp_ns
from train_fou.vision.cdr import parse_image

#: A stand-in for ultralytics: YOLO(...).predict appends its arguments to $FAKE_CALLS, takes no time.
FAKE_ULTRALYTICS = '''
import json, os
__version__ = '0.0-fake'


class YOLO:
    def __init__(self, path, task):
        self.task = task

    def predict(self, frame, **kwargs):
        with open(os.environ['FAKE_CALLS'], 'a') as f:
            f.write(json.dumps(dict(kwargs, shape=list(frame.shape), task=self.task)) + '\\n')
        return []
'''


def test_percentile_is_none_without_values_and_rounded_to_three_decimals():
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([1 / 3], 95) == 0.333


@pytest.mark.parametrize('ns', [0, 1, 999_999_999, 1_000_000_000, 1_796_123_003_829_574_093])
def test_serialized_frames_write_the_stamp_that_the_cdr_reader_reads(ns):
    frames = [np.full((6, 8, 3), value, np.uint8) for value in (10, 200)]
    messages = SerializedFrames(frames)
    for index in (0, 1, 2):
        fields = parse_image(messages.stamped(index, ns))
        assert (fields.sec, fields.nanosec) == divmod(ns, 1_000_000_000)
        assert (fields.height, fields.width, fields.encoding, fields.frame_id) == (6, 8, 'bgr8', 'bench_camera')
        assert fields.data.tobytes() == frames[index % 2].tobytes()  # the pixels are left alone


def test_stamp_ns_reads_the_header_stamp_of_a_serialized_detections_message():
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from train_fou.msg import SignDetectionArray
    msg = SignDetectionArray(header=Header(stamp=Time(sec=1_796_123_003, nanosec=829_574_093), frame_id='cam'))
    assert stamp_ns(serialize_message(msg)) == 1_796_123_003_829_574_093


def test_the_command_reader_finds_the_source_stamp_behind_a_header_of_any_frame_id_length():
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from train_fou.msg import SpeedCommand
    for frame_id in ('', 'a', 'abcd', 'train_fou_controller'):
        msg = SpeedCommand(header=Header(stamp=Time(sec=5, nanosec=6), frame_id=frame_id),
                           source_stamp=Time(sec=1_796_123_003, nanosec=829_574_093), power=-40, brake=True)
        assert command_source_ns(serialize_message(msg)) == 1_796_123_003_829_574_093


def test_the_collector_times_the_first_command_on_each_new_image_only():
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    from train_fou.msg import SpeedCommand
    collector = Collector()
    for source in (10**18, 10**18, 10**18 + 1, 0):
        collector.on_command(serialize_message(SpeedCommand(source_stamp=Time(sec=source // 10**9,
                                                                                 nanosec=source % 10**9))))
    assert set(collector.command_arrivals) == {10**18, 10**18 + 1} and len(collector.command_latencies) == 2
    collector.forget_commands()
    assert not collector.command_arrivals and not collector.command_latencies


def test_an_e2e_sample_is_split_into_detector_controller_and_hub():
    result = E2eResult('x', True, brake_ms=(10.0, 12.0), stages_ms=((8.0, 1.0, 1.0), (9.0, 1.5, 1.5))).fields()
    assert result['e2e_stage_ms_p50'] == {'detector': 8.5, 'controller': 1.25, 'hub': 1.25}
    assert 'e2e_stage_ms_p50' not in E2eResult('x', True, brake_ms=(10.0,)).fields()


def test_the_node_path_and_the_peer_are_reported_beside_the_node_times():
    from train_fou.bench.detector import NODE_PATH, PeerResult
    path = tuple(tuple(float(i + k) for i in range(len(NODE_PATH))) for k in (0, 2))
    result = DetectorResult('events', 'bench process', raw_ms=(10.0, 10.0), node_ms=(12.0, 14.0),
                            stages_ms=((0.5, 10.0, 0.25),) * 2, node_frames_lost=0, soak=None,
                            e2e=E2eResult('skipped'), path_ms=path,
                            peer=PeerResult(None, ms=(20.0, 30.0), stages_ms=((1.0, 15.0, 2.0),) * 2,
                                            ultralytics='8.4', python='/venv-train/bin/python'))
    fields = result.fields()
    assert fields['node_path_ms_p50'] == {name: i + 1.0 for i, name in enumerate(NODE_PATH)}
    assert fields['yolo_ros_style_ms_p50'] == 25.0 and fields['yolo_ros_style_ms_p95'] == 29.5
    assert fields['node_over_yolo_ros_style'] == round(13.0 / 25.0, 4)
    assert fields['yolo_ros_style_stage_ms_p50'] == {'preprocess': 1.0, 'inference': 15.0, 'postprocess': 2.0}
    assert result.reasons() == {'e2e': 'skipped'}
    unmeasured = DetectorResult('events', 'bench process', (1.0,), (2.0,), (), 0, None, E2eResult('skipped'),
                                peer=PeerResult('measured on ONNX models only'))
    assert not any(k.startswith('yolo_ros_style') for k in unmeasured.fields())
    assert unmeasured.reasons() == {'e2e': 'skipped', 'yolo_ros_style': 'measured on ONNX models only'}


def test_a_soak_without_answers_reports_only_what_was_sent():
    result = SoakResult(8.0, 30.0, 240, sent_at_s=(), latency_ms=(), inference_ms=())
    assert result.fields() == {'frames_sent': 240, 'frames_processed': 0}


def test_a_soak_compares_its_first_and_last_quarter_up_to_20_s():
    sent_at = tuple(i * 0.5 for i in range(16))  # 8 s, one answered frame every 0.5 s
    latency = tuple(10.0 if at < 2 else 30.0 if at >= 6 else 20.0 for at in sent_at)
    result = SoakResult(8.0, 30.0, 20, sent_at, latency, inference_ms=(5.0,) * 16, frames_dropped_by_node=3).fields()
    assert result['frames_processed'] == 16 and result['frames_dropped_by_node'] == 3
    assert result['frames_lost_before_node'] == 20 - 16 - 3
    assert result['first_2s_latency_ms_p50'] == 10.0 and result['last_2s_latency_ms_p50'] == 30.0
    assert result['latency_ms_max'] == 30.0 and result['latency_ms_p50_per_10s'] == [20.0]


def test_an_e2e_run_that_was_not_timed_gives_only_its_reason():
    assert E2eResult('skipped').fields() == {}
    timed = E2eResult('3 stop cycles', True, brake_ms=(), cycles_without_brake=3).fields()
    assert timed['e2e_samples'] == 0 and timed['e2e_ms_max'] is None and timed['e2e_cycles_without_brake'] == 3


def test_without_the_node_only_the_bare_times_are_reported():
    result = DetectorResult('events', 'bench process', raw_ms=(1.0, 3.0), node_ms=(), stages_ms=(),
                            node_frames_lost=None, soak=None, e2e=E2eResult('skipped'))
    assert result.fields() == {'executor': 'events', 'node_in': 'bench process', 'raw_input': 'float32',
                               'raw_session_ms_p50': 2.0, 'raw_session_ms_p95': 2.9, 'node_ms_p50': None,
                               'node_ms_p95': None}
    assert result.reasons() == {'e2e': 'skipped'}
    as_bytes = DetectorResult('events', 'bench process', (1.0,), (), (), None, None, E2eResult('skipped'),
                              raw_input='uint8')
    assert as_bytes.fields()['raw_input'] == 'uint8'  # raw then includes the in-graph normalisation


def test_node_times_are_compared_with_the_bare_ones_frame_by_frame():
    result = DetectorResult('single', 'own process', raw_ms=(1.0, 2.0, 9.0), node_ms=(2.0, 3.0, 10.0),
                            stages_ms=((0.5, 1.0, 0.25),) * 3, node_frames_lost=0, soak=None,
                            e2e=E2eResult('skipped')).fields()
    assert result['node_over_raw'] == 1.5 and result['node_overhead_ms_p50'] == 1.0
    assert result['node_stage_ms_p50'] == {'preprocess': 0.5, 'inference': 1.0, 'postprocess': 0.25}


def test_the_ultralytics_worker_times_every_frame_after_the_warmup(tmp_path, monkeypatch):
    (tmp_path / 'ultralytics.py').write_text(FAKE_ULTRALYTICS)
    monkeypatch.setenv('PYTHONPATH', str(tmp_path))
    monkeypatch.setenv('FAKE_CALLS', str(tmp_path / 'calls.jsonl'))
    detector = SimpleNamespace(metadata=SimpleNamespace(imgsz=(96, 128)), conf_threshold=0.25, iou_threshold=0.5)
    frames = [np.zeros((24, 32, 3), np.uint8)] * 5
    result = measure_ultralytics(tmp_path / 'model.onnx', frames, detector, warmup=2, other_python=sys.executable)
    assert result.reason is None and len(result.ms) == 5 and result.version == '0.0-fake'
    calls = [json.loads(line) for line in (tmp_path / 'calls.jsonl').read_text().splitlines()]
    assert len(calls) == 2 + 5
    assert calls[0] == {'imgsz': [96, 128], 'conf': 0.25, 'iou': 0.5, 'device': 'cpu', 'verbose': False,
                        'shape': [24, 32, 3], 'task': 'detect'}
    assert set(result.fields()) == {'ultralytics_ms_p50', 'ultralytics_ms_p95', 'ultralytics_version',
                                    'ultralytics_python'}


def test_the_ultralytics_worker_reports_a_failed_predict_in_its_reason(tmp_path, monkeypatch):
    (tmp_path / 'ultralytics.py').write_text(FAKE_ULTRALYTICS.replace('return []', 'raise ValueError("bad model")'))
    monkeypatch.setenv('PYTHONPATH', str(tmp_path))
    monkeypatch.setenv('FAKE_CALLS', str(tmp_path / 'calls.jsonl'))
    detector = SimpleNamespace(metadata=SimpleNamespace(imgsz=(96, 128)), conf_threshold=0.25, iou_threshold=0.5)
    result = measure_ultralytics(tmp_path / 'model.onnx', [np.zeros((24, 32, 3), np.uint8)], detector, warmup=0,
                                 other_python=sys.executable)
    assert result.fields() == {}
    assert result.reasons() == {'ultralytics': f'{sys.executable}: ultralytics predict failed: ValueError: bad model'}


def test_the_ultralytics_worker_states_its_arguments():
    done = subprocess.run([sys.executable, '-m', 'train_fou.bench.ultralytics_worker', '--help'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and 'model frames height width conf iou warmup' in ' '.join(done.stdout.split())
