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


def _load_ort(name: str):
    def load(path, input_name, input_hw, intra_op_threads):
        return onnxruntime_backend.OnnxRuntimeBackend(path, input_name, name, intra_op_threads)
    return load


def _load_trt(path, input_name, input_hw, intra_op_threads):
    return tensorrt_backend.TensorRTBackend(path, input_name, input_hw)


#: Backend name -> spec. Plugin table, not an if-chain.
BACKENDS: dict[str, BackendSpec] = {
    'tensorrt': BackendSpec('engine', tensorrt_backend.probe, _load_trt),
    'onnxruntime-cuda': BackendSpec('onnx', lambda: onnxruntime_backend.probe('onnxruntime-cuda'),
                                    _load_ort('onnxruntime-cuda')),
    'onnxruntime-cpu': BackendSpec('onnx', lambda: onnxruntime_backend.probe('onnxruntime-cpu'),
                                   _load_ort('onnxruntime-cpu')),
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


def _candidates(requested: str) -> tuple[str, ...]:
    if requested == AUTO:
        return AUTO_ORDER
    if requested == 'tensorrt':  # an engine that fails falls back to the ONNX model
        return AUTO_ORDER
    return (requested,)


def open_backend(requested: str, onnx_path: str | pathlib.Path | None,
                 engine_path: str | pathlib.Path | None, input_name: str = 'images',
                 input_hw: tuple[int, int] | None = None, intra_op_threads: int = 0,
                 table: dict[str, BackendSpec] | None = None) -> BackendChoice:
    """Load the requested backend ('auto' = fastest that works) on the configured model files.

    Raises BackendUnavailableError (or ModelNotFoundError / EngineLoadError for an
    explicitly requested backend) when nothing can run the model.
    """
    table = BACKENDS if table is None else table
    if requested not in (AUTO, *table):
        raise ValueError(f'unknown backend {requested!r}; choose one of: {", ".join((AUTO, *table))}')
    paths = {'onnx': pathlib.Path(onnx_path) if onnx_path else None,
             'engine': pathlib.Path(engine_path) if engine_path else None}
    notes: list[Note] = []
    for name in _candidates(requested):
        spec = table[name]
        explicit = name == requested and requested != 'tensorrt'
        path = paths[spec.model_kind]
        if path is None or not path.is_file():
            message = f'no {spec.model_kind} file' + (f' at {path}' if path else ' configured')
            if explicit:
                raise ModelNotFoundError(f'{path}: model file not found' if path else f'{name}: {message}')
            notes.append(Note(name, 'info', message))
            continue
        unavailable = spec.probe()
        if unavailable is not None:
            if explicit:
                raise BackendUnavailableError(f'backend {name} is not available: {unavailable}')
            notes.append(Note(name, 'info', unavailable))
            continue
        try:
            backend = spec.load(path, input_name, input_hw, intra_op_threads)
        except (EngineLoadError, BackendUnavailableError) as err:
            if explicit:
                raise
            notes.append(Note(name, 'error' if isinstance(err, EngineLoadError) else 'info', str(err)))
            continue
        why = 'requested' if name == requested else (
            'fastest available' if requested == AUTO else f'fallback for {requested}')
        skipped = '; '.join(f'{n.backend}: ' + ('could not load its model (error above)' if n.level == 'error'
                                               else n.message) for n in notes)
        reason = f'{name} ({why}, {path})' + (f'; skipped {skipped}' if skipped else '')
        return BackendChoice(backend, reason, tuple(notes))
    detail = '; '.join(f'{n.backend}: {n.message}' for n in notes) or 'no candidates'
    raise BackendUnavailableError(f'no backend can run the model ({detail})')


__all__ = ['AUTO', 'AUTO_ORDER', 'BACKENDS', 'Backend', 'BackendChoice', 'BackendSpec', 'CHOICES', 'Note',
           'open_backend']
