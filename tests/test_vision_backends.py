"""Backend selection and fallback, the ONNX Runtime backend, and the TensorRT backend's logic
against fake `tensorrt` / `pycuda` modules (no GPU here: the fakes stand in for the driver)."""
import sys

import numpy as np
import pytest

from train_fou.vision import EngineLoadError, ModelNotFoundError
from train_fou.vision.backends import BackendUnavailableError, open_backend
from train_fou.vision.backends.onnxruntime_backend import OnnxRuntimeBackend
from train_fou.vision.detector import open_detector, resolve_model_paths

from helpers.fake_gpu import FakeCudaError, FakeDevice, fake_pycuda, install_fake_gpu
from helpers.models import make_model


@pytest.fixture
def model(tmp_path):
    return make_model(tmp_path, imgsz=(64, 96))


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)  # import tensorrt -> ImportError


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


APIS = pytest.mark.parametrize('v3', [True, False], ids=['io-tensors-api', 'bindings-api'])


def _fake_engine(model, monkeypatch, **kwargs):
    gpu = install_fake_gpu(monkeypatch, **kwargs)
    engine = model.with_suffix('.engine')
    engine.write_bytes(b'engine')
    return gpu, engine


def _assert_released(gpu):
    """Every device buffer freed inside its context, then the context popped and detached."""
    assert gpu.allocations and all(m.freed for m in gpu.allocations.values())
    assert gpu.leaked == [] and gpu.context_stack == []
    assert gpu.log[0] == 'make_context' and gpu.log[-2:] == ['pop', 'detach']
    assert gpu.log.count('free') == sum(entry.startswith('alloc') for entry in gpu.log)


@APIS
def test_tensorrt_backend_runs_an_engine_through_the_fake_driver(model, monkeypatch, v3):
    gpu, engine = _fake_engine(model, monkeypatch, v3=v3)
    detector, choice = open_detector(engine)
    assert choice.backend.name == 'tensorrt' and 'fastest available' in choice.reason
    for value, score in ((255, 2.0), (51, 0.4)):   # each frame's own output, not the previous one's
        result = detector.detect(np.full((64, 96, 3), value, np.uint8))
        [det] = result.detections
        assert det.label == 'stop' and det.score == pytest.approx(score, abs=1e-3)
        assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((38, 22, 58, 42))
    assert gpu.log.count('sync') == 2
    detector.close()
    _assert_released(gpu)


def test_the_fake_driver_shows_outputs_only_after_the_stream_is_synchronised(monkeypatch):
    """The stand-in's own contract (what the backend test above relies on): copies and kernels wait
    on their stream; before synchronize the host buffer holds stale bytes (NaN)."""
    gpu = FakeDevice([])
    _package, cuda = fake_pycuda(gpu)
    context = cuda.Device(0).make_context()
    stream = cuda.Stream()
    host_in, host_out = cuda.pagelocked_empty(4, np.float32), cuda.pagelocked_empty(4, np.float32)
    device = cuda.mem_alloc(host_in.nbytes)
    host_in[:] = [1, 2, 3, 4]
    cuda.memcpy_htod_async(device, host_in, stream)
    cuda.memcpy_dtoh_async(host_out, device, stream)
    assert np.isnan(host_out).all()
    stream.synchronize()
    assert host_out.tolist() == [1, 2, 3, 4]
    context.pop()
    context.detach()
    assert gpu.leaked == [device]   # not freed before the context went: leaked
    with pytest.raises(FakeCudaError, match='without a current CUDA context'):
        device.free()


@APIS
def test_tensorrt_backend_fixes_a_dynamic_engine_to_the_metadata_size(model, monkeypatch, v3):
    """An engine built with dynamic shapes (-1 batch, height, width) runs at the size the metadata says:
    the input shape is set on the execution context, the output buffer sized from the context."""
    gpu, engine = _fake_engine(model, monkeypatch, v3=v3, dynamic=True)
    detector, choice = open_detector(engine)
    backend = choice.backend
    assert backend.name == 'tensorrt' and backend.input_hw == (64, 96)
    assert backend._input.shape == (1, 3, 64, 96) and backend._outputs[0].shape == (1, 8, 6)
    [det] = detector.detect(np.full((64, 96, 3), 255, np.uint8)).detections
    assert det.label == 'stop' and det.score == pytest.approx(2.0, abs=1e-3)
    detector.close()
    _assert_released(gpu)


def test_a_dynamic_engine_without_a_known_input_size_is_refused_and_leaves_nothing_allocated(model, monkeypatch):
    gpu, engine = _fake_engine(model, monkeypatch, dynamic=True)
    from train_fou.vision.backends.tensorrt_backend import TensorRTBackend
    with pytest.raises(EngineLoadError, match='is dynamic and no input size is known'):
        TensorRTBackend(engine)
    assert gpu.context_stack == [] and gpu.leaked == [] and gpu.log[-2:] == ['pop', 'detach']


def test_an_engine_with_a_second_input_is_refused_and_frees_the_buffers_it_allocated(model, monkeypatch):
    gpu, engine = _fake_engine(model, monkeypatch, extra_inputs=('im_info',))
    from train_fou.vision.backends.tensorrt_backend import TensorRTBackend
    with pytest.raises(EngineLoadError, match=r"extra inputs \['im_info'\]"):
        TensorRTBackend(engine)
    assert gpu.allocations and gpu.leaked == [] and gpu.context_stack == []


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


def test_detector_uses_metadata_thresholds(model):
    detector, _ = open_detector(model, conf_threshold=0.5)
    assert detector.iou_threshold == 0.45 and detector.conf_threshold == 0.5
    result = detector.detect(np.full((64, 96, 3), 255, np.uint8))
    assert {d.label for d in result.detections} == {'stop', 'danger'}


def test_detector_times_each_stage_separately(model, monkeypatch):
    """Letterbox, inference and decoding made slow by known amounts: each stage's time holds its own
    delay (and not another's), and the three add up to no more than the call took."""
    import time

    from train_fou.vision import detector as detector_mod
    detector, _ = open_detector(model)

    def slow(fn, seconds):
        def wrapped(*args, **kwargs):
            time.sleep(seconds)
            return fn(*args, **kwargs)
        return wrapped
    detector.letterboxer = slow(detector.letterboxer, 0.02)
    monkeypatch.setattr(detector.backend, 'infer', slow(detector.backend.infer, 0.06))
    monkeypatch.setattr(detector_mod, 'decode_yolov8', slow(detector_mod.decode_yolov8, 0.04))
    start = time.perf_counter()
    result = detector.detect(np.full((64, 96, 3), 255, np.uint8))
    took_ms = (time.perf_counter() - start) * 1e3
    assert {d.label for d in result.detections} == {'stop', 'danger'}
    # a sleep lasts at least as long as asked; a stage timed with another's delay breaks the sum
    assert result.preprocess_ms >= 20 and result.inference_ms >= 60 and result.postprocess_ms >= 40
    assert result.preprocess_ms + result.inference_ms + result.postprocess_ms <= took_ms
