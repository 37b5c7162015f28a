"""Backend selection and fallback, the ONNX Runtime backend, and the TensorRT backend's logic
against fake `tensorrt` / `pycuda` modules (no GPU here: the fakes stand in for the driver)."""
import sys
import types

import numpy as np
import pytest

from train_fou.vision import EngineLoadError, ModelMetadataError, ModelNotFoundError
from train_fou.vision.backends import BackendUnavailableError, open_backend
from train_fou.vision.backends.onnxruntime_backend import OnnxRuntimeBackend
from train_fou.vision.detector import open_detector, resolve_model_paths

from vision_fixtures import make_model


@pytest.fixture
def model(tmp_path):
    return make_model(tmp_path, imgsz=(64, 96))


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)  # import tensorrt -> ImportError


class FakeDeviceMemory:
    registry = {}

    def __init__(self, nbytes):
        self.buffer = np.zeros(nbytes, np.uint8)
        self.freed = False
        FakeDeviceMemory.registry[id(self)] = self

    def __int__(self):
        return id(self)

    def free(self):
        self.freed = True


def fake_pycuda(log):
    driver = types.ModuleType('pycuda.driver')

    class Context:
        def pop(self):
            log.append('pop')

        def detach(self):
            log.append('detach')

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def make_context(self):
            log.append('make_context')
            return Context()

    class Stream:
        handle = 1234

        def synchronize(self):
            log.append('sync')

    def htod(dev, host, stream):
        dev.buffer[:] = host.view(np.uint8).ravel()

    def dtoh(host, dev, stream):
        host.view(np.uint8)[:] = dev.buffer

    driver.init = lambda: None
    driver.Device, driver.Stream = Device, Stream
    driver.pagelocked_empty = lambda n, dtype: np.empty(n, dtype)
    driver.mem_alloc = FakeDeviceMemory
    driver.memcpy_htod_async, driver.memcpy_dtoh_async = htod, dtoh
    package = types.ModuleType('pycuda')
    package.driver = driver
    return package, driver


def fake_tensorrt(deserializes=True, v3=True, input_shape=(1, 3, 64, 96), output_shape=(1, 8, 3)):
    trt = types.ModuleType('tensorrt')
    trt.__version__ = '10.3.0' if v3 else '8.4.1'
    shapes = {'images': input_shape, 'output0': output_shape}
    names = ['images', 'output0']

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class TensorIOMode:
        INPUT, OUTPUT = 'in', 'out'

    class Context:
        def __init__(self):
            self.addresses = {}

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def get_tensor_shape(self, name):
            return shapes[name]

        def get_binding_shape(self, index):
            return shapes[names[index]]

        def _run(self, addresses):
            image = FakeDeviceMemory.registry[addresses['images']].buffer.view(np.float32)
            out = np.zeros(output_shape, np.float32)
            out[0, :4, 0] = [48, 32, 20, 20]
            out[0, 4 + 2, 0] = float(image.mean()) * 2  # class 2 scores the image brightness
            FakeDeviceMemory.registry[addresses['output0']].buffer[:] = out.view(np.uint8).ravel()

        def execute_async_v3(self, stream_handle):
            self._run(self.addresses)
            return True

        def execute_async_v2(self, bindings, stream_handle):
            self._run(dict(zip(names, bindings)))
            return True

    class Engine:
        def create_execution_context(self):
            context = Context()
            if not v3:
                del context.__class__.execute_async_v3
            return context

    if v3:
        Engine.num_io_tensors = 2
        Engine.get_tensor_name = lambda self, i: names[i]
        Engine.get_tensor_mode = lambda self, n: TensorIOMode.INPUT if n == 'images' else TensorIOMode.OUTPUT
        Engine.get_tensor_shape = lambda self, n: shapes[n]
        Engine.get_tensor_dtype = lambda self, n: 'float32'
    else:
        Engine.num_bindings = 2
        Engine.get_binding_name = lambda self, i: names[i]
        Engine.get_binding_index = lambda self, n: names.index(n)
        Engine.binding_is_input = lambda self, i: i == 0
        Engine.get_binding_shape = lambda self, i: shapes[names[i]]
        Engine.get_binding_dtype = lambda self, i: 'float32'

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if deserializes else None  # TensorRT returns None and logs on mismatch

    trt.Logger, trt.Runtime, trt.TensorIOMode = Logger, Runtime, TensorIOMode
    trt.nptype = lambda dtype: np.float32
    return trt


def install_fake_gpu(monkeypatch, **kwargs):
    log = []
    package, driver = fake_pycuda(log)
    monkeypatch.setitem(sys.modules, 'pycuda', package)
    monkeypatch.setitem(sys.modules, 'pycuda.driver', driver)
    monkeypatch.setitem(sys.modules, 'tensorrt', fake_tensorrt(**kwargs))
    return log


