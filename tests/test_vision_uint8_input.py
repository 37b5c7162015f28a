"""The CPU backend's uint8 input: the normalisation moved into the graph, outputs unchanged (issue 15).

`with_uint8_input` puts a uint8 `images` input and a DequantizeLinear (k * 1/255) in front of the
model's float input, in memory; `Letterboxer(..., np.uint8)` writes the same pixels as bytes. The
outputs must equal the float path's, for an FP32 model and for a real INT8 (QDQ) one, whose first
node takes the float input in a QuantizeLinear.
"""
import hashlib
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from train_fou.vision import EngineLoadError
from train_fou.vision.backends import BackendSpec, open_backend
from train_fou.vision.backends.onnxruntime_backend import OnnxRuntimeBackend, with_uint8_input
from train_fou.vision.detector import open_detector
from train_fou.vision.preprocess import PAD_VALUE, Letterboxer

from helpers.models import build_yolov8_like, make_model

IMGSZ = (64, 96)
RNG = np.random.default_rng(7)
#: source frames: wider than the input (pads top and bottom: interior rows are whole rows), taller
#: (pads left and right), already the input's size (no resize)
FRAMES = [RNG.integers(0, 256, shape, np.uint8) for shape in ((48, 64, 3), (80, 40, 3), (*IMGSZ, 3))]


