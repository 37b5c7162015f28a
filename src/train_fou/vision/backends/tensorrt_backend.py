"""TensorRT backend for `.engine` files (TensorRT 8.6 and 10 Python APIs, CUDA via pycuda).

The CUDA context is created by, pushed on and popped from the thread that
constructs the backend: construct, infer and close from the same thread (the
detector's inference thread). An engine built for another TensorRT version or
another GPU does not deserialize: that is an EngineLoadError, so callers can
fall back to the ONNX model.
"""
from __future__ import annotations

import importlib
import pathlib

import numpy as np

from train_fou.vision.errors import BackendUnavailableError, EngineLoadError, ModelNotFoundError

NAME = 'tensorrt'


def import_tensorrt():
    """(tensorrt, pycuda.driver) or BackendUnavailableError naming what is missing."""
    try:
        trt = importlib.import_module('tensorrt')
    except ImportError as err:
        raise BackendUnavailableError(f'tensorrt is not importable ({err})') from err
    try:
        cuda = importlib.import_module('pycuda.driver')
    except ImportError as err:
        raise BackendUnavailableError(f'pycuda is not importable ({err})') from err
    return trt, cuda


def probe() -> str | None:
    """None when TensorRT can run here, else the reason it cannot."""
    try:
        _trt, cuda = import_tensorrt()
        cuda.init()
        if cuda.Device.count() < 1:
            return 'no CUDA device'
    except BackendUnavailableError as err:
        return str(err)
    except Exception as err:  # pycuda.driver.Error and friends
        return f'CUDA is not usable ({err})'
    return None


class _IoTensor:
    def __init__(self, cuda, name: str, shape, dtype):
        self.name = name
        self.shape = tuple(int(v) for v in shape)
        self.host = cuda.pagelocked_empty(int(np.prod(self.shape)), dtype=dtype)
        self.device = cuda.mem_alloc(self.host.nbytes)


class TensorRTBackend:
    """One deserialized engine, one execution context, pinned host and device buffers."""

    name = NAME

    def __init__(self, engine_path: str | pathlib.Path, input_name: str = 'images',
                 input_hw: tuple[int, int] | None = None, device: int = 0):
        path = pathlib.Path(engine_path)
        if not path.is_file():
            raise ModelNotFoundError(f'{path}: TensorRT engine file not found')
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        try:
            cuda.init()
            self._context = cuda.Device(device).make_context()
        except Exception as err:
            raise BackendUnavailableError(f'cannot create a CUDA context on device {device}: {err}') from err
        try:
            self._load(path, input_name, input_hw)
        except BaseException:
            self._free_buffers()  # an engine refused after its buffers were allocated (extra inputs)
            self._release_context()
            raise

    def _load(self, path: pathlib.Path, input_name: str, input_hw) -> None:
        trt, cuda = self._trt, self._cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        try:
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
        except Exception as err:
            engine, cause = None, f': {err}'
        else:
            cause = ''
        if engine is None:
            raise EngineLoadError(
                f'{path}: TensorRT {getattr(trt, "__version__", "?")} cannot deserialize this engine'
                f'{cause} (built for another TensorRT version or GPU?); rebuild it on this device')
        self._runtime, self._engine = runtime, engine
        self._exec = engine.create_execution_context()
        if self._exec is None:
            raise EngineLoadError(f'{path}: TensorRT could not create an execution context')
        self._stream = cuda.Stream()
        self._v3 = hasattr(engine, 'num_io_tensors') and hasattr(self._exec, 'execute_async_v3')
        names = self._tensor_names()
        if input_name not in names:
            raise EngineLoadError(f'{path}: engine has no input `{input_name}`; its tensors: {", ".join(names)}')
        inputs = [n for n in names if self._is_input(n)]
        outputs = [n for n in names if not self._is_input(n)]
        if not outputs:
            raise EngineLoadError(f'{path}: engine has no output tensor')
        shape = list(self._shape(input_name))
        if any(v < 0 for v in shape):  # dynamic: fix batch 1 and the metadata size
            if input_hw is None:
                raise EngineLoadError(f'{path}: engine input `{input_name}` is dynamic and no input size is known')
            shape = [1, 3, int(input_hw[0]), int(input_hw[1])]
            self._set_input_shape(input_name, shape)
        self.input_hw = (int(shape[2]), int(shape[3]))
        self._input = _IoTensor(cuda, input_name, shape, trt.nptype(self._dtype(input_name)))
        self._outputs = [_IoTensor(cuda, n, self._shape(n, context=True), trt.nptype(self._dtype(n)))
                         for n in outputs]
        self._others = [n for n in inputs if n != input_name]
        if self._others:
            raise EngineLoadError(f'{path}: engine has extra inputs {self._others}; expected only `{input_name}`')
        if self._v3:
            for tensor in (self._input, *self._outputs):
                self._exec.set_tensor_address(tensor.name, int(tensor.device))
        else:
            self._bindings = [0] * engine.num_bindings
            for tensor in (self._input, *self._outputs):
                self._bindings[engine.get_binding_index(tensor.name)] = int(tensor.device)
        self.path = path

    # TensorRT >= 8.5 (8.6, 10): named I/O tensors; older 8.x: bindings.
    def _tensor_names(self) -> list[str]:
        engine = self._engine
        if self._v3:
            return [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [engine.get_binding_name(i) for i in range(engine.num_bindings)]

    def _is_input(self, name: str) -> bool:
        engine = self._engine
        if self._v3:
            return engine.get_tensor_mode(name) == self._trt.TensorIOMode.INPUT
        return engine.binding_is_input(engine.get_binding_index(name))

    def _shape(self, name: str, context: bool = False):
        if self._v3:
            return (self._exec if context else self._engine).get_tensor_shape(name)
        index = self._engine.get_binding_index(name)
        return self._exec.get_binding_shape(index) if context else self._engine.get_binding_shape(index)

    def _dtype(self, name: str):
        if self._v3:
            return self._engine.get_tensor_dtype(name)
        return self._engine.get_binding_dtype(self._engine.get_binding_index(name))

    def _set_input_shape(self, name: str, shape) -> None:
        if self._v3:
            self._exec.set_input_shape(name, shape)
        else:
            self._exec.set_binding_shape(self._engine.get_binding_index(name), shape)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        cuda, stream = self._cuda, self._stream
        np.copyto(self._input.host.reshape(self._input.shape), tensor, casting='same_kind')
        cuda.memcpy_htod_async(self._input.device, self._input.host, stream)
        if self._v3:
            self._exec.execute_async_v3(stream.handle)
        else:
            self._exec.execute_async_v2(self._bindings, stream.handle)
        first = self._outputs[0]
        cuda.memcpy_dtoh_async(first.host, first.device, stream)
        stream.synchronize()
        return first.host.reshape(first.shape)

    def _release_context(self) -> None:
        context, self._context = getattr(self, '_context', None), None
        if context is not None:
            try:
                context.pop()
            finally:
                context.detach()

    def _free_buffers(self) -> None:
        """Free the device buffers while the context is still current (before it is popped)."""
        tensors = (getattr(self, '_input', None), *getattr(self, '_outputs', ()))
        self._input, self._outputs = None, []
        for tensor in tensors:
            if tensor is not None:
                tensor.device.free()

    def close(self) -> None:
        self._free_buffers()
        self._exec = self._engine = self._runtime = None
        self._release_context()
