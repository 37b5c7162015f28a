"""A stand-in GPU: fake `pycuda.driver` and `tensorrt` modules over one FakeDevice (no GPU here).

The fakes keep CUDA's rules that a backend can break: nothing queued on a stream happens before
`stream.synchronize()`, device memory is freed in the context that allocated it, before that
context is popped and detached. `install_fake_gpu(monkeypatch)` puts them in sys.modules.
"""
from __future__ import annotations

import sys
import types

import numpy as np


class FakeCudaError(RuntimeError):
    """What pycuda.driver raises for a misused driver (here: a misused stand-in)."""


class FakeDevice:
    """The GPU's state as far as the backend can get it wrong: allocations, streams, contexts.

    Like CUDA, nothing queued on a stream happens before `stream.synchronize()`: a host buffer read
    before it holds whatever it held before (NaN here), and device memory must be freed while its
    context is current, before the context is popped and detached (what is still allocated then is
    leaked: a detector reloads its model in a long-running process).
    """

    def __init__(self, log):
        self.log = log
        self.allocations = {}      # address -> FakeDeviceMemory
        self.streams = {}          # handle -> stream
        self.context_stack = []
        self.leaked = []

    def current(self, what):
        if not self.context_stack:
            raise FakeCudaError(f'{what} without a current CUDA context')
        return self.context_stack[-1]


class FakeDeviceMemory:
    def __init__(self, gpu, nbytes):
        self.gpu = gpu
        self.context = gpu.current('mem_alloc')
        self.buffer = np.full(nbytes, 0xFF, np.uint8)   # uninitialised device memory: NaN as float32
        self.freed = False
        gpu.allocations[int(self)] = self
        gpu.log.append(f'alloc {nbytes}')

    def __int__(self):
        return id(self)

    def free(self):
        if self.freed:
            raise FakeCudaError('cuMemFree: freed twice')
        if self.gpu.current('free') is not self.context:
            raise FakeCudaError('cuMemFree: not in the context that allocated it')
        self.freed = True
        self.gpu.log.append('free')

    def data(self):
        if self.freed:
            raise FakeCudaError('use of freed device memory')
        return self.buffer


def fake_pycuda(gpu):
    driver = types.ModuleType('pycuda.driver')
    log = gpu.log

    class Context:
        def pop(self):
            if not gpu.context_stack or gpu.context_stack[-1] is not self:
                raise FakeCudaError('pop of a context that is not current')
            gpu.context_stack.pop()
            log.append('pop')

        def detach(self):
            if self in gpu.context_stack:
                raise FakeCudaError('detach of a context that is still current')
            gpu.leaked += [m for m in gpu.allocations.values() if m.context is self and not m.freed]
            log.append('detach')

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def make_context(self):
            context = Context()
            gpu.context_stack.append(context)
            log.append('make_context')
            return context

    class Stream:
        def __init__(self):
            gpu.current('Stream')
            self.handle = 1000 + len(gpu.streams)
            self.queue = []
            gpu.streams[self.handle] = self

        def synchronize(self):
            gpu.current('synchronize')
            queue, self.queue = self.queue, []
            for work in queue:
                work()
            log.append('sync')

    def stream_of(stream):
        if not isinstance(stream, Stream) or gpu.streams.get(stream.handle) is not stream:
            raise FakeCudaError(f'not a stream: {stream!r}')
        return stream

    def pagelocked_empty(n, dtype):
        host = np.empty(n, dtype)
        host.view(np.uint8)[:] = 0xFF   # not zeros: stale output is visible
        return host

    def htod(dev, host, stream):
        if dev.data().nbytes != host.nbytes:
            raise FakeCudaError(f'memcpy_htod: {host.nbytes} bytes into {dev.data().nbytes}')
        stream_of(stream).queue.append(lambda: dev.data().__setitem__(slice(None), host.view(np.uint8).ravel()))

    def dtoh(host, dev, stream):
        if dev.data().nbytes != host.nbytes:
            raise FakeCudaError(f'memcpy_dtoh: {dev.data().nbytes} bytes into {host.nbytes}')
        stream_of(stream).queue.append(lambda: host.view(np.uint8).__setitem__(slice(None), dev.data()))

    driver.init = lambda: None
    driver.Device, driver.Stream = Device, Stream
    driver.pagelocked_empty = pagelocked_empty
    driver.mem_alloc = lambda nbytes: FakeDeviceMemory(gpu, nbytes)
    driver.memcpy_htod_async, driver.memcpy_dtoh_async = htod, dtoh
    package = types.ModuleType('pycuda')
    package.driver = driver
    return package, driver