def conv_model(path, opset=13):
    """A small convolutional model (Conv, Relu, GlobalAveragePool): quantisable, input-sensitive."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32), 'w')
    b = onnx.numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), 'b')
    nodes = [helper.make_node('Conv', ['images', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('Relu', ['c'], ['r']),
             helper.make_node('GlobalAveragePool', ['r'], ['output0'])]
    graph = helper.make_graph(nodes, 'conv', [helper.make_tensor_value_info('images', TensorProto.FLOAT,
                                                                         [1, 3, *IMGSZ])],
                              [helper.make_tensor_value_info('output0', TensorProto.FLOAT, [1, 8, 1, 1])],
                              initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def quantized(fp32, path):
    """onnxruntime's static QDQ quantisation of `fp32` (the project's recipe: int8 weights per channel,
    uint8 activations), calibrated on the letterboxed test frames."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{'images': Letterboxer(IMGSZ)(f)[0].copy()} for f in FRAMES])

        def get_next(self):
            return next(self.feeds, None)
    quantize_static(str(fp32), str(path), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return path


def _model(kind, tmp_path):
    if kind == 'fp32 yolov8-like':
        return build_yolov8_like(tmp_path / 'y.onnx', imgsz=IMGSZ)
    if kind == 'fp32 conv':
        return conv_model(tmp_path / 'c.onnx')
    if kind == 'fp32 conv, opset 9 (Cast + Mul)':
        return conv_model(tmp_path / 'c9.onnx', opset=9)
    if kind == 'int8 qdq conv':
        path = quantized(conv_model(tmp_path / 'c.onnx'), tmp_path / 'c.int8.onnx')
        first = [n for n in onnx.load(str(path)).graph.node if 'images' in n.input]
        assert [n.op_type for n in first] == ['QuantizeLinear']  # the case the brief asks about
        return path
    if kind == 'int8 qdq yolov8-like':
        return quantized(build_yolov8_like(tmp_path / 'y.onnx', imgsz=IMGSZ), tmp_path / 'y.int8.onnx')
    raise AssertionError(kind)


@pytest.mark.parametrize('kind', ['fp32 yolov8-like', 'fp32 conv', 'fp32 conv, opset 9 (Cast + Mul)',
                                  'int8 qdq conv', 'int8 qdq yolov8-like'])
def test_uint8_input_gives_the_float_paths_outputs(kind, tmp_path):
    path = _model(kind, tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    floats = OnnxRuntimeBackend(path)
    as_bytes = OnnxRuntimeBackend(path, uint8_input=True)
    assert floats.input_dtype == np.float32 and as_bytes.input_dtype == np.uint8
    assert as_bytes.input_hw == IMGSZ
    float_boxer, byte_boxer = Letterboxer(IMGSZ), Letterboxer(IMGSZ, np.uint8)
    for frame in FRAMES:
        want = floats.infer(float_boxer(frame)[0])
        tensor, _ = byte_boxer(frame)
        assert tensor.dtype == np.uint8
        got = as_bytes.infer(tensor)
        np.testing.assert_array_equal(got, want)
        # a caller written for float input still gets the same answer (converted back to bytes)
        np.testing.assert_array_equal(as_bytes.infer(float_boxer(frame)[0]), want)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the file on disk is unchanged


def test_the_rewritten_graph_has_a_uint8_input_of_the_same_shape(tmp_path):
    path = build_yolov8_like(tmp_path / 'y.onnx', imgsz=IMGSZ)
    model = onnx.load_from_string(with_uint8_input(path))
    onnx.checker.check_model(model)
    [images] = [i for i in model.graph.input if i.name == 'images']
    assert images.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_value for d in images.type.tensor_type.shape.dim] == [1, 3, *IMGSZ]
    assert model.graph.node[0].op_type == 'DequantizeLinear' and model.graph.node[0].input[0] == 'images'


def test_an_input_that_is_not_float_nchw_is_refused_with_the_path(tmp_path):
    graph = helper.make_graph([helper.make_node('Identity', ['images'], ['output0'])], 'g',
                              [helper.make_tensor_value_info('images', TensorProto.UINT8, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info('output0', TensorProto.UINT8, [1, 3, 4, 4])])
    path = tmp_path / 'u8.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)]), str(path))
    with pytest.raises(EngineLoadError, match='u8.onnx.*not a 4-D float32'):
        OnnxRuntimeBackend(path, uint8_input=True)


@pytest.mark.parametrize('src_hw, dst_hw', [((480, 640), (512, 512)), ((640, 480), (512, 512)),
                                            ((300, 300), (416, 416)), ((416, 416), (416, 416)),
                                            ((100, 700), (64, 96)), ((37, 53), (64, 96))])
def test_the_uint8_letterbox_writes_the_float_letterboxs_pixels_as_bytes(src_hw, dst_hw):
    image = RNG.integers(0, 256, (*src_hw, 3), np.uint8)
    floats, _ = Letterboxer(dst_hw)(image)
    boxer = Letterboxer(dst_hw, np.uint8)
    tensor, info = boxer(image)
    assert tensor.shape == (1, 3, *dst_hw) and tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor.astype(np.float32) * np.float32(1 / 255), floats)
    if info.pad_y:
        assert (tensor[0, :, 0] == PAD_VALUE).all()
    again, _ = boxer(cv2.flip(image, 1))
    assert again is tensor  # the one reused tensor
    np.testing.assert_array_equal(again.astype(np.float32) * np.float32(1 / 255),
                                  Letterboxer(dst_hw)(cv2.flip(image, 1))[0])


def test_the_letterbox_takes_float32_or_uint8_only():
    with pytest.raises(ValueError, match='float32 or uint8'):
        Letterboxer((64, 64), np.float16)


@pytest.mark.parametrize('uint8_input, dtype', [(True, np.uint8), (False, np.float32)])
def test_the_cpu_detector_runs_bytes_and_detects_as_the_float_one(tmp_path, monkeypatch, uint8_input, dtype):
    monkeypatch.setitem(sys.modules, 'tensorrt', None)
    model = make_model(tmp_path, imgsz=IMGSZ)
    detector, choice = open_detector(model, backend='onnxruntime-cpu', refine=False, uint8_input=uint8_input)
    reference, _ = open_detector(model, backend='onnxruntime-cpu', refine=False, uint8_input=False)
    try:
        assert detector.input_dtype == dtype and choice.backend.input_dtype == dtype
        white = np.full((48, 64, 3), 255, np.uint8)
        assert detector.prepare(white)[0].dtype == dtype
        assert detector.preprocess(white)[0].dtype == np.float32  # the float tensor, for other networks
        for frame in (white, *FRAMES):
            assert detector.detect(frame).detections == reference.detect(frame).detections
    finally:
        detector.close()
        reference.close()


def test_a_backend_without_a_uint8_loader_is_loaded_for_float_input(tmp_path):
    """The GPUs' backends (TensorRT, CUDA) keep their float input when the caller asks for bytes."""
    model = build_yolov8_like(tmp_path / 'y.onnx', imgsz=IMGSZ)
    loads = []

    def load(kind):
        return lambda path, *args: loads.append(kind) or OnnxRuntimeBackend(path, uint8_input=kind == 'uint8')
    table = {'gpu': BackendSpec('onnx', lambda: None, load('float')),
             'cpu': BackendSpec('onnx', lambda: None, load('float'), load_uint8=load('uint8'))}
    for name in ('gpu', 'cpu'):
        choice = open_backend(name, model, None, table=table, uint8_input=True)
        choice.backend.close()
    assert loads == ['float', 'uint8']
    choice = open_backend('cpu', model, None, table=table)  # not asked: float
    assert choice.backend.input_dtype == np.float32 and loads[-1] == 'float'
