"""Which model file the detector runs when an INT8 model lies beside the FP32 one (issue 15, item 4).

`auto` prefers <stem>.int8.onnx on the CPU (after TensorRT and CUDA); a named backend runs the file
named; a missing, stale or mismatched INT8 file leaves the FP32 model running. Real files: the tiny
models of helpers.models, the INT8 one a copy with its own metadata (the choice, not the numbers,
is under test here; tests/test_training_int8.py quantises for real).
"""
import json
import sys

import numpy as np
import pytest

from train_fou.vision import ModelMetadataError
from train_fou.vision.backends import BackendSpec, open_backend
from train_fou.vision.detector import file_sha256, open_detector, resolve_model_paths
from train_fou.vision.metadata import int8_model_path, load_metadata

from helpers.models import build_yolov8_like, make_model

IMGSZ = (64, 96)


def write_int8(fp32, **changes):
    """<stem>.int8.onnx beside `fp32` (the same tiny graph with other boxes, so outputs tell them
    apart) and its metadata: the FP32 one plus precision and quantization, then `changes`."""
    int8 = int8_model_path(fp32)
    boxes = np.array([[30, 30, 20, 20]], np.float32)
    weights = np.array([[0.0, 0.0, 0.9, 0.0]], np.float32)
    build_yolov8_like(int8, imgsz=IMGSZ, boxes=boxes, weights=weights)
    data = json.loads(fp32.with_suffix('.json').read_text())
    data.update(precision='int8', quantization={'source': fp32.name, 'source_sha256': file_sha256(fp32)})
    data.update(changes)
    int8.with_suffix('.json').write_text(json.dumps(data))
    return int8


@pytest.fixture
def fp32(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)  # no TensorRT here, whatever is installed
    return make_model(tmp_path, imgsz=IMGSZ)


def _open(model, backend):
    detector, choice = open_detector(model, backend=backend, refine=False)
    detector.close()
    return detector, choice


# (case, INT8 file: None / 'ok' / a change to its metadata, model named: fp32 / int8, backend,
#  file expected to run: fp32 / int8, an error note expected)
CASES = [
    ('auto prefers int8 beside fp32', 'ok', 'fp32', 'auto', 'int8', None),
    ('onnxruntime-cpu forces the file named', 'ok', 'fp32', 'onnxruntime-cpu', 'fp32', None),
    ('no int8 file: fp32', None, 'fp32', 'auto', 'fp32', None),
    ('int8 named, auto', 'ok', 'int8', 'auto', 'int8', None),
    ('int8 named, onnxruntime-cpu', 'ok', 'int8', 'onnxruntime-cpu', 'int8', None),
    ('stale int8 (fp32 re-exported)', {'quantization': {'source_sha256': '0' * 64}}, 'fp32', 'auto', 'fp32',
     'was quantised from another signs.onnx'),
    ('int8 of another input size', {'imgsz': [32, 32]}, 'fp32', 'auto', 'fp32', 'imgsz differ'),
    ('int8 metadata says fp32', {'precision': 'fp32'}, 'fp32', 'auto', 'fp32', "`precision` is 'fp32'"),
    ('int8 without the fp32 hash', {'quantization': {}}, 'fp32', 'auto', 'fp32', 'source_sha256'),
    ('int8 without metadata', 'no-json', 'fp32', 'auto', 'fp32', 'metadata file not found'),
]


