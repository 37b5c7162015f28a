"""Export trained weights to the model contract: models/<name>.onnx + models/<name>.json.

ONNX: ultralytics YOLOv8 detect export, static 1x3xHxW input `images` (RGB 0..1),
output 1x(4+nc)xN, opset pinned, no NMS in the graph. The JSON next to it
(read by train_fou.vision.metadata) holds labels, input size, thresholds,
opset, the training data hash and the training config; the same JSON is also
stored in the ONNX file's metadata_props under `train_fou`.
"""
from __future__ import annotations

import json
import pathlib
import shutil
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


def export_onnx(weights: pathlib.Path, out_dir: pathlib.Path, name: str, imgsz: int, opset: int,
                data_hash: str, training: Mapping[str, Any], conf_threshold: float = 0.25,
                iou_threshold: float = 0.45) -> tuple[pathlib.Path, pathlib.Path]:
    """Export `weights` to out_dir/<name>.onnx and write out_dir/<name>.json; returns both paths."""
    offline()
    import onnx  # noqa: PLC0415
    from ultralytics import YOLO  # noqa: PLC0415

    model = YOLO(str(weights))
    names = [model.names[i] for i in sorted(model.names)]
    if names != list(CLASS_NAMES):
        raise ExportError(f'{weights}: classes {names} are not the model contract {list(CLASS_NAMES)}')
    produced = pathlib.Path(model.export(format='onnx', imgsz=imgsz, opset=opset, dynamic=False, simplify=False,
                                         nms=False, batch=1, device='cpu'))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f'{name}.onnx'
    meta = {
        'format': 'yolov8',
        'names': names,
        'imgsz': [imgsz, imgsz],
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
    if inputs != [('images', [1, 3, imgsz, imgsz])]:
        raise ExportError(f'{produced}: input {inputs}, expected images [1, 3, {imgsz}, {imgsz}]')
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
