"""The bench's yolo_ros-style peer (train_fou.bench.yolo_ros_style): its environment, its image view, and the
real peer in the training venv's interpreter, answering over DDS like detector_node (skipped where there is none)."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.bench import bench_json
from helpers.models import make_model
from train_fou.bench.yolo_ros_style import RUNTIME_SITE_ENV, peer_environment, runtime_site, to_bgr

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ultralytics_python() -> tuple[str | None, str]:
    """(interpreter with ultralytics, '') or (None, why there is none)."""
    python = os.environ.get('TRAIN_FOU_ULTRALYTICS_PYTHON') or str(ROOT / '.venv-train' / 'bin' / 'python')
    if not pathlib.Path(python).is_file():
        return None, f'no {python} (the training venv: make train-setup)'
    done = subprocess.run([python, '-c', 'import importlib.util, sys; '
                           'print(importlib.util.find_spec("ultralytics") is not None, sys.version_info[:2])'],
                          capture_output=True, text=True, timeout=60)
    if not done.stdout.startswith('True'):
        return None, f'{python} has no ultralytics'
    if done.stdout.split(' ', 1)[1].strip() != str(sys.version_info[:2]):
        return None, f'{python} is not Python {sys.version_info[0]}.{sys.version_info[1]}'
    return python, ''


def test_the_peer_environment_puts_the_install_space_libraries_first_and_names_its_packages(tmp_path):
    site = tmp_path / 'lib' / 'python3.11' / 'site-packages'
    for name in ('ros_rclpy.libs', 'ros_fastdds.libs', 'numpy.libs'):
        (site / name).mkdir(parents=True)
    env = peer_environment({'LD_LIBRARY_PATH': '/opt/cuda/lib64', 'HOME': '/home/x'}, site, tmp_path)
    assert env['LD_LIBRARY_PATH'].split(os.pathsep) == [
        str(tmp_path / 'lib'), str(site / 'ros_fastdds.libs'), str(site / 'ros_rclpy.libs'), '/opt/cuda/lib64']
    assert env['AMENT_PREFIX_PATH'] == str(tmp_path) and env[RUNTIME_SITE_ENV] == str(site)
    assert env['HOME'] == '/home/x'
    again = peer_environment(env, site, tmp_path)  # idempotent: nothing doubled
    assert again['LD_LIBRARY_PATH'] == env['LD_LIBRARY_PATH'] and again['AMENT_PREFIX_PATH'] == str(tmp_path)


def test_the_runtime_site_is_where_the_generated_messages_are():
    site = runtime_site()
    assert (site / 'train_fou' / 'msg' / '__init__.py').is_file() and (site / 'rclpy').is_dir()


def test_the_image_is_viewed_in_the_message_bytes_as_cv_bridge_does_row_padding_included():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = SimpleNamespace(encoding='bgr8', height=4, width=6, step=18, data=pixels.tobytes())
    view = to_bgr(msg)
    assert np.array_equal(view, pixels) and np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :18] = pixels.reshape(4, 18)
    msg = SimpleNamespace(encoding='bgr8', height=4, width=6, step=20, data=padded.tobytes())
    assert np.array_equal(to_bgr(msg), pixels)
    with pytest.raises(ValueError, match="expected a bgr8 image, got 'rgb8'"):
        to_bgr(SimpleNamespace(encoding='rgb8', height=4, width=6, step=18, data=pixels.tobytes()))


def test_the_peer_states_its_arguments():
    done = subprocess.run([sys.executable, '-m', 'train_fou.bench.yolo_ros_style', '--help'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '--imgsz HEIGHT WIDTH' in done.stdout and '--namespace' in done.stdout


@pytest.fixture
def tiny_model(tmp_path):
    (tmp_path / 'models').mkdir()
    return make_model(tmp_path / 'models', imgsz=(96, 128))


def test_the_peer_answers_a_frame_with_the_same_detections_as_the_node_over_dds(tiny_model):
    python, why = _ultralytics_python()
    if python is None:
        pytest.skip(why)
    from train_fou.bench.detector import BenchOptions, _start_peer
    from train_fou.bench.graph import BenchGraph
    from train_fou.bench.harness import SerializedFrames
    from train_fou.vision.detector import open_detector
    detector, _ = open_detector(tiny_model)
    white = np.full((240, 320, 3), 255, np.uint8)
    expected = [(d.label, round(d.x1), round(d.y1), round(d.x2), round(d.y2))
                for d in detector.detect(white).detections]
    try:
        with BenchGraph('events') as graph:
            graph.start(None, False)
            messages = SerializedFrames([white])
            reason = _start_peer(graph, detector, tiny_model, BenchOptions(peer_python=python), 'events', messages,
                                 str(graph._scratch.name))
            assert reason is None
            assert graph.peer_info['python'] == python and graph.peer_info['ultralytics']
            key = time.time_ns()
            graph.publish_peer(messages.stamped(0, key))
            answer = graph.collector.wait_for(key, 60.0)
    finally:
        detector.close()
    assert answer is not None, 'the peer did not answer'
    msg = answer[1]
    assert (msg.image_width, msg.image_height, msg.header.frame_id) == (320, 240, 'bench_camera')
    assert msg.backend.startswith('ultralytics ') and msg.inference_ms > 0
    got = [(d.label, round(d.x_min), round(d.y_min), round(d.x_min + d.width), round(d.y_min + d.height))
           for d in msg.detections]
    assert got == expected == [('stop', 30, 45, 130, 195), ('danger', 178, 58, 302, 182)]


def test_the_bench_times_the_peer_frame_by_frame_beside_the_node(tiny_model, capsys):
    python, why = _ultralytics_python()
    if python is None:
        pytest.skip(why)
    result = bench_json(capsys, '--model', str(tiny_model), '--frames', '5', '--warmup', '1', '--size', '320x240',
                         '--skip', 'e2e,ultralytics', '--ultralytics-python', python)
    assert 'yolo_ros_style' not in result['reasons']
    assert result['yolo_ros_style_ms_p50'] > 0 and result['yolo_ros_style_frames_lost'] == 0
    assert result['yolo_ros_style_python'] == python
    assert result['node_over_yolo_ros_style'] == round(result['node_ms_p50'] / result['yolo_ros_style_ms_p50'], 4)
    assert set(result['yolo_ros_style_stage_ms_p50']) == {'preprocess', 'inference', 'postprocess'}
    path = result['node_path_ms_p50']
    assert list(path) == ['dds_in', 'decode', 'hand_off', 'letterbox', 'inference', 'postprocess', 'publish',
                          'dds_out'] and all(v >= 0 for v in path.values())


def test_the_bench_says_why_there_is_no_peer_without_an_interpreter_that_has_ultralytics(tiny_model, capsys,
                                                                                           monkeypatch):
    from train_fou.bench import detector as bench_detector
    monkeypatch.setattr(bench_detector, 'peer_python', lambda other: '')
    result = bench_json(capsys, '--model', str(tiny_model), '--frames', '3', '--warmup', '1', '--size', '320x240',
                         '--skip', 'e2e,ultralytics')
    assert result['yolo_ros_style_ms_p50'] is None
    assert result['reasons']['yolo_ros_style'].startswith('needs an interpreter with ultralytics')