def anchors_for(h, w):
    """Output anchors of the fake network for an h x w input (one per 32 px cell, as a stride-32 head)."""
    return (h // 32) * (w // 32)


def fake_tensorrt(gpu, deserializes=True, v3=True, input_shape=(1, 3, 64, 96), dynamic=False, extra_inputs=()):
    """An engine with input `images` and output `output0` (1 x 8 x anchors): one box, class 2 scores
    twice the image's mean. `dynamic`: -1 in the engine's shapes until the context's input shape is set."""
    trt = types.ModuleType('tensorrt')
    trt.__version__ = '10.3.0' if v3 else '8.4.1'
    names = ['images', 'output0', *extra_inputs]
    inputs = {'images', *extra_inputs}

    def engine_shape(name):
        if name == 'output0':
            return (-1, 8, -1) if dynamic else (1, 8, anchors_for(*input_shape[2:]))
        return (-1, 3, -1, -1) if dynamic else input_shape

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class TensorIOMode:
        INPUT, OUTPUT = 'in', 'out'

    class Context:
        def __init__(self):
            self.addresses = {}
            self.input_shape = None if dynamic else tuple(input_shape)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def set_input_shape(self, name, shape):
            if name != 'images' or len(shape) != 4 or shape[1] != 3:
                raise FakeCudaError(f'set_input_shape({name}, {shape})')
            self.input_shape = tuple(int(v) for v in shape)
            return True

        def set_binding_shape(self, index, shape):
            return self.set_input_shape(names[index], shape)

        def get_tensor_shape(self, name):
            if self.input_shape is None:
                return engine_shape(name)
            if name == 'output0':
                return (1, 8, anchors_for(*self.input_shape[2:]))
            return self.input_shape

        def get_binding_shape(self, index):
            return self.get_tensor_shape(names[index])

        def _enqueue(self, addresses, stream_handle):
            stream = gpu.streams.get(stream_handle)
            if stream is None:
                raise FakeCudaError(f'enqueue on an unknown stream {stream_handle}')
            if self.input_shape is None:
                raise FakeCudaError('dynamic input shape not set before enqueue')   # TensorRT: enqueue fails
            missing = [n for n in names if not addresses.get(n)]
            if missing:
                raise FakeCudaError(f'no address for {missing}')
            shape = self.input_shape
            image_mem, out_mem = gpu.allocations[addresses['images']], gpu.allocations[addresses['output0']]

            def run():
                image = image_mem.data().view(np.float32)
                if image.size != int(np.prod(shape)):
                    raise FakeCudaError(f'input buffer holds {image.size} values, shape {shape}')
                out = np.zeros((1, 8, anchors_for(*shape[2:])), np.float32)
                out[0, :4, 0] = [48, 32, 20, 20]
                out[0, 4 + 2, 0] = float(image.mean()) * 2  # class 2 scores the image brightness
                if out_mem.data().nbytes != out.nbytes:
                    raise FakeCudaError(f'output buffer of {out_mem.data().nbytes} bytes for {out.nbytes}')
                out_mem.data()[:] = out.view(np.uint8).ravel()
            stream.queue.append(run)
            return True

        def execute_async_v3(self, stream_handle):
            return self._enqueue(self.addresses, stream_handle)

        def execute_async_v2(self, bindings, stream_handle):
            return self._enqueue(dict(zip(names, bindings)), stream_handle)

    class Engine:
        def create_execution_context(self):
            context = Context()
            if not v3:
                del context.__class__.execute_async_v3
            return context

    if v3:
        Engine.num_io_tensors = len(names)
        Engine.get_tensor_name = lambda self, i: names[i]
        Engine.get_tensor_mode = lambda self, n: TensorIOMode.INPUT if n in inputs else TensorIOMode.OUTPUT
        Engine.get_tensor_shape = lambda self, n: engine_shape(n)
        Engine.get_tensor_dtype = lambda self, n: 'float32'
    else:
        Engine.num_bindings = len(names)
        Engine.get_binding_name = lambda self, i: names[i]
        Engine.get_binding_index = lambda self, n: names.index(n)
        Engine.binding_is_input = lambda self, i: names[i] in inputs
        Engine.get_binding_shape = lambda self, i: engine_shape(names[i])
        Engine.get_binding_dtype = lambda self, i: 'float32'

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if deserializes else None  # TensorRT returns None and logs on mismatch

    trt.Logger, trt.Runtime, trt.TensorIOMode = Logger, Runtime, TensorIOMode
    trt.nptype = lambda dtype: np.float32
    return trt


def install_fake_gpu(monkeypatch, **kwargs) -> FakeDevice:
    gpu = FakeDevice([])
    package, driver = fake_pycuda(gpu)
    monkeypatch.setitem(sys.modules, 'pycuda', package)
    monkeypatch.setitem(sys.modules, 'pycuda.driver', driver)
    monkeypatch.setitem(sys.modules, 'tensorrt', fake_tensorrt(gpu, **kwargs))
    return gpu
