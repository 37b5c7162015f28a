"""ONNX Runtime backends: the CUDA execution provider and the CPU."""
from __future__ import annotations

import pathlib

import numpy as np

from train_fou.vision.errors import BackendUnavailableError, EngineLoadError, ModelNotFoundError

PROVIDERS = {
    'onnxruntime-cuda': ['CUDAExecutionProvider', 'CPUExecutionProvider'],
    'onnxruntime-cpu': ['CPUExecutionProvider'],
}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailableError(f'onnxruntime is not importable ({err})') from err
    return onnxruntime


def probe(name: str) -> str | None:
    """None when backend `name` can run here, else the reason it cannot."""
    try:
        ort = import_onnxruntime()
    except BackendUnavailableError as err:
        return str(err)
    wanted = PROVIDERS[name][0]
    available = ort.get_available_providers()
    if wanted not in available:
        return f'onnxruntime {ort.__version__} has no {wanted} (available: {", ".join(available)})'
    return None


def _static_hw(shape) -> tuple[int, int] | None:
    if len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


class OnnxRuntimeBackend:
    """An InferenceSession on one model; `infer` is the bare `session.run` call.

    The CPU thread pool does not spin-wait between runs (`allow_spinning=False`):
    frames arrive at the camera's rate, far apart next to a thread's wake-up, and on
    a Jetson or a laptop shared with other work spinning threads only steal the cores
    the next run needs (the same model ran markedly slower with spinning on:
    docs/performance.md).
    """

    def __init__(self, model_path: str | pathlib.Path, input_name: str = 'images',
                 name: str = 'onnxruntime-cpu', intra_op_threads: int = 0, allow_spinning: bool = False):
        if name not in PROVIDERS:
            raise ValueError(f'unknown onnxruntime backend {name!r}; known: {", ".join(PROVIDERS)}')
        path = pathlib.Path(model_path)
        if not path.is_file():
            raise ModelNotFoundError(f'{path}: ONNX model file not found')
        reason = probe(name)
        if reason is not None:
            raise BackendUnavailableError(reason)
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads > 0:
            options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3
        options.add_session_config_entry('session.intra_op.allow_spinning', '1' if allow_spinning else '0')
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=PROVIDERS[name])
        except Exception as err:  # onnxruntime raises its own pybind exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EngineLoadError(f'{path}: onnxruntime cannot load the model: {first}') from err
        if name == 'onnxruntime-cuda' and 'CUDAExecutionProvider' not in self.session.get_providers():
            raise BackendUnavailableError(f'{path}: the CUDA execution provider did not initialise')
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name not in inputs:
            raise EngineLoadError(
                f'{path}: model has no input `{input_name}`; its inputs: {", ".join(inputs)}')
        self.name = name
        self.path = path
        self.input_name = input_name
        self.input_hw = _static_hw(inputs[input_name].shape)
        self._outputs = [self.session.get_outputs()[0].name]

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(self._outputs, {self.input_name: tensor})[0]

    def close(self) -> None:
        self.session = None
