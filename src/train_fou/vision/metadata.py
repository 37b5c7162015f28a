"""The model's metadata file (models/<name>.json): label names, input size, thresholds.

The training workspace writes it next to the exported ONNX model; the detector
reads label names and the input size from it, never from code. Example::

    {"format": "yolov8", "names": ["speed_limit_30", "speed_limit_50", "stop", "danger"],
     "imgsz": [416, 416], "input_name": "images",
     "conf_threshold": 0.25, "iou_threshold": 0.45, "data_hash": "..."}

`imgsz` is (height, width). An optional `refiner` names the speed-limit crop
classifier (see `train_fou.vision.refine`). Unknown fields are kept in `extra`.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from train_fou.vision.errors import ModelMetadataError, ModelNotFoundError
from train_fou.vision.refine import RefinerSpec, parse_refiner

#: Output layouts the post-processing understands.
SUPPORTED_FORMATS = ('yolov8',)
#: Number formats of an ONNX model file (`precision`; absent: fp32). An int8 file is the FP32
#: model statically quantised (QDQ) by `python -m training quantize`, named <stem>.int8.onnx.
PRECISIONS = ('fp32', 'int8')
INT8_SUFFIX = '.int8'


@dataclass(frozen=True)
class ModelMetadata:
    """What the detector needs to know about a model besides its weights."""

    names: tuple[str, ...]
    imgsz: tuple[int, int]  # (height, width) of the network input
    format: str = 'yolov8'
    input_name: str = 'images'
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    source: str = ''
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: the speed-limit crop classifier that re-reads the detector's limits (vision.refine), if any
    refiner: RefinerSpec | None = None
    #: number format of the ONNX file (PRECISIONS); an int8 file's `quantization` entry (in
    #: `extra`) names the FP32 model it came from and its calibration
    precision: str = 'fp32'

    @property
    def num_classes(self) -> int:
        return len(self.names)


def metadata_path_for(model_path: str | pathlib.Path) -> pathlib.Path:
    """models/signs.onnx (or .engine) -> models/signs.json."""
    return pathlib.Path(model_path).with_suffix('.json')


def int8_model_path(onnx_path: str | pathlib.Path) -> pathlib.Path:
    """models/signs.onnx -> models/signs.int8.onnx (where the quantiser writes the INT8 model)."""
    path = pathlib.Path(onnx_path)
    return path.with_name(f'{path.stem}{INT8_SUFFIX}.onnx')


def _threshold(path: pathlib.Path, data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ModelMetadataError(f'{path}: `{key}` must be a number in [0, 1], got {value!r}')
    return float(value)


def parse_metadata(data: Any, path: str | pathlib.Path = '<metadata>') -> ModelMetadata:
    """Validate a decoded metadata mapping; errors name the file and the bad field."""
    path = pathlib.Path(path)
    if not isinstance(data, Mapping):
        raise ModelMetadataError(f'{path}: expected a JSON object, got {type(data).__name__}')
    fmt = data.get('format', 'yolov8')
    if fmt not in SUPPORTED_FORMATS:
        raise ModelMetadataError(
            f'{path}: unsupported `format` {fmt!r}; supported: {", ".join(SUPPORTED_FORMATS)}')
    names = data.get('names')
    if isinstance(names, Mapping):  # ultralytics writes {0: "a", 1: "b"}
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise ModelMetadataError(f'{path}: `names` keys must be class indices') from None
        if keys != list(range(len(keys))):
            raise ModelMetadataError(f'{path}: `names` indices must be 0..{len(keys) - 1}, got {keys}')
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if (not isinstance(names, (list, tuple)) or not names
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise ModelMetadataError(f'{path}: `names` must be a non-empty list of label strings, got {names!r}')
    if len(set(names)) != len(names):
        raise ModelMetadataError(f'{path}: `names` has duplicates: {list(names)}')
    imgsz = data.get('imgsz')
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        imgsz = [imgsz, imgsz]
    if (not isinstance(imgsz, (list, tuple)) or len(imgsz) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in imgsz)):
        raise ModelMetadataError(f'{path}: `imgsz` must be [height, width] in pixels, got {imgsz!r}')
    input_name = data.get('input_name', 'images')
    if not isinstance(input_name, str) or not input_name:
        raise ModelMetadataError(f'{path}: `input_name` must be a non-empty string, got {input_name!r}')
    refiner = data.get('refiner')
    refiner = None if refiner is None else parse_refiner(refiner, path, names)
    precision = data.get('precision', 'fp32')
    if precision not in PRECISIONS:
        raise ModelMetadataError(f'{path}: `precision` must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    known = {'format', 'names', 'imgsz', 'input_name', 'conf_threshold', 'iou_threshold', 'refiner', 'precision'}
    return ModelMetadata(
        names=tuple(names), imgsz=(int(imgsz[0]), int(imgsz[1])), format=fmt, input_name=input_name,
        conf_threshold=_threshold(path, data, 'conf_threshold', 0.25),
        iou_threshold=_threshold(path, data, 'iou_threshold', 0.45),
        source=str(path), extra={k: v for k, v in data.items() if k not in known}, refiner=refiner,
        precision=precision)


def load_metadata(path: str | pathlib.Path) -> ModelMetadata:
    """Read and validate a metadata JSON file; ModelMetadataError names the file."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise ModelNotFoundError(f'{path}: model metadata file not found') from None
    except (OSError, UnicodeDecodeError) as err:
        raise ModelMetadataError(f'{path}: cannot read model metadata: {err}') from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelMetadataError(
            f'{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}') from err
    return parse_metadata(data, path)