def test_auto_picks_onnxruntime_cpu_here_and_says_why(model, no_tensorrt):
    engine = model.with_suffix('.engine')
    engine.write_bytes(b'not an engine')
    choice = open_backend('auto', model, engine, input_hw=(64, 96))
    assert choice.backend.name == 'onnxruntime-cpu'
    assert choice.reason.startswith('onnxruntime-cpu (fastest available')
    assert 'tensorrt: tensorrt is not importable' in choice.reason
    assert 'onnxruntime-cuda: onnxruntime' in choice.reason


def test_an_engine_that_does_not_deserialize_falls_back_to_the_onnx_model(model, monkeypatch):
    install_fake_gpu(monkeypatch, deserializes=False)
    engine = model.with_suffix('.engine')
    engine.write_bytes(b'built for another GPU')
    choice = open_backend('tensorrt', model, engine, input_hw=(64, 96))
    assert choice.backend.name == 'onnxruntime-cpu'
    [error] = [n for n in choice.notes if n.level == 'error']
    assert error.backend == 'tensorrt'
    assert f'{engine}: TensorRT 10.3.0 cannot deserialize this engine' in error.message
    assert 'fallback for tensorrt' in choice.reason


def test_an_engine_that_does_not_deserialize_without_onnx_model_is_a_clear_error(tmp_path, monkeypatch):
    install_fake_gpu(monkeypatch, deserializes=False)
    engine = tmp_path / 'signs.engine'
    engine.write_bytes(b'x')
    with pytest.raises(BackendUnavailableError, match='cannot deserialize this engine.*onnxruntime-cpu: no onnx file'):
        open_backend('tensorrt', None, engine)


@pytest.mark.parametrize('v3', [True, False], ids=['io-tensors-api', 'bindings-api'])
def test_tensorrt_backend_runs_an_engine_through_the_fake_driver(model, monkeypatch, v3):
    log = install_fake_gpu(monkeypatch, v3=v3)
    engine = model.with_suffix('.engine')
    engine.write_bytes(b'engine')
    detector, choice = open_detector(engine)
    assert choice.backend.name == 'tensorrt' and 'fastest available' in choice.reason
    result = detector.detect(np.full((64, 96, 3), 255, np.uint8))
    [det] = result.detections
    assert det.label == 'stop' and det.score == pytest.approx(2.0, abs=1e-3)
    assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((38, 22, 58, 42))
    detector.close()
    assert log[0] == 'make_context' and log[-2:] == ['pop', 'detach']


def test_explicit_onnxruntime_cuda_without_cuda_is_an_error(model):
    with pytest.raises(BackendUnavailableError, match='onnxruntime-cuda is not available.*CUDAExecutionProvider'):
        open_backend('onnxruntime-cuda', model, None)


def test_unknown_backend_names_the_choices(model):
    with pytest.raises(ValueError, match='auto, tensorrt, onnxruntime-cuda, onnxruntime-cpu'):
        open_backend('openvino', model, None)


def test_onnxruntime_backend_reports_a_corrupt_model_and_a_wrong_input_name(tmp_path, model):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x00garbage')
    with pytest.raises(EngineLoadError, match='bad.onnx: onnxruntime cannot load the model'):
        OnnxRuntimeBackend(bad)
    with pytest.raises(EngineLoadError, match='no input `pixels`; its inputs: images'):
        OnnxRuntimeBackend(model, input_name='pixels')


def test_model_and_metadata_size_mismatch_is_reported(tmp_path):
    model = make_model(tmp_path, imgsz=(64, 96))
    meta = model.with_suffix('.json')
    meta.write_text(meta.read_text().replace('[64, 96]', '[96, 96]'))
    with pytest.raises(EngineLoadError, match=r'model input is 64x96 .* says imgsz \[96, 96\]'):
        open_detector(model)


def test_missing_model_and_missing_metadata_name_their_paths(tmp_path, model):
    with pytest.raises(ModelNotFoundError, match='nothing.onnx: model file not found'):
        resolve_model_paths(tmp_path / 'nothing.onnx')
    model.with_suffix('.json').unlink()
    with pytest.raises(ModelNotFoundError, match='signs.json: model metadata file not found'):
        open_detector(model)


def test_metadata_with_a_wrong_class_count_fails_at_decode_not_silently(tmp_path):
    model = make_model(tmp_path, imgsz=(64, 96))
    meta = model.with_suffix('.json')
    meta.write_text(meta.read_text().replace('"danger"', '"danger", "extra"'))
    detector, _ = open_detector(model)
    with pytest.raises(ValueError, match='5 classes'):
        detector.detect(np.zeros((64, 96, 3), np.uint8))


def test_detector_reports_stage_times_and_uses_metadata_thresholds(model):
    detector, _ = open_detector(model, conf_threshold=0.5)
    assert detector.iou_threshold == 0.45 and detector.conf_threshold == 0.5
    result = detector.detect(np.full((64, 96, 3), 255, np.uint8))
    assert {d.label for d in result.detections} == {'stop', 'danger'}
    assert min(result.preprocess_ms, result.inference_ms, result.postprocess_ms) >= 0
    assert ModelMetadataError  # exported for callers
