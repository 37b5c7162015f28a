"""A detector = metadata + backend + pre/post-processing, timed per stage.

Used by the detector node, `train-fou detect` and `train-fou bench`, and by the
training workspace's evaluation. Not thread-safe: one detector per thread.
"""
from __future__ import annotations

import hashlib
import pathlib
import time
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from train_fou.vision.backends import AUTO, BackendChoice, open_backend
from train_fou.vision.errors import EngineLoadError, ModelMetadataError, ModelNotFoundError
from train_fou.vision.preprocess import Letterboxer, LetterboxInfo
from train_fou.vision.metadata import (INT8_SUFFIX, ModelMetadata, int8_model_path, load_metadata,
                                       metadata_path_for)
from train_fou.vision.postprocess import MAX_DETECTIONS, Detection, decode_yolov8
from train_fou.vision.refine import Refiner, merge_group_scores

ENGINE_SUFFIXES = ('.engine', '.plan')
#: the CPU backend takes uint8 and normalises in its graph (one DequantizeLinear, which ONNX Runtime
#: merges into an INT8 model's first QuantizeLinear); outputs bit-identical to the float letterbox.
#: Chosen by measurement (docs/performance.md). The refiner's crops stay float.
UINT8_INPUT = True


class ModelPaths(NamedTuple):
    onnx: pathlib.Path | None
    engine: pathlib.Path | None
    metadata: pathlib.Path
    #: <stem>.int8.onnx beside an FP32 ONNX model, when it exists (`auto` prefers it on the CPU)
    int8: pathlib.Path | None = None


def resolve_model_paths(model_path: str | pathlib.Path, engine_path: str | pathlib.Path | None = None,
                        metadata_path: str | pathlib.Path | None = None) -> ModelPaths:
    """Find the ONNX model, the TensorRT engine and the metadata file for `model_path`.

    `model_path` may name the .onnx or the .engine; the other one and the
    metadata (<stem>.json) are looked up next to it unless given, and so is the
    INT8 model (<stem>.int8.onnx) of an FP32 ONNX model. Raises
    ModelNotFoundError naming the path when no model file exists.
    """
    model = pathlib.Path(model_path)
    if model.suffix in ENGINE_SUFFIXES:
        engine = model
        onnx = model.with_suffix('.onnx')
        onnx = onnx if onnx.is_file() else None
    else:
        onnx = model
        engine = pathlib.Path(engine_path) if engine_path else model.with_suffix('.engine')
        if not engine.is_file() and not engine_path:
            engine = None
    has_onnx = onnx is not None and onnx.is_file()
    has_engine = engine is not None and engine.is_file()
    if not has_onnx and not has_engine:
        raise ModelNotFoundError(f'{model}: model file not found')
    metadata = pathlib.Path(metadata_path) if metadata_path else metadata_path_for(model)
    int8 = int8_model_path(onnx) if has_onnx and not onnx.stem.endswith(INT8_SUFFIX) else None
    return ModelPaths(onnx if has_onnx else None, engine if has_engine else engine, metadata,
                      int8 if int8 is not None and int8.is_file() else None)


