"""Export trained weights to the model contract: models/<name>.onnx + models/<name>.json.

ONNX: ultralytics YOLOv8 detect export, static 1x3xHxW input `images` (RGB 0..1),
output 1x(4+nc)xN, opset pinned, no NMS in the graph. The JSON next to it
(read by train_fou.vision.metadata) holds labels, input size, thresholds,
opset, the training data hash and the training config; the same JSON is also
stored in the ONNX file's metadata_props under `train_fou`.

`quantize_int8` (`python -m training quantize`, `export --int8`) makes <name>.int8.onnx + .json
from an exported model: onnxruntime's static QDQ quantisation, calibrated on letterboxed
synthetic frames, for the CPU (the detector's `auto` prefers it there).
"""
from __future__ import annotations

import json
import pathlib
import shutil
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from train_fou.errors import TrainFouError
from train_fou.render.signs import CLASS_NAMES
from training.offline import offline


class ExportError(TrainFouError, RuntimeError):
    """The export did not produce a model that matches the contract."""


#: ONNX operators the exported graph may use: each has a TensorRT 8.6+ parser implementation
#: (onnx-tensorrt's operator support list), so `python -m training engine` can build it on the Jetson.
TENSORRT_OPS = frozenset({
    'Add', 'Clip', 'Concat', 'Constant', 'Conv', 'Div', 'Gather', 'Identity', 'MaxPool', 'Mul', 'Relu',
    'Reshape', 'Resize', 'Shape', 'Sigmoid', 'Slice', 'Softmax', 'Split', 'Sub', 'Transpose', 'Unsqueeze',
})


def unsupported_ops(proto) -> list[str]:
    """Operators of an ONNX graph that are not in TENSORRT_OPS (sorted, each once)."""
    return sorted({node.op_type for node in proto.graph.node} - TENSORRT_OPS)


def export_onnx(weights: pathlib.Path, out_dir: pathlib.Path, name: str, imgsz: tuple[int, int], opset: int,
                data_hash: str, training: Mapping[str, Any], conf_threshold: float = 0.25,
                iou_threshold: float = 0.45) -> tuple[pathlib.Path, pathlib.Path]:
    """Export `weights` to out_dir/<name>.onnx and write out_dir/<name>.json; returns both paths.

    `imgsz`: the input's (height, width), as config.export_size gives it.
    """
    offline()
    height, width = int(imgsz[0]), int(imgsz[1])
    import onnx  # noqa: PLC0415
    from ultralytics import YOLO  # noqa: PLC0415

    model = YOLO(str(weights))
    names = [model.names[i] for i in sorted(model.names)]
    if names != list(CLASS_NAMES):
        raise ExportError(f'{weights}: classes {names} are not the model contract {list(CLASS_NAMES)}')
    produced = pathlib.Path(model.export(format='onnx', imgsz=[height, width], opset=opset, dynamic=False,
                                         simplify=False, nms=False, batch=1, device='cpu'))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f'{name}.onnx'
    meta = {
        'format': 'yolov8',
        'names': names,
        'imgsz': [height, width],
        'input_name': 'images',
        'conf_threshold': conf_threshold,
        'iou_threshold': iou_threshold,
        'opset': opset,
        'data_hash': data_hash,
        'training': dict(training),
    }
    proto = onnx.load(str(produced))
    inputs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input]
    outputs = [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in proto.graph.output]
    if inputs != [('images', [1, 3, height, width])]:
        raise ExportError(f'{produced}: input {inputs}, expected images [1, 3, {height}, {width}]')
    if len(outputs) != 1 or outputs[0][1][:2] != [1, 4 + len(names)]:
        raise ExportError(f'{produced}: outputs {outputs}, expected one 1x{4 + len(names)}xN')
    if proto.opset_import[0].version != opset:
        raise ExportError(f'{produced}: opset {proto.opset_import[0].version}, expected {opset}')
    foreign = unsupported_ops(proto)
    if foreign:
        raise ExportError(f'{produced}: operators {foreign} are not on the TensorRT list (training/export.py)')
    meta['output_shape'] = outputs[0][1]
    entry = proto.metadata_props.add()
    entry.key, entry.value = 'train_fou', json.dumps(meta, sort_keys=True)
    onnx.save(proto, str(onnx_path))
    if produced.resolve() != onnx_path.resolve():
        produced.unlink()
    json_path = onnx_path.with_suffix('.json')
    json_path.write_text(json.dumps(meta, indent=2) + '\n')
    return onnx_path, json_path


