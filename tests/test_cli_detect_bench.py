"""`train-fou detect` and `train-fou bench` (SPEC §7) on tiny models."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from train_fou.cli import main

from helpers.bench import bench_json
from helpers.models import make_model

TRAIN_FOU = [sys.executable, '-c', 'import sys; from train_fou.cli import main; sys.exit(main())']


@pytest.fixture
def model(tmp_path):
    (tmp_path / 'models').mkdir()
    return make_model(tmp_path / 'models', imgsz=(96, 128))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_white.png'), np.full((240, 320, 3), 255, np.uint8))
    cv2.imwrite(str(folder / 'b_black.jpg'), np.zeros((240, 320, 3), np.uint8))
    return folder


def test_detect_prints_one_json_line_per_image(model, images, capsys):
    code = main(['detect', str(images / 'a_white.png'), str(images / 'b_black.jpg'), '--model', str(model), '--json'])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line['image'] for line in lines] == [str(images / 'a_white.png'), str(images / 'b_black.jpg')]
    white, black = lines
    assert [d['label'] for d in white['detections']] == ['stop', 'danger']
    x1, y1, x2, y2 = white['detections'][0]['box']
    assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
    assert set(white['detections'][0]) == {'label', 'score', 'box'}
    assert black['detections'] == [] and black['inference_ms'] >= 0


def test_detect_expands_folders_and_reports_unreadable_files_without_stopping(model, images, capsys):
    (images / 'c_broken.png').write_bytes(b'not a png')
    code = main(['detect', str(images), '--model', str(model)])
    out, err = capsys.readouterr()
    assert code == 1
    assert 'a_white.png: stop' in out and 'b_black.jpg: no signs' in out
    assert 'c_broken.png: not a readable image' in err


def test_detect_reports_a_truncated_jpeg_as_an_error_not_as_an_image_without_signs(model, images, capfd):
    ok, jpeg = cv2.imencode('.jpg', np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    truncated = images / 'c_truncated.jpg'
    truncated.write_bytes(jpeg.tobytes()[:-2000])
    assert main(['detect', str(truncated), str(images / 'b_black.jpg'), '--model', str(model)]) == 1
    out, err = capfd.readouterr()
    assert 'c_truncated.jpg' not in out and 'b_black.jpg: no signs' in out
    assert f'train-fou detect: {truncated}: not a readable image: truncated JPEG' in err
    assert 'Premature end of JPEG file' not in err  # libjpeg never saw it


def test_detect_says_when_a_folder_holds_no_images(model, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    assert main(['detect', str(empty), '--model', str(model)]) == 1
    out, err = capsys.readouterr()
    assert out == ''
    assert err.splitlines() == [f'train-fou detect: {empty}: no images (looked for .bmp, .jpeg, .jpg, .png, .tif, '
                                '.tiff, .webp)']


@pytest.mark.parametrize('conf', ['5', '-1', 'nan'])
def test_detect_refuses_a_score_threshold_outside_0_to_1(model, images, conf, capsys):
    assert main(['detect', str(images), '--model', str(model), '--conf', conf]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f'train-fou detect: error: --conf {float(conf):g}: expected a score from 0 to 1']


def test_detect_with_a_missing_model_is_one_line_naming_the_path(tmp_path, images):
    missing = tmp_path / 'models' / 'signs.onnx'
    done = subprocess.run(TRAIN_FOU + ['detect', str(images), '--model', str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f'train-fou detect: error: {missing}: model file not found'


def test_detect_with_broken_metadata_is_one_line(model, images):
    model.with_suffix('.json').write_text('{"names": []}')
    done = subprocess.run(TRAIN_FOU + ['detect', str(images), '--model', str(model)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f'train-fou detect: error: {model.with_suffix(".json")}: `names` must be a non-empty list of label strings, '
        'got []']


def test_bench_reports_raw_and_node_times_and_says_why_others_are_null(model, capsys, monkeypatch):
    monkeypatch.delenv('TRAIN_FOU_ULTRALYTICS_PYTHON', raising=False)
    monkeypatch.setattr(sys, 'path', [p for p in sys.path if 'venv-train' not in p])
    result = bench_json(capsys, '--model', str(model), '--frames', '8', '--warmup', '2', '--size', '320x240',
                         '--skip', 'e2e')
    assert result['backend'] == 'onnxruntime-cpu' and result['imgsz'] == [96, 128]
    assert result['raw_session_ms_p50'] > 0 and result['node_ms_p50'] > 0
    assert result['node_frames_lost'] == 0
    # the echo node answered each node frame, and its round trip is taken out of the overhead
    assert result['echo_node_frames_lost'] == 0 and 0 < result['echo_node_ms_p50'] <= result['echo_node_ms_p95']
    assert 'node_overhead_above_echo_ms_p50' in result
    assert result['e2e_ms_p50'] is None and result['reasons']['e2e'] == 'skipped'
    import importlib.util
    if importlib.util.find_spec('ultralytics') is None:
        assert result['ultralytics_ms_p50'] is None
        assert 'ultralytics is not importable here' in result['reasons']['ultralytics']


def test_bench_can_run_the_node_in_its_own_process_as_ros2_launch_does(model, capsys):
    result = bench_json(capsys, '--model', str(model), '--frames', '8', '--warmup', '2', '--size', '320x240',
                         '--skip', 'e2e,ultralytics', '--node-process', '--executor', 'single')
    assert result['node_in'] == 'own process' and result['executor'] == 'single'
    assert result['node_ms_p50'] > 0 and result['node_frames_lost'] == 0
    assert result['node_stage_ms_p50']['inference'] > 0  # the child's own figures came back in its messages


def test_bench_times_a_baseline_model_call_by_call_beside_its_own(model, capsys):
    result = bench_json(capsys, '--model', str(model), '--baseline', str(model), '--frames', '6', '--warmup', '1',
                         '--size', '320x240', '--skip', 'node,e2e,ultralytics')
    assert result['baseline'] == str(model) and result['baseline_imgsz'] == [96, 128]
    assert result['baseline_raw_ms_p50'] > 0 and result['baseline_paired_raw_ms_p50'] > 0
    assert result['raw_over_baseline'] == round(result['baseline_paired_raw_ms_p50'] / result['baseline_raw_ms_p50'], 3)
    assert 'echo_node_ms_p50' not in result  # the echo runs beside the node only


def test_bench_rejects_a_bad_size(model):
    done = subprocess.run(TRAIN_FOU + ['bench', '--model', str(model), '--size', 'big'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--size 'big': expected WIDTHxHEIGHT" in done.stderr


def _stop_only_model(tmp_path):
    """One `stop` box whose score follows the image's brightness: white frames show a stop sign."""
    folder = tmp_path / 'stop_model'
    folder.mkdir()
    boxes = np.array([[64, 48, 40, 60]], dtype=np.float32)
    weights = np.zeros((1, 4), dtype=np.float32)
    weights[0, 2] = 0.9
    return make_model(folder, imgsz=(96, 128), boxes=boxes, weights=weights)


