"""Inference backends behind one interface, and the table that picks one.

`open_backend('auto', ...)` tries the backends fastest first (AUTO_ORDER) and
returns the first that loads, with one line saying which and why. A TensorRT
engine that does not deserialize (other TensorRT version or GPU) is reported
as an error note and the ONNX model is used instead when one is configured.
"""
from __future__ import annotations

import pathlib
from typing import NamedTuple
from collections.abc import Callable

from train_fou.vision.backends import onnxruntime_backend, tensorrt_backend
from train_fou.vision.backends.base import Backend
from train_fou.vision.errors import BackendUnavailableError, EngineLoadError, ModelNotFoundError

AUTO = 'auto'


class BackendSpec(NamedTuple):
    """How to check for and load one backend."""

    model_kind: str  # 'engine' or 'onnx': which model file it runs
    probe: Callable[[], str | None]  # None when usable, else why not
    load: Callable[..., Backend]  # load(path, input_name, input_hw, intra_op_threads)
    #: under `auto`, try the INT8 model beside the FP32 one first (the CPU's int8 kernels are the
    #: fast path there; a GPU runs the FP32 model or its engine)
    prefers_int8: bool = False
    #: load(...) of a backend taking the letterbox's uint8 bytes (normalised in the graph), used when
    #: the caller asks for `uint8_input`; None: this backend takes float32 only
    load_uint8: Callable[..., Backend] | None = None


def _load_ort(name: str, uint8_input: bool = False):
    def load(path, input_name, input_hw, intra_op_threads):
        return onnxruntime_backend.OnnxRuntimeBackend(path, input_name, name, intra_op_threads,
                                                      uint8_input=uint8_input)
    return load


def _load_trt(path, input_name, input_hw, intra_op_threads):
    return tensorrt_backend.TensorRTBackend(path, input_name, input_hw)


#: Backend name -> spec. Plugin table, not an if-chain.
BACKENDS: dict[str, BackendSpec] = {
    'tensorrt': BackendSpec('engine', tensorrt_backend.probe, _load_trt),
    'onnxruntime-cuda': BackendSpec('onnx', lambda: onnxruntime_backend.probe('onnxruntime-cuda'),
                                    _load_ort('onnxruntime-cuda')),
    'onnxruntime-cpu': BackendSpec('onnx', lambda: onnxruntime_backend.probe('onnxruntime-cpu'),
                                   _load_ort('onnxruntime-cpu'), prefers_int8=True,
                                   load_uint8=_load_ort('onnxruntime-cpu', uint8_input=True)),
}
#: Fastest first.
AUTO_ORDER = ('tensorrt', 'onnxruntime-cuda', 'onnxruntime-cpu')
CHOICES = (AUTO, *AUTO_ORDER)


class Note(NamedTuple):
    """Why a backend was not used; level 'error' for a model that failed to load."""

    backend: str
    level: str  # 'info' or 'error'
    message: str


class BackendChoice(NamedTuple):
    backend: Backend
    reason: str  # one line: which backend, why, what was skipped
    notes: tuple[Note, ...]
    model: pathlib.Path | None = None  # the file it runs
    #: 'fp32' or 'int8' for an ONNX model (as open_backend was told), None for a TensorRT engine
    precision: str | None = None


def _candidates(requested: str) -> tuple[str, ...]:
    if requested == AUTO:
        return AUTO_ORDER
    if requested == 'tensorrt':  # an engine that fails falls back to the ONNX model
        return AUTO_ORDER
    return (requested,)


def _attempts(requested: str, table: dict[str, BackendSpec], int8_considered: bool) -> list[tuple[str, str]]:
    """(backend, model kind) pairs in the order they are tried: under `auto`, the INT8 model
    first on a backend that prefers it, when one was found beside the FP32 model."""
    attempts = []
    for name in _candidates(requested):
        if requested == AUTO and int8_considered and table[name].prefers_int8:
            attempts.append((name, 'int8'))
        attempts.append((name, table[name].model_kind))
    return attempts


