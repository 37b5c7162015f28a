"""`python -m training quantize` / `export --int8`: static INT8 quantisation of an exported model
(training/export.py: quantize_int8), on a tiny YOLOv8-shaped convolutional graph built here."""
import json
import pathlib

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from train_fou.vision.detector import file_sha256, open_detector
from training.__main__ import main as training_main
from training.export import ExportError, Int8Options, calibration_images, decode_nodes, quantize_int8

from helpers.models import write_metadata

NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']
SIZE = 32
ANCHORS = (SIZE // 2) ** 2


def build_conv_yolo(path, box_scale=512.0):
    """images 1x3x32x32 -> Conv(s2) -> SiLU -> Conv 1x1 (the last learned one) -> 1x(4+nc)xN: boxes
    scaled to pixels (Mul), scores through a Sigmoid, concatenated (YOLOv8's output layout)."""
    rng = np.random.default_rng(0)
    nc = len(NAMES)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.5).astype(np.float32), 'w1'),
             numpy_helper.from_array(np.zeros(8, np.float32), 'b1'),
             numpy_helper.from_array((rng.standard_normal((4 + nc, 8, 1, 1)) * 0.5).astype(np.float32), 'w2'),
             numpy_helper.from_array(np.zeros(4 + nc, np.float32), 'b2'),
             numpy_helper.from_array(np.array([1, 4 + nc, ANCHORS], np.int64), 'shape'),
             numpy_helper.from_array(np.array([4, nc], np.int64), 'split'),
             numpy_helper.from_array(np.array(box_scale, np.float32), 'scale')]
    nodes = [helper.make_node('Conv', ['images', 'w1', 'b1'], ['c1'], name='conv1', strides=[2, 2], pads=[1] * 4),
             helper.make_node('Sigmoid', ['c1'], ['s1'], name='silu_sigmoid'),
             helper.make_node('Mul', ['c1', 's1'], ['a1'], name='silu_mul'),
             helper.make_node('Conv', ['a1', 'w2', 'b2'], ['c2'], name='head_conv'),
             helper.make_node('Reshape', ['c2', 'shape'], ['flat'], name='reshape'),
             helper.make_node('Split', ['flat', 'split'], ['box_raw', 'cls_raw'], name='split', axis=1),
             helper.make_node('Sigmoid', ['box_raw'], ['box_unit'], name='box_sigmoid'),
             helper.make_node('Mul', ['box_unit', 'scale'], ['boxes'], name='box_scale'),
             helper.make_node('Sigmoid', ['cls_raw'], ['scores'], name='cls_sigmoid'),
             helper.make_node('Concat', ['boxes', 'scores'], ['output0'], name='concat', axis=1)]
    graph = helper.make_graph(nodes, 'conv_yolo',
                              [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info('output0', TensorProto.FLOAT, [1, 4 + nc, ANCHORS])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    write_metadata(path, (SIZE, SIZE), opset=17)
    return path


def write_images(root, split, count, seed=0):
    folder = root / 'images' / split
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(folder / f'{split}_{i:03d}.png'), image)
    return root


@pytest.fixture
def fp32(tmp_path):
    (tmp_path / 'models').mkdir()
    return build_conv_yolo(tmp_path / 'models' / 'signs.onnx')


@pytest.fixture
def data(tmp_path):
    write_images(tmp_path / 'data', 'train', 12)
    return write_images(tmp_path / 'data', 'val', 4, seed=1)


def test_decode_nodes_are_those_after_the_last_learned_convolution(fp32):
    proto = onnx.load(str(fp32))
    after = ['box_scale', 'box_sigmoid', 'cls_sigmoid', 'concat', 'reshape', 'split']
    assert decode_nodes(proto) == after
    assert decode_nodes(proto, with_last_convs=True) == sorted([*after, 'head_conv'])


def test_quantize_writes_the_int8_model_and_its_metadata_beside_fp32(fp32, data):
    int8, meta_path, quantization = quantize_int8(fp32, Int8Options(calib=(data,), count=8), command='test')
    assert int8 == fp32.with_name('signs.int8.onnx') and meta_path == fp32.with_name('signs.int8.json')
    meta = json.loads(meta_path.read_text())
    fp32_meta = json.loads(fp32.with_suffix('.json').read_text())
    assert {k: v for k, v in meta.items() if k not in ('precision', 'quantization')} == fp32_meta
    assert meta['precision'] == 'int8' and meta['quantization'] == quantization
    assert quantization['source'] == 'signs.onnx' and quantization['source_sha256'] == file_sha256(fp32)
    assert quantization['calibration'] == {'method': 'minmax', 'data': [str(data)], 'split': 'train',
                                           'images': 8, 'seed': 0}
    assert quantization['format'] == 'QDQ' and quantization['activations'] == 'uint8'
    assert quantization['float_nodes'] == {'exclude': 'decode', 'count': 6}
    proto = onnx.load(str(int8))
    ops = {n.op_type for n in proto.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    [entry] = [p for p in proto.metadata_props if p.key == 'train_fou']
    assert json.loads(entry.value) == meta
    # the detector's `auto` now runs it, with outputs close to the FP32 model's
    detector, choice = open_detector(fp32, backend='auto', refine=False)
    reference, _ = open_detector(fp32, backend='onnxruntime-cpu', refine=False)
    try:
        assert choice.model == int8 and detector.precision == 'int8' and reference.precision == 'fp32'
        image = cv2.imread(str(sorted((data / 'images' / 'val').iterdir())[0]))
        tensor, _ = detector.preprocess(image)
        got, want = detector.backend.infer(tensor), reference.backend.infer(tensor)
        assert np.abs(got[:, 4:] - want[:, 4:]).max() < 0.05
        assert np.abs(got[:, :4] - want[:, :4]).max() < 0.03 * 512
    finally:
        detector.close()
        reference.close()


def test_one_scale_for_pixel_boxes_and_scores_is_why_the_decode_stays_float(fp32, data, tmp_path):
    _, _, kept = quantize_int8(fp32, Int8Options(calib=(data,), count=8), tmp_path / 'decode')
    _, _, none = quantize_int8(fp32, Int8Options(calib=(data,), count=8, exclude='none'), tmp_path / 'none')
    assert kept['agreement']['max_score_diff'] < 0.05
    assert none['agreement']['max_score_diff'] > 0.2


def test_calibration_images_are_a_seeded_draw_from_the_split(data):
    picked = calibration_images([data], 'train', 5, seed=3)
    assert picked == calibration_images([data], 'train', 5, seed=3) and len(set(picked)) == 5
    assert picked == sorted(picked) and all(p.parent.name == 'train' for p in picked)
    assert picked != calibration_images([data], 'train', 5, seed=4)
    assert len(calibration_images([data], 'val', 100, seed=0)) == 4   # all of them when there are fewer
    with pytest.raises(ExportError, match='no calibration images in images/train'):
        calibration_images([data / 'nothing'], 'train', 5, 0)


def test_a_refiner_is_copied_to_another_out_dir_and_named_as_before(fp32, data, tmp_path):
    refiner = build_conv_yolo(fp32.with_name('signs_refine.onnx'))
    meta = json.loads(fp32.with_suffix('.json').read_text())
    meta['refiner'] = {'model': refiner.name, 'names': ['speed_limit_30', 'speed_limit_50', 'stop', 'other'],
                       'applies_to': ['speed_limit_30', 'speed_limit_50', 'stop'], 'input_size': 32}
    fp32.with_suffix('.json').write_text(json.dumps(meta))
    out = tmp_path / 'elsewhere'
    _, meta_path, _ = quantize_int8(fp32, Int8Options(calib=(data,), count=4), out)
    assert json.loads(meta_path.read_text())['refiner'] == meta['refiner']
    assert (out / 'signs_refine.onnx').read_bytes() == refiner.read_bytes()


@pytest.mark.parametrize('change, message', [
    ({'method': 'histogram'}, "method 'histogram'"), ({'split': 'test'}, "split 'test'"),
    ({'count': 0}, 'count 0'), ({'activations': 'int4'}, "activations 'int4'"),
])
def test_bad_options_are_refused_before_anything_is_written(fp32, data, change, message):
    with pytest.raises(ExportError, match=message):
        quantize_int8(fp32, Int8Options(calib=(data,), **change))
    assert not fp32.with_name('signs.int8.onnx').exists()


def test_an_int8_model_is_not_quantised_again(fp32, data):
    int8, _, _ = quantize_int8(fp32, Int8Options(calib=(data,), count=4))
    with pytest.raises(ExportError, match='says precision int8; quantise the FP32 model'):
        quantize_int8(int8, Int8Options(calib=(data,), count=4))


def test_the_quantize_command(fp32, data, capsys):
    assert training_main(['quantize', str(fp32), '--calib', str(data), '--calib-count', '6',
                          '--calib-method', 'percentile', '--float-nodes', 'head']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['onnx'] == str(fp32.with_name('signs.int8.onnx'))
    meta = json.loads(fp32.with_name('signs.int8.json').read_text())['quantization']
    assert meta['calibration']['method'] == 'percentile' and meta['calibration']['images'] == 6
    assert meta['float_nodes'] == {'exclude': 'head', 'count': 7}
    assert meta['command'].startswith('python -m training')
    with pytest.raises(SystemExit):  # argparse: --calib is required
        training_main(['quantize', str(fp32)])


@pytest.mark.parametrize('flags', [['--int8'], ['--calib', 'somewhere']], ids=['int8 without calib', 'calib alone'])
def test_export_refuses_int8_and_calib_apart_before_exporting(tmp_path, capsys, flags):
    config = pathlib.Path(__file__).resolve().parents[1] / 'training' / 'configs' / 'smoke.yaml'
    assert training_main(['export', str(tmp_path / 'best.pt'), '--config', str(config),
                          '--out-dir', str(tmp_path), *flags]) == 1
    assert '--int8 and --calib DATA go together' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
