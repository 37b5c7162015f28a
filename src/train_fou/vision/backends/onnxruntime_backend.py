"""ONNX Runtime backends: the CUDA execution provider and the CPU.

With `uint8_input=True` (the CPU backend's choice, see vision/backends/__init__.py) the session
runs the model with a uint8 input in front of it: `with_uint8_input` rewrites the ONNX graph in
memory (the file is unchanged) so that a new uint8 `images` 1x3xHxW input feeds one
DequantizeLinear (k * 1/255, zero point 0) into the old float input. The letterbox then writes
bytes, not floats, and the normalisation runs inside the session, outputs bit-identical; the
figures are in docs/performance.md (issue 15). The layout stays NCHW: a uint8 NHWC input with
the transpose in the graph ran 1.37 ms slower.
"""
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


#: the multiplier of the in-graph normalisation: the float letterbox's own (vision/preprocess.py)
UINT8_SCALE = np.float32(1.0 / 255.0)


def _rename_input(graph, old: str, new: str) -> None:
    """Every use of `old` in `graph`'s nodes and in the subgraphs they hold (outer-scope names)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attribute in node.attribute:
            for sub in (*([attribute.g] if attribute.HasField('g') else []), *attribute.graphs):
                _rename_input(sub, old, new)
    for output in graph.output:
        if output.name == old:
            raise EngineLoadError(f'input `{old}` is also a graph output: cannot put a uint8 input in front')


def with_uint8_input(model_path: str | pathlib.Path, input_name: str = 'images') -> bytes:
    """The ONNX model at `model_path` with a uint8 `input_name` (same shape) in front of its float one.

    The old float32 input is renamed and fed by DequantizeLinear(x, scale 1/255, zero point 0),
    which computes float32(k) * float32(1/255) for a pixel k: the very value the float letterbox
    writes, so outputs are those of the float path (an INT8 QDQ model's first QuantizeLinear takes
    it as it took its input). One pass: 0.21 ms on 1x3x512x512 against 0.52 ms for the Cast + Mul
    pair (docs/performance.md); a model older than opset 10 gets the pair. Raises EngineLoadError
    when the input is not a 4-D float32 tensor.
    """
    import onnx  # a runtime dependency (requirements.in); imported here: only this option needs it
    from onnx import TensorProto, helper, numpy_helper

    path = pathlib.Path(model_path)
    try:
        model = onnx.load(str(path))
    except Exception as err:  # DecodeError and friends: not an ONNX file
        raise EngineLoadError(f'{path}: cannot read the ONNX model: {err}') from err
    graph = model.graph
    found = [i for i in graph.input if i.name == input_name]
    if not found:
        raise EngineLoadError(f'{path}: model has no input `{input_name}`; its inputs: '
                              f'{", ".join(i.name for i in graph.input)}')
    old = found[0]
    tensor_type = old.type.tensor_type
    if tensor_type.elem_type != TensorProto.FLOAT or len(tensor_type.shape.dim) != 4:
        raise EngineLoadError(f'{path}: input `{input_name}` is not a 4-D float32 tensor: cannot take uint8')
    taken = {n for node in graph.node for n in (*node.input, *node.output)} | {
        i.name for i in (*graph.input, *graph.initializer)}

    def fresh(stem: str) -> str:
        name, k = stem, 0
        while name in taken:
            k += 1
            name = f'{stem}_{k}'
        taken.add(name)
        return name

    as_float, scale, zero = fresh(f'{input_name}_float'), fresh(f'{input_name}_scale'), fresh(f'{input_name}_zero')
    _rename_input(graph, input_name, as_float)
    new_input = onnx.ValueInfoProto()
    new_input.CopyFrom(old)
    new_input.type.tensor_type.elem_type = TensorProto.UINT8
    position = list(graph.input).index(old)
    graph.input.remove(old)
    graph.input.insert(position, new_input)
    graph.initializer.extend([numpy_helper.from_array(np.array(UINT8_SCALE, np.float32), scale),
                              numpy_helper.from_array(np.array(0, np.uint8), zero)])
    opset = max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), default=0)
    if opset >= 10:
        graph.node.insert(0, helper.make_node('DequantizeLinear', [input_name, scale, zero], [as_float]))
    else:  # no DequantizeLinear before opset 10: the same value in two passes
        cast = fresh(f'{input_name}_cast')
        graph.node.insert(0, helper.make_node('Mul', [cast, scale], [as_float]))
        graph.node.insert(0, helper.make_node('Cast', [input_name], [cast], to=TensorProto.FLOAT))
    return model.SerializeToString()


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

    `uint8_input`: the session takes the letterbox's uint8 bytes and normalises them itself
    (`with_uint8_input`); `input_dtype` says which the backend takes. `infer` then also accepts a
    float32 0..1 tensor (a caller written for the float input), converted back to bytes by
    rounding: exact for the letterbox's values k/255, but an extra pass, off the fast path.
    """

    def __init__(self, model_path: str | pathlib.Path, input_name: str = 'images',
                 name: str = 'onnxruntime-cpu', intra_op_threads: int = 0, allow_spinning: bool = False,
                 uint8_input: bool = False):
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
        model = with_uint8_input(path, input_name) if uint8_input else str(path)
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=PROVIDERS[name])
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
        #: what `infer` takes on the fast path: uint8 (normalised in the graph) or float32 0..1
        self.input_dtype = np.dtype(np.uint8 if uint8_input else np.float32)
        self._outputs = [self.session.get_outputs()[0].name]

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        if tensor.dtype != self.input_dtype and self.input_dtype == np.uint8 and tensor.dtype == np.float32:
            tensor = np.rint(tensor * np.float32(255.0)).clip(0, 255).astype(np.uint8)
        return self.session.run(self._outputs, {self.input_name: tensor})[0]

    def close(self) -> None:
        self.session = None