def test_bench_times_the_brake_of_each_confirmed_stop_sign_through_the_whole_pipeline(tmp_path, capsys, monkeypatch):
    from train_fou.bench import e2e
    monkeypatch.setattr(e2e, 'render_clear_frames', lambda w, h, rng: [np.zeros((h, w, 3), np.uint8)])
    monkeypatch.setattr(e2e, 'render_stop_frames', lambda w, h, rng: [np.full((h, w, 3), 255, np.uint8)])
    model = _stop_only_model(tmp_path)
    result = bench_json(capsys, '--model', str(model), '--frames', '4', '--warmup', '1', '--size', '320x240',
                         '--e2e-samples', '3', '--skip', 'ultralytics')
    assert result['e2e_samples'] == 3 and result['e2e_cycles_without_brake'] == 0
    assert 0 < result['e2e_ms_p50'] <= result['e2e_ms_p99'] <= result['e2e_ms_max']
    assert result['e2e_hub_reported_ms_p50'] > 0  # the hub's own figure for the same brake writes
    assert result['e2e_frames_unanswered'] == 0
    assert '3 stop cycles: 3 clear frames then 2 frames with a stop sign' in result['reasons']['e2e']
    stages = result['e2e_stage_ms_p50']  # detector -> controller -> hub, split at the bench's own arrivals
    assert list(stages) == ['detector', 'controller', 'hub'] and stages['detector'] > 0


