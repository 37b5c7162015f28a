"""TensorRT engine builder, without TensorRT: argument checks, calibration batches, engine JSON, clear failure."""
from __future__ import annotations

import json
import pathlib
import sys

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training import engine  # noqa: E402
from training.engine import EngineError, EngineOptions  # noqa: E402


@pytest.fixture
def model(tmp_path):
    onnx = tmp_path / 'signs.onnx'
    onnx.write_bytes(b'not really onnx, the builder is never reached')
    (tmp_path / 'signs.json').write_text(json.dumps({
        'format': 'yolov8', 'names': ['speed_limit_30', 'speed_limit_50', 'stop', 'danger'], 'imgsz': [96, 128],
        'input_name': 'images'}))
    calib = tmp_path / 'calib'
    calib.mkdir()
    for i in range(5):
        cv2.imwrite(str(calib / f'{i}.jpg'), np.full((48, 64, 3), 40 * i, np.uint8))
    return onnx, calib


@pytest.mark.parametrize('kwargs,message', [
    ({'precision': 'int4'}, 'precision'),
    ({'precision': 'int8'}, 'needs calibration images'),
    ({'precision': 'int8', 'calib_images': pathlib.Path('/nonexistent')}, 'not found'),
    ({'precision': 'fp16', 'calib_images': pathlib.Path('.')}, 'only used for int8'),
    ({'workspace_mib': 8}, 'workspace'),
])
def test_bad_arguments_are_refused_before_tensorrt_is_needed(model, kwargs, message):
    with pytest.raises(EngineError, match=message):
        engine.validate(EngineOptions(onnx=model[0], **kwargs))


def test_missing_onnx_and_empty_calibration_folder_are_refused(model, tmp_path):
    with pytest.raises(EngineError, match='ONNX model not found'):
        engine.validate(EngineOptions(onnx=tmp_path / 'nope.onnx'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(EngineError, match='no images'):
        engine.validate(EngineOptions(onnx=model[0], precision='int8', calib_images=empty))


def test_calibration_batches_are_letterboxed_like_the_detector(model):
    from train_fou.vision.preprocess import letterbox
    images = engine.calibration_images(model[1])
    batches = list(engine.calibration_batches(images, (96, 128), batch_size=2, max_batches=10))
    assert len(batches) == 2                     # 5 images: two full batches, the short one dropped
    assert batches[0].shape == (2, 3, 96, 128) and batches[0].dtype == np.float32
    assert batches[0].flags['C_CONTIGUOUS']
    expected, _ = letterbox(cv2.imread(str(images[1])), (96, 128))
    assert np.array_equal(batches[0][1], expected[0])
    assert len(list(engine.calibration_batches(images, (96, 128), batch_size=1, max_batches=3))) == 3


def test_engine_path_defaults_next_to_the_onnx_with_the_precision(model):
    assert engine.engine_path(EngineOptions(onnx=model[0], precision='int8')).name == 'signs.int8.engine'


def test_engine_json_records_tensorrt_gpu_precision_and_the_onnx_hash(model, tmp_path):
    opts = EngineOptions(onnx=model[0], precision='fp16')
    info = engine.engine_info(opts, '10.3.0', 'Orin', '8.7', (96, 128), None)
    path = engine.write_engine_info(tmp_path / 'signs.fp16.engine', info)
    assert path.name == 'signs.fp16.engine.json'
    data = json.loads(path.read_text())
    assert data['tensorrt_version'] == '10.3.0' and data['gpu'] == 'Orin' and data['precision'] == 'fp16'
    assert data['imgsz'] == [96, 128] and len(data['onnx_sha256']) == 64


def test_build_without_tensorrt_fails_with_one_clear_line(model, monkeypatch):
    real_import = engine.importlib.import_module

    def no_tensorrt(name, *args):
        if name == 'tensorrt':
            raise ImportError('No module named tensorrt')
        return real_import(name, *args)
    monkeypatch.setattr(engine.importlib, 'import_module', no_tensorrt)
    with pytest.raises(EngineError) as err:
        engine.build_engine(EngineOptions(onnx=model[0], precision='fp16'))
    assert 'TensorRT is not installed' in str(err.value) and '\n' not in str(err.value)