@pytest.mark.parametrize('int8, named, backend, runs, note', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_which_file_runs(fp32, int8, named, backend, runs, note):
    int8_path = int8_model_path(fp32)
    if int8 is not None:
        write_int8(fp32, **(int8 if isinstance(int8, dict) else {}))
        if int8 == 'no-json':
            int8_path.with_suffix('.json').unlink()
    detector, choice = _open(int8_path if named == 'int8' else fp32, backend)
    expected = int8_path if runs == 'int8' else fp32
    assert choice.model == expected and choice.backend.path == expected
    assert detector.precision == runs and choice.precision == runs
    assert detector.description == f'onnxruntime-cpu {runs}'
    assert choice.backend.name == 'onnxruntime-cpu'   # the message's `backend` field keeps its values
    assert detector.metadata.source == str(expected.with_suffix('.json'))
    assert choice.reason.startswith(('onnxruntime-cpu int8 (' if runs == 'int8' else 'onnxruntime-cpu (')
                                    + ('requested' if backend != 'auto' else 'fastest available'))
    assert str(expected) in choice.reason
    errors = [n for n in choice.notes if n.level == 'error']
    if note is None:
        assert errors == []
    else:
        [error] = errors
        assert error.backend == 'onnxruntime-cpu int8' and note in error.message
        assert 'onnxruntime-cpu int8: could not load its model' in choice.reason


def test_the_int8_model_is_the_one_that_infers(fp32):
    write_int8(fp32)
    white = np.full((48, 64, 3), 255, np.uint8)
    for backend, label in (('auto', 'stop'), ('onnxruntime-cpu', None)):
        detector, _ = open_detector(fp32, backend=backend, refine=False)
        try:
            labels = {d.label for d in detector.detect(white).detections}
        finally:
            detector.close()
        if label is None:
            assert labels == {'stop', 'danger'}   # the FP32 fixture's two signs
        else:
            assert labels == {label}              # the INT8 stand-in's one box


def test_resolve_model_paths_finds_the_int8_model_beside_fp32_only(fp32):
    assert resolve_model_paths(fp32).int8 is None
    int8 = write_int8(fp32)
    assert resolve_model_paths(fp32).int8 == int8
    assert resolve_model_paths(int8).int8 is None and resolve_model_paths(int8).onnx == int8
    assert int8.name == 'signs.int8.onnx'


def test_an_unknown_precision_is_a_metadata_error(fp32):
    path = fp32.with_suffix('.json')
    path.write_text(json.dumps({**json.loads(path.read_text()), 'precision': 'fp8'}))
    with pytest.raises(ModelMetadataError, match=r'`precision` must be one of fp32, int8'):
        load_metadata(path)


def test_the_int8_metadata_names_the_refiner_beside_it(fp32, tmp_path):
    """The INT8 model's metadata names the FP32 refiner as the FP32 metadata does (by file name)."""
    refiner = build_yolov8_like(tmp_path / 'signs_refine.onnx', imgsz=(32, 32))
    spec = {'model': refiner.name, 'names': ['speed_limit_30', 'speed_limit_50', 'stop', 'other'],
            'applies_to': ['speed_limit_30', 'speed_limit_50', 'stop'], 'input_size': 32}
    write_int8(fp32, refiner=spec)
    meta = load_metadata(int8_model_path(fp32).with_suffix('.json'))
    assert meta.refiner.model == refiner and meta.precision == 'int8'


class FakeBackend:
    def __init__(self, name, path):
        self.name, self.path, self.input_hw = name, path, None

    def close(self):
        pass


def _table(available):
    """A backend table whose probes say `available` (names): each load records the file it got."""
    def spec(kind, name, **kw):
        return BackendSpec(kind, lambda: None if name in available else f'{name} not here',
                           lambda path, *a: FakeBackend(name, path), **kw)
    return {'tensorrt': spec('engine', 'tensorrt'), 'onnxruntime-cuda': spec('onnx', 'onnxruntime-cuda'),
            'onnxruntime-cpu': spec('onnx', 'onnxruntime-cpu', prefers_int8=True)}


# (available backends, requested, expected backend, expected file: engine / fp32 / int8)
GPU_CASES = [
    (('tensorrt', 'onnxruntime-cuda', 'onnxruntime-cpu'), 'auto', 'tensorrt', 'engine'),
    (('onnxruntime-cuda', 'onnxruntime-cpu'), 'auto', 'onnxruntime-cuda', 'fp32'),
    (('onnxruntime-cpu',), 'auto', 'onnxruntime-cpu', 'int8'),
    (('tensorrt', 'onnxruntime-cpu'), 'tensorrt', 'tensorrt', 'engine'),
    (('onnxruntime-cpu',), 'tensorrt', 'onnxruntime-cpu', 'fp32'),      # fallback for tensorrt: as before
    (('onnxruntime-cuda', 'onnxruntime-cpu'), 'onnxruntime-cuda', 'onnxruntime-cuda', 'fp32'),
    (('onnxruntime-cpu',), 'onnxruntime-cpu', 'onnxruntime-cpu', 'fp32'),
]


@pytest.mark.parametrize('available, requested, name, runs', GPU_CASES,
                         ids=[f'{c[1]} with {"+".join(c[0])}' for c in GPU_CASES])
def test_tensorrt_and_cuda_paths_are_unaffected_by_an_int8_model(fp32, available, requested, name, runs):
    int8 = write_int8(fp32)
    engine = fp32.with_suffix('.engine')
    engine.write_bytes(b'engine')
    choice = open_backend(requested, fp32, engine, table=_table(available), int8_path=int8)
    assert choice.backend.name == name
    assert choice.model == {'engine': engine, 'fp32': fp32, 'int8': int8}[runs]
    assert choice.precision == {'engine': None, 'fp32': 'fp32', 'int8': 'int8'}[runs]
