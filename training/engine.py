"""ONNX -> TensorRT engine (FP16, or INT8 with an entropy calibrator fed from dataset images), on the target.

Run on the Jetson (JetPack ships TensorRT's Python bindings; pycuda as for the
detector's TensorRT backend)::

    python -m training engine models/signs.onnx --precision fp16
    python -m training engine models/signs.onnx --precision int8 --calib training/datasets/signs/synth/images/val

writes `models/signs.<precision>.engine` and `models/signs.<precision>.engine.json`:
TensorRT version, GPU, compute capability, precision, the ONNX file's sha256,
input size, calibration set. An engine only runs with the TensorRT version and
GPU that built it; the JSON says which. Calibration images go through the
detector's own letterbox (train_fou.vision.preprocess), so INT8 ranges are
measured on the pixels the detector feeds.

Without TensorRT (any x86 dev machine) `build_engine` fails with one line saying so;
argument checks, calibration batches and the JSON writer work everywhere.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import pathlib
from dataclasses import dataclass
from collections.abc import Iterator

import numpy as np

from train_fou.errors import TrainFouError
from training.dataset import IMAGE_SUFFIXES

PRECISIONS = ('fp32', 'fp16', 'int8')


class EngineError(TrainFouError, RuntimeError):
    """An engine cannot be built (bad arguments, TensorRT missing, parse or build failure)."""


@dataclass(frozen=True)
class EngineOptions:
    onnx: pathlib.Path
    out: pathlib.Path | None = None        # default <onnx stem>.<precision>.engine next to the ONNX
    precision: str = 'fp16'
    calib_images: pathlib.Path | None = None  # INT8 only: a folder of images
    calib_count: int = 256                  # INT8 only: images fed, one per batch (the model's batch is 1)
    workspace_mib: int = 1024


def engine_path(opts: EngineOptions) -> pathlib.Path:
    return opts.out or opts.onnx.with_name(f'{opts.onnx.stem}.{opts.precision}.engine')


def calibration_images(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in pathlib.Path(folder).rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)


def validate(opts: EngineOptions) -> None:
    """EngineError naming the bad argument; nothing here needs TensorRT."""
    if opts.precision not in PRECISIONS:
        raise EngineError(f'precision {opts.precision!r} not supported; choose one of {", ".join(PRECISIONS)}')
    if not opts.onnx.is_file():
        raise EngineError(f'{opts.onnx}: ONNX model not found')
    if opts.workspace_mib < 64:
        raise EngineError(f'workspace_mib {opts.workspace_mib} is too small (>= 64)')
    if opts.precision == 'int8':
        if opts.calib_images is None:
            raise EngineError('int8 needs calibration images: pass --calib FOLDER (e.g. a dataset images/val)')
        if not opts.calib_images.is_dir():
            raise EngineError(f'{opts.calib_images}: calibration folder not found')
        if opts.calib_count < 1:
            raise EngineError(f'calibration needs >= 1 image, got calib_count {opts.calib_count}')
        if not calibration_images(opts.calib_images):
            raise EngineError(f'{opts.calib_images}: no images ({", ".join(IMAGE_SUFFIXES)}) for calibration')
    elif opts.calib_images is not None:
        raise EngineError(f'--calib is only used for int8, not {opts.precision}')


def calibration_batches(images: list[pathlib.Path], input_hw: tuple[int, int], batch_size: int,
                        max_batches: int) -> Iterator[np.ndarray]:
    """Contiguous float32 Bx3xHxW batches, letterboxed like the detector; a short last batch is dropped."""
    import cv2  # noqa: PLC0415
    from train_fou.vision.preprocess import letterbox  # noqa: PLC0415
    batch: list[np.ndarray] = []
    produced = 0
    for path in images:
        if produced >= max_batches:
            return
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EngineError(f'{path}: unreadable calibration image')
        tensor, _info = letterbox(bgr, input_hw)
        batch.append(tensor[0])
        if len(batch) == batch_size:
            yield np.ascontiguousarray(np.stack(batch), dtype=np.float32)
            batch = []
            produced += 1


def engine_info(opts: EngineOptions, trt_version: str, gpu: str, compute_capability: str,
                input_hw: tuple[int, int], calibration: dict | None) -> dict:
    digest = hashlib.sha256(opts.onnx.read_bytes()).hexdigest()
    return {
        'engine': engine_path(opts).name,
        'onnx': opts.onnx.name,
        'onnx_sha256': digest,
        'precision': opts.precision,
        'tensorrt_version': trt_version,
        'gpu': gpu,
        'compute_capability': compute_capability,
        'imgsz': list(input_hw),
        'calibration': calibration,
        'built_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }


def write_engine_info(engine: pathlib.Path, info: dict) -> pathlib.Path:
    path = engine.with_name(engine.name + '.json')
    path.write_text(json.dumps(info, indent=2) + '\n')
    return path


def import_tensorrt():
    """(tensorrt, pycuda.driver); EngineError with one line when they are missing."""
    try:
        trt = importlib.import_module('tensorrt')
    except ImportError:
        raise EngineError('TensorRT is not installed here: build engines on the Jetson '
                          '(JetPack: python3-libnvinfer) or a machine with TensorRT and an NVIDIA GPU') from None
    try:
        cuda = importlib.import_module('pycuda.driver')
    except ImportError:
        raise EngineError('pycuda is not installed here (pip install pycuda): needed to feed INT8 calibration '
                          'and to read the GPU name') from None
    return trt, cuda


def _calibrator(trt, cuda, batches: list[np.ndarray], cache: pathlib.Path):
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = iter(batches)
            self.device = cuda.mem_alloc(batches[0].nbytes)
            self.size = batches[0].shape[0]

        def get_batch_size(self):
            return self.size

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            cuda.memcpy_htod(self.device, batch)
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data):
            cache.write_bytes(bytes(data))
    return EntropyCalibrator()


def build_engine(opts: EngineOptions) -> dict:
    """Build and write the engine and its JSON; returns the JSON's content."""
    from train_fou.vision.metadata import load_metadata, metadata_path_for  # noqa: PLC0415
    validate(opts)
    meta = load_metadata(metadata_path_for(opts.onnx))
    input_hw = tuple(meta.imgsz)
    trt, cuda = import_tensorrt()
    cuda.init()
    device = cuda.Device(0)
    context = device.make_context()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH'):  # TensorRT 8.x
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(opts.onnx.read_bytes()):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f'{opts.onnx}: TensorRT cannot parse the ONNX model: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mib << 20)
        calibration = None
        if opts.precision in ('fp16', 'int8'):
            config.set_flag(trt.BuilderFlag.FP16)  # int8 layers fall back to fp16, not fp32
        if opts.precision == 'int8':
            images = calibration_images(opts.calib_images)
            batches = list(calibration_batches(images, input_hw, 1, opts.calib_count))
            cache = engine_path(opts).with_suffix('.calib')
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = _calibrator(trt, cuda, batches, cache)
            input_shape = tuple(network.get_input(0).shape)
            if input_shape != (1, 3, *input_hw):
                raise EngineError(f'{opts.onnx}: input shape {input_shape}, expected static (1, 3, {input_hw[0]}, '
                                  f'{input_hw[1]}) as the model contract says')
            calibration = {'images': str(opts.calib_images), 'count': len(batches), 'algorithm': 'entropy2'}
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(f'TensorRT failed to build a {opts.precision} engine from {opts.onnx} '
                              '(see its log above)')
        out = engine_path(opts)
        out.write_bytes(bytes(serialized))
        major, minor = device.compute_capability()
        info = engine_info(opts, trt.__version__, device.name(), f'{major}.{minor}', input_hw, calibration)
        write_engine_info(out, info)
        return info
    finally:
        context.pop()