def open_backend(requested: str, onnx_path: str | pathlib.Path | None,
                 engine_path: str | pathlib.Path | None, input_name: str = 'images',
                 input_hw: tuple[int, int] | None = None, intra_op_threads: int = 0,
                 table: dict[str, BackendSpec] | None = None, int8_path: str | pathlib.Path | None = None,
                 int8_problem: str | None = None, onnx_precision: str = 'fp32',
                 uint8_input: bool = False) -> BackendChoice:
    """Load the requested backend ('auto' = fastest that works) on the configured model files.

    `int8_path`: the INT8 model beside the FP32 one, tried first under `auto` by a backend that
    prefers it (the CPU); `int8_problem`: why one that exists there cannot be used (an error note,
    the FP32 model runs). A named backend runs `onnx_path` as it is (`onnx_precision` says what it
    is, for the reason line). `uint8_input`: a backend that can (the CPU) is loaded to take the
    letterbox's uint8 bytes (its `input_dtype`); the others take float32 as always.
    Raises BackendUnavailableError (or ModelNotFoundError / EngineLoadError
    for an explicitly requested backend) when nothing can run the model.
    """
    table = BACKENDS if table is None else table
    if requested not in (AUTO, *table):
        raise ValueError(f'unknown backend {requested!r}; choose one of: {", ".join((AUTO, *table))}')
    paths = {'onnx': pathlib.Path(onnx_path) if onnx_path else None,
             'engine': pathlib.Path(engine_path) if engine_path else None,
             'int8': pathlib.Path(int8_path) if int8_path else None}
    precisions = {'onnx': onnx_precision, 'engine': None, 'int8': 'int8'}
    notes: list[Note] = []
    for name, kind in _attempts(requested, table, paths['int8'] is not None or int8_problem is not None):
        spec = table[name]
        label = f'{name} int8' if precisions[kind] == 'int8' else name
        explicit = name == requested and requested != 'tensorrt'
        path = paths[kind]
        if kind == 'int8' and int8_problem is not None:
            notes.append(Note(label, 'error', int8_problem))
            continue
        if path is None or not path.is_file():
            message = f'no {spec.model_kind} file' + (f' at {path}' if path else ' configured')
            if explicit:
                raise ModelNotFoundError(f'{path}: model file not found' if path else f'{name}: {message}')
            notes.append(Note(label, 'info', message))
            continue
        unavailable = spec.probe()
        if unavailable is not None:
            if explicit:
                raise BackendUnavailableError(f'backend {name} is not available: {unavailable}')
            notes.append(Note(label, 'info', unavailable))
            continue
        try:
            load = spec.load_uint8 if uint8_input and spec.load_uint8 is not None else spec.load
            backend = load(path, input_name, input_hw, intra_op_threads)
        except (EngineLoadError, BackendUnavailableError) as err:
            if explicit:
                raise
            notes.append(Note(label, 'error' if isinstance(err, EngineLoadError) else 'info', str(err)))
            continue
        why = 'requested' if name == requested else (
            'fastest available' if requested == AUTO else f'fallback for {requested}')
        skipped = '; '.join(f'{n.backend}: ' + ('could not load its model (error above)' if n.level == 'error'
                                               else n.message) for n in notes)
        reason = f'{label} ({why}, {path})' + (f'; skipped {skipped}' if skipped else '')
        return BackendChoice(backend, reason, tuple(notes), path, precisions[kind])
    detail = '; '.join(f'{n.backend}: {n.message}' for n in notes) or 'no candidates'
    raise BackendUnavailableError(f'no backend can run the model ({detail})')


__all__ = ['AUTO', 'AUTO_ORDER', 'BACKENDS', 'Backend', 'BackendChoice', 'BackendSpec', 'CHOICES', 'Note',
           'open_backend']