def copy_weights(weights: pathlib.Path, dest: pathlib.Path, train_fou: Mapping[str, Any] | None = None) -> None:
    """Copy an ultralytics checkpoint, adding our config and data hash under the key `train_fou`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if train_fou is None:
        shutil.copy2(weights, dest)
        return
    import torch  # noqa: PLC0415
    ckpt = torch.load(str(weights), map_location='cpu', weights_only=False)
    ckpt['train_fou'] = dict(train_fou)
    torch.save(ckpt, str(dest))


# --- INT8 (CPU) -------------------------------------------------------------------------------------

#: calibration methods (onnxruntime.quantization.CalibrationMethod) and what may stay in float
INT8_METHODS = ('minmax', 'percentile', 'entropy')
INT8_EXCLUDE = ('none', 'decode', 'head')
INT8_ACTIVATIONS = ('uint8', 'int8')
#: calibration images per onnxruntime collection pass (all intermediate outputs of a pass are held)
CALIB_CHUNK = 8


@dataclass(frozen=True)
class Int8Options:
    """How `quantize_int8` quantises; the defaults are the measured choice (training/README.md)."""

    calib: tuple[pathlib.Path, ...]  # YOLO dataset roots whose images calibrate
    split: str = 'train'
    count: int = 200
    seed: int = 0
    method: str = 'minmax'
    activations: str = 'uint8'
    #: none: every operator; decode: the box decode, DFL, sigmoid and concats after the last learned
    #: convolutions stay float (one 8-bit scale cannot hold pixel boxes and 0..1 scores at once);
    #: head: those convolutions too
    exclude: str = 'decode'
    reduce_range: bool = False
    percentile: float = 99.999
    #: onnxruntime's quant_pre_process (shape inference, graph optimisation) first
    preprocess: bool = True


def calibration_images(roots, split: str, count: int, seed: int) -> list[pathlib.Path]:
    """`count` images drawn (without replacement, by `seed`) from the `split` of the YOLO roots, in
    name order; all of them when there are fewer."""
    from training.dataset import split_images  # noqa: PLC0415
    pool = [p for root in roots for p in split_images(pathlib.Path(root), split)]
    if not pool:
        raise ExportError(f'no calibration images in images/{split} of {", ".join(str(r) for r in roots)}')
    if len(pool) <= count:
        return pool
    import numpy as np  # noqa: PLC0415
    picked = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    return [pool[i] for i in sorted(picked)]


def decode_nodes(proto, with_last_convs: bool = False) -> list[str]:
    """Names of the nodes between the network's last learned convolutions and its outputs (the
    YOLOv8 DFL softmax and convolution, the box decode, the class sigmoid, the concatenations),
    plus those convolutions when `with_last_convs`. A convolution fed by a Softmax is the DFL's."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found, convs, seen = [], [], set()
    stack = [o.name for o in proto.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        feeder = producer.get(node.input[0]) if node.input else None
        if node.op_type == 'Conv' and (feeder is None or feeder.op_type != 'Softmax'):
            convs.append(node.name)
            continue
        found.append(node.name)
        stack.extend(node.input)
    if not convs:
        raise ExportError('no convolution found before the outputs: not a YOLOv8-shaped graph')
    return sorted(found + (convs if with_last_convs else []))


def _calibration_reader(images: list[pathlib.Path], imgsz, input_name: str):
    """An onnxruntime CalibrationDataReader over `images`, letterboxed by train_fou.vision as the
    detector does (BGR file -> RGB 0..1 NCHW), in chunks (`set_range`, CalibStridedMinMax)."""
    import cv2  # noqa: PLC0415
    from onnxruntime.quantization import CalibrationDataReader  # noqa: PLC0415

    from train_fou.vision.preprocess import Letterboxer  # noqa: PLC0415

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.boxer = Letterboxer(imgsz)
            self.start, self.end, self.next = 0, len(images), 0

        def __len__(self):
            return len(images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end, self.next = start_index, end_index, start_index

        def get_next(self):
            if self.next >= self.end:
                return None
            path = images[self.next]
            self.next += 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ExportError(f'{path}: unreadable calibration image')
            return {input_name: self.boxer(bgr)[0].copy()}

        def rewind(self) -> None:
            self.next = self.start

    return Reader()


def _chunk(count: int) -> int:
    """The largest divisor of `count` up to CALIB_CHUNK (onnxruntime wants equal chunks)."""
    return max(d for d in range(1, min(CALIB_CHUNK, count) + 1) if count % d == 0)


def _relative(path: pathlib.Path) -> str:
    path = pathlib.Path(path).resolve()
    root = pathlib.Path(__file__).resolve().parents[1]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def quantize_int8(onnx_path: pathlib.Path, options: Int8Options, out_dir: pathlib.Path | None = None,
                  command: str = '') -> tuple[pathlib.Path, pathlib.Path, dict]:
    """Statically quantise an exported FP32 model (QDQ, int8 per-channel weights) to
    <out_dir>/<stem>.int8.onnx + .json (default: beside it); returns both paths and the
    `quantization` entry written into the metadata.

    The metadata is the FP32 model's, plus `precision: int8` and `quantization` (method,
    calibration set and count, what stayed float, the FP32 file's sha256: the detector passes
    over an INT8 file whose FP32 model changed). A refiner the metadata names stays FP32 and is
    named as before; with another out_dir it is copied there (the metadata names it by file name).
    """
    import tempfile  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # noqa: PLC0415
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    from train_fou.vision.detector import file_sha256  # noqa: PLC0415
    from train_fou.vision.metadata import int8_model_path, load_metadata, metadata_path_for  # noqa: PLC0415

    onnx_path = pathlib.Path(onnx_path)
    checks = ((options.method, INT8_METHODS, 'method'), (options.exclude, INT8_EXCLUDE, 'exclude'),
              (options.activations, INT8_ACTIVATIONS, 'activations'), (options.split, ('train', 'val'), 'split'))
    for value, allowed, what in checks:
        if value not in allowed:
            raise ExportError(f'INT8 {what} {value!r}: choose one of {", ".join(allowed)}')
    if options.count < 1:
        raise ExportError(f'INT8 calibration count {options.count}: at least 1')
    fp32_json = metadata_path_for(onnx_path)
    meta = load_metadata(fp32_json)
    if meta.precision != 'fp32':
        raise ExportError(f'{onnx_path}: {fp32_json} says precision {meta.precision}; quantise the FP32 model')
    data = json.loads(fp32_json.read_text())
    out_dir = onnx_path.parent if out_dir is None else pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_onnx = int8_model_path(out_dir / onnx_path.name)
    images = calibration_images(options.calib, options.split, options.count, options.seed)

    method = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
              'entropy': CalibrationMethod.Entropy}[options.method]
    activation_type = QuantType.QUInt8 if options.activations == 'uint8' else QuantType.QInt8
    extra = {'CalibStridedMinMax': _chunk(len(images))}
    if options.method == 'percentile':
        extra['CalibPercentile'] = options.percentile
    with tempfile.TemporaryDirectory(prefix='train_fou_int8_') as tmp:
        source = onnx_path
        if options.preprocess:
            source = pathlib.Path(tmp) / 'preprocessed.onnx'
            quant_pre_process(str(onnx_path), str(source), skip_symbolic_shape=True)
        proto = onnx.load(str(source))
        excluded = [] if options.exclude == 'none' else decode_nodes(proto, options.exclude == 'head')
        produced = pathlib.Path(tmp) / 'int8.onnx'
        quantize_static(str(source), str(produced), _calibration_reader(images, meta.imgsz, meta.input_name),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=options.reduce_range,
                        activation_type=activation_type, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded, calibrate_method=method, extra_options=extra)
        quantized = onnx.load(str(produced))
        agreement = _agreement(onnx_path, produced, images[:4], meta, np)
    inputs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in quantized.graph.input]
    if inputs != [(meta.input_name, [1, 3, *meta.imgsz])]:
        raise ExportError(f'{out_onnx}: input {inputs}, expected {meta.input_name} [1, 3, {meta.imgsz[0]}, '
                          f'{meta.imgsz[1]}]')
    quantization = {
        'source': onnx_path.name,
        'source_sha256': file_sha256(onnx_path),
        'tool': 'onnxruntime.quantization.quantize_static', 'onnxruntime': onnxruntime.__version__,
        'format': 'QDQ', 'weights': 'int8, per channel', 'activations': options.activations,
        'reduce_range': options.reduce_range, 'preprocess': options.preprocess,
        'calibration': {'method': options.method, 'data': [_relative(r) for r in options.calib],
                        'split': options.split, 'images': len(images), 'seed': options.seed,
                        **({'percentile': options.percentile} if options.method == 'percentile' else {})},
        'float_nodes': {'exclude': options.exclude, 'count': len(excluded)},
        'agreement': agreement,
        'command': command,
    }
    data = {**data, 'precision': 'int8', 'quantization': quantization}
    del quantized.metadata_props[:]
    entry = quantized.metadata_props.add()
    entry.key, entry.value = 'train_fou', json.dumps(data, sort_keys=True)
    onnx.save(quantized, str(out_onnx))
    out_json = metadata_path_for(out_onnx)
    out_json.write_text(json.dumps(data, indent=2) + '\n')
    if meta.refiner is not None and out_dir.resolve() != onnx_path.parent.resolve():
        for path in (meta.refiner.model, meta.refiner.model.with_suffix('.json')):
            if path.is_file():
                shutil.copy2(path, out_dir / path.name)
    return out_onnx, out_json, quantization