def file_sha256(path: str | pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def check_int8_model(int8: pathlib.Path, fp32: pathlib.Path,
                     fp32_meta: ModelMetadata) -> tuple[ModelMetadata | None, str | None]:
    """The INT8 model's metadata when it may stand in for `fp32`, else (None, why not).

    It must have its own metadata (<stem>.int8.json) saying `precision: int8`, the FP32 model's
    classes, input size and input name, and name the sha256 of the very FP32 file it was
    quantised from: an FP32 model exported again without quantising again leaves a stale INT8
    file, which is then passed over (the FP32 model runs) with an error note.
    """
    try:
        meta = load_metadata(metadata_path_for(int8))
    except (ModelNotFoundError, ModelMetadataError) as err:
        return None, str(err)
    if meta.precision != 'int8':
        return None, f'{meta.source}: `precision` is {meta.precision!r}, not int8'
    same = ('names', 'imgsz', 'input_name')
    differ = [k for k in same if getattr(meta, k) != getattr(fp32_meta, k)]
    if differ:
        return None, f'{meta.source}: {", ".join(differ)} differ from {fp32_meta.source}'
    quantization = meta.extra.get('quantization')
    source = quantization.get('source_sha256') if isinstance(quantization, Mapping) else None
    if not isinstance(source, str):
        return None, f'{meta.source}: no `quantization.source_sha256` naming the FP32 model it was made from'
    if source != file_sha256(fp32):
        return None, (f'{int8.name} was quantised from another {fp32.name} (sha256 differs): quantise it '
                      f'again (python -m training quantize {fp32}) or remove it')
    return meta, None


class DetectionResult(NamedTuple):
    detections: list[Detection]
    info: LetterboxInfo
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


class Detector:
    """Letterbox -> backend.infer -> decode (-> refiner), on BGR uint8 images of any size."""

    def __init__(self, backend, metadata: ModelMetadata, conf_threshold: float | None = None,
                 iou_threshold: float | None = None, max_detections: int = MAX_DETECTIONS,
                 refiner: Refiner | None = None, precision: str | None = ''):
        if backend.input_hw is not None and tuple(backend.input_hw) != tuple(metadata.imgsz):
            raise EngineLoadError(
                f'model input is {backend.input_hw[0]}x{backend.input_hw[1]} (h x w) but {metadata.source} '
                f'says imgsz {list(metadata.imgsz)}')
        self.backend = backend
        self.metadata = metadata
        self.conf_threshold = metadata.conf_threshold if conf_threshold is None else conf_threshold
        self.iou_threshold = metadata.iou_threshold if iou_threshold is None else iou_threshold
        self.max_detections = max_detections
        #: what the backend takes: uint8 (the CPU's, normalised in its graph) or float32 0..1
        self.input_dtype = np.dtype(getattr(backend, 'input_dtype', np.float32))
        #: the backend's own input (detect, the node's worker); `preprocess` keeps the float tensor
        self.letterboxer = Letterboxer(metadata.imgsz, self.input_dtype)
        self._float_letterboxer: Letterboxer | None = None
        self.refiner = refiner
        #: 'fp32' or 'int8' (the ONNX model that runs), None for a TensorRT engine
        self.precision = metadata.precision if precision == '' else precision

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def description(self) -> str:
        """The backend and the model's number format: `onnxruntime-cpu int8`, `tensorrt`."""
        return f'{self.backend.name} {self.precision}' if self.precision else self.backend.name

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """The float32 0..1 network tensor, whatever the backend takes (`infer` accepts it; a caller
        may feed it to another network, as the training smoke feeds PyTorch). Not the fast path."""
        if self.input_dtype == np.float32:
            return self.letterboxer(image_bgr)
        if self._float_letterboxer is None:
            self._float_letterboxer = Letterboxer(self.metadata.imgsz)
        return self._float_letterboxer(image_bgr)

    def prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """The backend's own input (`input_dtype`): what `detect` and the node run, and the bench times."""
        return self.letterboxer(image_bgr)

    def infer(self, tensor: np.ndarray, info: LetterboxInfo,
              image_bgr: np.ndarray | None = None) -> tuple[list[Detection], float, float]:
        """Inference and decoding of a pre-processed tensor: (detections, inference_ms, postprocess_ms).

        With a refiner and the source image, the classes it applies to (speed
        limits and stop) are detected as one (their scores merged) and re-read
        from the image by the refiner (part of postprocess_ms).
        """
        t0 = time.perf_counter()
        output = self.backend.infer(tensor)
        t1 = time.perf_counter()
        meta = self.metadata
        refine = self.refiner is not None and image_bgr is not None
        if refine:
            output = merge_group_scores(output, self.refiner.group, meta.num_classes)
        detections = decode_yolov8(output, info, self.conf_threshold, self.iou_threshold, meta.num_classes,
                                   meta.names, self.max_detections)
        if refine and detections:
            detections = self.refiner.refine(image_bgr, detections)
        return detections, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    def detect(self, image_bgr: np.ndarray) -> DetectionResult:
        """Letterbox, infer and decode one BGR image, timing each stage."""
        t0 = time.perf_counter()
        tensor, info = self.letterboxer(image_bgr)
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        detections, inference_ms, postprocess_ms = self.infer(tensor, info, image_bgr)
        return DetectionResult(detections, info, preprocess_ms, inference_ms, postprocess_ms)

    def close(self) -> None:
        self.backend.close()
        if self.refiner is not None:
            self.refiner.close()


def open_detector(model_path: str | pathlib.Path, backend: str = AUTO,
                  engine_path: str | pathlib.Path | None = None,
                  metadata_path: str | pathlib.Path | None = None, conf_threshold: float | None = None,
                  iou_threshold: float | None = None, intra_op_threads: int = 0,
                  max_detections: int = MAX_DETECTIONS, refine: bool = True,
                  uint8_input: bool = UINT8_INPUT) -> tuple[Detector, BackendChoice]:
    """Resolve the model files, load the metadata and the backend(s), return a ready Detector.

    `backend='auto'` runs the INT8 model beside an FP32 ONNX model (<stem>.int8.onnx, see
    check_int8_model) on the CPU, after TensorRT and CUDA; a named backend runs the file named
    (`onnxruntime-cpu` on models/signs.onnx: FP32; on models/signs.int8.onnx: INT8). The
    metadata is then the INT8 model's own. When the metadata names a refiner (and `refine`), its
    classifier is opened on the same kind of backend: `<refiner>.engine` beside its ONNX file is
    used by TensorRT, the ONNX file otherwise (always FP32). `uint8_input`: the CPU backend takes
    the letterbox's bytes and normalises them in its graph (faster; the GPUs' backends take float).
    """
    paths = resolve_model_paths(model_path, engine_path, metadata_path)
    metadata = load_metadata(paths.metadata)
    int8_meta = int8_problem = None
    if backend == AUTO and paths.int8 is not None and paths.onnx is not None:
        int8_meta, int8_problem = check_int8_model(paths.int8, paths.onnx, metadata)
    choice = open_backend(backend, paths.onnx, paths.engine, metadata.input_name, metadata.imgsz,
                          intra_op_threads, int8_path=paths.int8 if int8_meta is not None else None,
                          int8_problem=int8_problem, onnx_precision=metadata.precision,
                          uint8_input=uint8_input)
    if int8_meta is not None and choice.model == paths.int8:
        metadata = int8_meta
    refiner = None
    try:
        if refine and metadata.refiner is not None:
            refiner = open_refiner(metadata, backend)
        detector = Detector(choice.backend, metadata, conf_threshold, iou_threshold, max_detections, refiner,
                            choice.precision)
    except BaseException:
        choice.backend.close()
        if refiner is not None:
            refiner.close()
        raise
    return detector, choice


def open_refiner(metadata: ModelMetadata, backend: str = AUTO) -> Refiner:
    """Load the metadata's refiner (crop classifier); a missing file names the path and the metadata."""
    spec = metadata.refiner
    if not spec.model.is_file():
        raise ModelNotFoundError(f'{spec.model}: refiner model not found (named by {metadata.source}); '
                                 'restore it or remove `refiner` from the metadata')
    engine = spec.model.with_suffix('.engine')
    # a tiny network: one thread avoids the thread pool's wake-up cost on every crop
    choice = open_backend(backend, spec.model, engine if engine.is_file() else None, 'images',
                          (spec.input_size, spec.input_size), intra_op_threads=1)
    try:
        return Refiner(choice.backend, spec, metadata.names, metadata.iou_threshold)
    except BaseException:
        choice.backend.close()
        raise