def test_bench_says_why_e2e_is_null_when_no_frame_confirms_a_stop_sign_alone(model, capsys, monkeypatch):
    from train_fou.bench import e2e
    # the default tiny model sees stop *and* danger in bright frames: no frame is a clean stop scene
    monkeypatch.setattr(e2e, 'render_clear_frames', lambda w, h, rng: [np.zeros((h, w, 3), np.uint8)])
    monkeypatch.setattr(e2e, 'render_stop_frames', lambda w, h, rng: [np.full((h, w, 3), 255, np.uint8)])
    result = bench_json(capsys, '--model', str(model), '--frames', '3', '--warmup', '1', '--size', '320x240',
                         '--skip', 'ultralytics')
    assert result['e2e_ms_p50'] is None
    assert result['reasons']['e2e'].startswith('no rendered stop frame that this model and the policy see as such')


@pytest.mark.parametrize('option', [['--e2e-samples', '0'], ['--e2e-rate', '0']])
def test_bench_rejects_an_empty_or_unpaced_e2e_run(model, option):
    done = subprocess.run(TRAIN_FOU + ['bench', '--model', str(model), *option],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and '--e2e-samples must be >= 1' in done.stderr


def test_bench_runs_the_node_and_the_peers_on_the_file_the_bare_session_runs(tmp_path, capsys, monkeypatch):
    """`auto` picks <stem>.int8.onnx on the CPU; the node is given the backend by name, so it must be
    given that file too (a named backend runs the file named), and so must the peers."""
    from train_fou.bench import compare, detector as bench_detector
    from train_fou.bench.detector import DetectorResult
    from train_fou.bench.e2e import E2eResult
    from train_fou.vision.detector import file_sha256
    from train_fou.vision.metadata import int8_model_path
    (tmp_path / 'models').mkdir()
    fp32 = make_model(tmp_path / 'models', imgsz=(96, 128))
    int8 = int8_model_path(fp32)
    make_model(tmp_path / 'models', name=int8.stem, imgsz=(96, 128))
    meta = json.loads(fp32.with_suffix('.json').read_text())
    meta.update(precision='int8', quantization={'source': fp32.name, 'source_sha256': file_sha256(fp32)})
    int8.with_suffix('.json').write_text(json.dumps(meta))
    monkeypatch.setitem(sys.modules, 'tensorrt', None)
    given = {}

    def measured(detector, model_path, frames, options):
        given['node'] = model_path
        return DetectorResult('events', 'bench process', (1.0,), (2.0,), (), 0, None, E2eResult('skipped'))

    def ultralytics(model_path, *args):
        given['ultralytics'] = model_path
        return compare.UltralyticsResult('not here')
    monkeypatch.setattr(bench_detector, 'measure_detector', measured)
    monkeypatch.setattr(compare, 'measure_ultralytics', ultralytics)
    result = bench_json(capsys, '--model', str(fp32), '--frames', '2', '--warmup', '0', '--size', '320x240')
    assert given == {'node': int8, 'ultralytics': int8}
    assert result['model'] == str(fp32) and result['model_run'] == str(int8) and result['precision'] == 'int8'