def _agreement(fp32: pathlib.Path, int8: pathlib.Path, images, meta, np) -> dict:
    """Largest class-score and box differences of the two models' raw outputs on a few
    (calibration) images: a sanity check, not an accuracy measure (that is `evaluate`)."""
    import cv2  # noqa: PLC0415

    from train_fou.vision.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: PLC0415
    from train_fou.vision.preprocess import letterbox  # noqa: PLC0415
    a = OnnxRuntimeBackend(fp32, meta.input_name)
    b = OnnxRuntimeBackend(int8, meta.input_name)
    score = box = 0.0
    try:
        for path in images:
            tensor, _ = letterbox(cv2.imread(str(path), cv2.IMREAD_COLOR), meta.imgsz)
            x, y = np.asarray(a.infer(tensor))[0], np.asarray(b.infer(tensor))[0]
            score = max(score, float(np.abs(x[4:] - y[4:]).max()))
            confident = x[4:].max(axis=0) >= meta.conf_threshold  # boxes of detections only
            if confident.any():
                box = max(box, float(np.abs(x[:4, confident] - y[:4, confident]).max()))
    finally:
        a.close()
        b.close()
    return {'images': len(images), 'max_score_diff': round(score, 4),
            'max_box_diff_px_at_conf_threshold': round(box, 2)}
