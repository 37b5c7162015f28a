"""`train-fou bench`: the detector's cost, measured four ways on the same model and frames.

- raw_session_ms: the bare inference call (backend.infer on a pre-processed tensor);
- node_ms: detector_node over DDS, image message published -> detections message received
  (the bench subscribes to the serialized message and takes the time before deserializing:
  turning it into Python objects is the bench's cost, not the node's);
- e2e_ms: image stamp -> brake bytes written to the simulated hub, whole pipeline
  (detector_node, speed_controller, hub_node with the sim backend). The hub writes only
  when the power changes, so the run is built to force one write per sample: cycles of
  frames without signs then frames with a stop sign; the frame that completes the
  policy's confirmation is timed to the brake write (see measure_e2e).
  image_to_command_ms splits that: image stamp -> the controller's first command on it;
- ultralytics_ms: ultralytics predict on the same model and frames, here or in another
  interpreter (--ultralytics-python, e.g. the training venv), null when not installed;
- baseline_raw_ms (--baseline M): the bare inference call of another model (for example the
  previous release) on the same frames, alternating call by call with the model's own, so a
  model change is judged side by side in one run rather than across days of this VM's drift.
Raw and node measurements alternate frame by frame, so both see the same machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import threading
import time

from train_fou.cli.run_cmd import add_executor_argument

HELP = 'benchmark the detector: bare inference, node over DDS, whole pipeline, ultralytics'

E2E_NODES = ('speed_controller', 'hub_node')

#: Runs in the interpreter that has ultralytics (frames from an .npy file, JSON on stdout).
ULTRALYTICS_WORKER = r'''
import json, sys, time
import numpy as np
import ultralytics
from ultralytics import YOLO
model_path, frames_path, h, w, conf, iou, warmup = sys.argv[1:8]
frames = np.load(frames_path)
model = YOLO(model_path, task='detect')
times = []
for i in range(int(warmup) + len(frames)):
    frame = frames[i % len(frames)]
    t0 = time.perf_counter()
    model.predict(frame, imgsz=(int(h), int(w)), conf=float(conf), iou=float(iou), device='cpu', verbose=False)
    if i >= int(warmup):
        times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({'ms': times, 'version': ultralytics.__version__}))
'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default=None,
                        help='ONNX model or TensorRT engine (default: share/train_fou/models/signs.onnx)')
    parser.add_argument('--frames', type=int, default=200, help='measured frames per method (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=10, help='unmeasured frames first (default: %(default)s)')
    parser.add_argument('--backend', default='auto', help='auto, tensorrt, onnxruntime-cuda or onnxruntime-cpu')
    parser.add_argument('--size', default='640x480', help='camera frame WIDTHxHEIGHT (default: %(default)s)')
    parser.add_argument('--e2e-rate', type=float, default=30.0,
                        help='highest camera frame rate of the pipeline run (default: %(default)s Hz)')
    parser.add_argument('--e2e-samples', type=int, default=100,
                        help='timed stop-sign cycles of the pipeline run (default: %(default)s)')
    parser.add_argument('--ultralytics-python', default=os.environ.get('TRAIN_FOU_ULTRALYTICS_PYTHON', ''),
                        metavar='PYTHON', help='interpreter with ultralytics when this one lacks it '
                                               '(default: $TRAIN_FOU_ULTRALYTICS_PYTHON)')
    parser.add_argument('--soak-s', type=float, default=0.0, metavar='S',
                        help='also stream frames to the node for S seconds and report latency over time')
    parser.add_argument('--soak-fps', type=float, default=30.0,
                        help='frame rate of the soak run (default: %(default)s)')
    parser.add_argument('--node-process', action='store_true',
                        help='run detector_node in its own process (`train-fou run`, as ros2 launch does on the '
                             'Jetson) instead of in the bench process')
    parser.add_argument('--baseline', default=None, metavar='MODEL',
                        help='another ONNX model whose bare inference is timed beside the model\'s own, '
                             'call by call (raw_over_baseline in the results)')
    parser.add_argument('--skip', default='', help='comma-separated parts to skip: node, e2e, ultralytics')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    add_executor_argument(parser)


def percentile(values, q):
    import numpy as np
    return None if not values else round(float(np.percentile(values, q)), 3)


def make_frames(count: int, width: int, height: int, seed: int = 0):
    """Camera-like BGR frames: the shared sign renderer on track backgrounds, else textured noise."""
    import numpy as np
    rng = np.random.default_rng(seed)
    frames = []
    try:
        from train_fou.render.scene import background, paste_rgba
        from train_fou.render.signs import CLASS_KINDS, render_sign
        for _i in range(count):
            rgb, _ground = background('rails', width, height, rng)
            for _ in range(int(rng.integers(0, 3))):
                sprite, _box = render_sign(CLASS_KINDS[int(rng.integers(len(CLASS_KINDS)))],
                                           int(rng.integers(24, height // 3)), rng)
                paste_rgba(rgb, sprite, int(rng.integers(0, width - 40)), int(rng.integers(0, height // 2)))
            frames.append(np.ascontiguousarray(rgb[..., ::-1]))
        return frames, 'train_fou.render signs on rails backgrounds'
    except Exception:  # the renderer is optional here: any frames measure the same cost
        base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        return [np.roll(base, i * 7, axis=1) for i in range(count)], 'random texture'


class _Collector:
    """Detections and speed commands from the bench's own subscriptions, with arrival times."""

    def __init__(self):
        self.cond = threading.Condition()
        self.arrivals: dict[int, tuple[float, object]] = {}
        self.command_latencies: list[float] = []
        self._last_latency = None
        self._last_source = None

    def on_detections(self, serialized: bytes) -> None:
        """Raw subscription: the arrival time is taken before anything is deserialized.

        Turning the message into Python objects is the bench's cost, not the node's:
        `wait_for` deserializes after the time was taken.
        """
        now = time.perf_counter()
        sec, nanosec = _STAMP[serialized[1] == 1].unpack_from(serialized, 4)  # header.stamp, first field
        with self.cond:
            self.arrivals[sec * 1_000_000_000 + nanosec] = (now, serialized)
            self.cond.notify_all()

    def on_command(self, msg) -> None:
        source = msg.source_stamp.sec * 1_000_000_000 + msg.source_stamp.nanosec
        if source and source != self._last_source:  # the first command decided on a new image
            self.command_latencies.append((time.time_ns() - source) / 1e6)
        self._last_source = source

    def wait_for(self, key: int, timeout_s: float):
        """(arrival perf_counter, SignDetectionArray) of the frame stamped `key`, or None."""
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrivals, timeout_s):
                return None
            arrived, serialized = self.arrivals.pop(key)
        return arrived, _deserialize_detections(serialized)

    def take_all(self) -> dict:
        """Every arrival not waited for yet: stamp -> (arrival perf_counter, SignDetectionArray)."""
        with self.cond:
            arrivals, self.arrivals = self.arrivals, {}
        return {key: (t, _deserialize_detections(data)) for key, (t, data) in arrivals.items()}


#: header.stamp (int32 sec, uint32 nanosec) right after the 4-byte CDR encapsulation: big, little endian.
_STAMP = {False: struct.Struct('>iI'), True: struct.Struct('<iI')}


def _deserialize_detections(serialized: bytes):
    from rclpy.serialization import deserialize_message

    from train_fou.msg import SignDetectionArray
    return deserialize_message(serialized, SignDetectionArray)


class SerializedFrames:
    """Image messages serialized once; each send patches the stamp into the CDR bytes.

    The camera side's cost (turning a Python message into CDR) is not the node's,
    so the bench publishes ready bytes, as a C++ camera driver would.
    """

    def __init__(self, frames):
        import struct

        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from train_fou.nodes.image_msgs import image_msg
        self._buffers = [bytearray(serialize_message(image_msg(f, Header(frame_id='bench_camera')))) for f in frames]
        self._stamp = struct.Struct('<iI' if self._buffers[0][1] == 1 else '>iI')

    def __len__(self) -> int:
        return len(self._buffers)

    def stamped(self, index: int, ns: int) -> bytes:
        buffer = self._buffers[index % len(self._buffers)]
        self._stamp.pack_into(buffer, 4, *divmod(ns, 1_000_000_000))
        return bytes(buffer)


def soak(pub, collector, messages, duration_s: float, fps: float) -> dict:
    """Frames at `fps` for `duration_s`: latency (publish -> detections) early vs late, drops."""
    with collector.cond:
        collector.arrivals.clear()
    sent: dict[int, float] = {}
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < duration_s:
        key = time.time_ns()
        data = messages.stamped(i, key)
        sent[key] = time.perf_counter()
        pub.publish(data)
        i += 1
        next_t += 1.0 / fps
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(1.0)  # the last frame's answer
    arrivals = collector.take_all()
    rows = sorted((sent[k], t, msg) for k, (t, msg) in arrivals.items() if k in sent)
    if not rows:
        return {'frames_sent': len(sent), 'frames_processed': 0}
    t0 = rows[0][0]
    lat = [(pub_t - t0, (t - pub_t) * 1e3) for pub_t, t, _ in rows]
    window = min(20.0, duration_s / 4)
    first = [ms for at, ms in lat if at < window]
    last = [ms for at, ms in lat if at >= duration_s - window]
    dropped = rows[-1][2].frames_dropped - rows[0][2].frames_dropped
    return {'duration_s': round(duration_s, 1), 'fps': fps, 'frames_sent': len(sent), 'frames_processed': len(rows),
            'frames_dropped_by_node': dropped, 'frames_lost_before_node': len(sent) - len(rows) - dropped,
            'inference_ms_p50': percentile([m.inference_ms for _, _, m in rows], 50),
            'latency_ms_p50': percentile([ms for _, ms in lat], 50),
            'latency_ms_p95': percentile([ms for _, ms in lat], 95),
            'latency_ms_max': round(max(ms for _, ms in lat), 3),
            f'first_{window:g}s_latency_ms_p50': percentile(first, 50),
            f'first_{window:g}s_latency_ms_p95': percentile(first, 95),
            f'last_{window:g}s_latency_ms_p50': percentile(last, 50),
            f'last_{window:g}s_latency_ms_p95': percentile(last, 95),
            'latency_ms_p50_per_10s': [percentile([ms for at, ms in lat if b <= at < b + 10], 50)
                                       for b in range(0, max(1, int(duration_s)), 10)]}


#: Controller parameters of the e2e run: short cycles, the policy's semantics untouched (a stop
#: sign still needs confirm_hits of confirm_window frames). The hold ends and the stop class
#: re-arms within the cycle's clear frames, and the power is back up at once after the hold,
#: so that every cycle's confirmation changes the hub's power byte (the hub writes only changes).
E2E_POLICY = {'stop_hold_s': 0.05, 'rearm_s': 0.0, 'ramp_up_pct_per_s': 1000.0}
#: Unmeasured stop cycles first (the controller leaves FAILSAFE, the hub connects).
E2E_WARMUP_CYCLES = 2


def _bgr(rgb):
    import numpy as np
    return np.ascontiguousarray(rgb[..., ::-1])


def render_clear_frames(width: int, height: int, rng) -> list:
    """Candidate frames without signs: rails backgrounds (checked against the model by the caller)."""
    from train_fou.render.scene import background
    return [_bgr(background('rails', width, height, rng)[0]) for _ in range(12)]


def render_stop_frames(width: int, height: int, rng) -> list:
    """Candidate frames with one near stop sign (15-25 % of the image height) on rails backgrounds."""
    from train_fou.render.scene import background, paste_rgba
    from train_fou.render.signs import render_sign
    out = []
    for _ in range(12):
        rgb, _ground = background('rails', width, height, rng)
        sprite, _box = render_sign('stop', int(height * rng.uniform(0.15, 0.25)), rng)
        paste_rgba(rgb, sprite, int(width * rng.uniform(0.35, 0.6)), int(height * rng.uniform(0.15, 0.35)))
        out.append(_bgr(rgb))
    return out


def e2e_scenes(detector, config, width: int, height: int, keep: int = 4):
    """(clear frames, stop frames) that the model and the policy's gates see as such.

    A clear frame has no detection that passes any class's gates; a stop frame has a
    stop sign that passes them and nothing else that does. Either list may be empty.
    """
    import numpy as np

    from train_fou.policy import Frame
    from train_fou.policy import Detection as PolicyDetection
    from train_fou.policy.machine import qualifying_labels
    rng = np.random.default_rng(3)

    def labels(image) -> set:
        found = detector.detect(image).detections
        frame = Frame(0, image.shape[0], tuple(PolicyDetection(d.label, d.score, d.height) for d in found))
        return set(qualifying_labels(frame, config))
    clear = [f for f in render_clear_frames(width, height, rng) if not labels(f)][:keep]
    stop = [f for f in render_stop_frames(width, height, rng) if labels(f) == {'stop'}][:keep]
    return clear, stop


class _BrakeListener:
    """The sim hub's orders, in the session thread at the moment the bytes are written."""

    def __init__(self):
        self.cond = threading.Condition()
        self.brakes_ns: list[int] = []
        self.orders = 0

    def __call__(self, text: str) -> None:
        now = time.time_ns()
        with self.cond:
            self.orders += 1
            if text.endswith(' brake'):
                self.brakes_ns.append(now)
                self.cond.notify_all()

    def wait_brake_after(self, t_ns: int, timeout_s: float) -> int | None:
        with self.cond:
            self.cond.wait_for(lambda: self.brakes_ns and self.brakes_ns[-1] >= t_ns, timeout_s)
            return self.brakes_ns[-1] if self.brakes_ns and self.brakes_ns[-1] >= t_ns else None


def measure_e2e(detector, frames, pub, collector, executor, nodes, namespace, context, args, result) -> None:
    """Image stamp -> hub write of the brake, whole pipeline (detector, controller, sim hub).

    Cycles of `confirm_window` clear frames then `confirm_hits` stop frames: the last stop
    frame completes the confirmation, the controller brakes on it, the hub writes the brake.
    One sample per cycle: the hub's write time (a listener on the sim hub, in the session
    thread as the bytes are written) minus that frame's stamp. Frames go out at
    --e2e-rate at most, each after the previous one was answered (no queue anywhere),
    and the confirming frame's cycle waits for the brake.
    """
    from train_fou.cli.run_cmd import load_node_params
    from train_fou.nodes.runner import create_nodes

    params = load_node_params(E2E_NODES, [])
    params['hub_node'] = dict(params.get('hub_node', {}), backend='sim', sim_log_orders=False)
    params['speed_controller'] = dict(params.get('speed_controller', {}), **E2E_POLICY)
    pipeline = create_nodes(E2E_NODES, params, namespace=namespace, context=context)
    nodes.extend(pipeline)
    controller = next(n for n in pipeline if n.get_name() == 'speed_controller')
    hub = next(n for n in pipeline if n.get_name() == 'hub_node')
    config = controller.config
    height, width = frames[0].shape[:2]
    clear, stop = e2e_scenes(detector, config, width, height)
    if not clear or not stop:
        result['reasons']['e2e'] = (f'no rendered {"clear" if not clear else "stop"} frame that this model '
                                    'and the policy see as such: no brake to time')
        return
    listener = _BrakeListener()
    hub.virtual_hub.on_order = listener
    for node in pipeline:
        executor.add_node(node)
    cycle = [clear[i % len(clear)] for i in range(config.confirm_window)] + \
        [stop[i % len(stop)] for i in range(config.confirm_hits)]
    messages = SerializedFrames(cycle)
    period = 1.0 / args.e2e_rate
    samples, hub_reported, missed, unanswered = [], [], 0, 0
    with collector.cond:
        collector.command_latencies.clear()
    deadline = time.monotonic() + 10
    while not hub.session.status.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    next_t = time.monotonic()
    for c in range(E2E_WARMUP_CYCLES + args.e2e_samples):
        if c == E2E_WARMUP_CYCLES:
            with collector.cond:
                collector.command_latencies.clear()
        for i in range(len(cycle)):
            time.sleep(max(0.0, next_t - time.monotonic()))
            stamp = time.time_ns()
            reported_before = hub.session.status.latency_ms
            pub.publish(messages.stamped(i, stamp))
            next_t = time.monotonic() + period
            if collector.wait_for(stamp, 2.0) is None:
                unanswered += 1
            if i == len(cycle) - 1:  # the confirming frame
                brake_ns = listener.wait_brake_after(stamp, 1.0)
                if c < E2E_WARMUP_CYCLES:
                    continue
                if brake_ns is None:
                    missed += 1
                else:
                    samples.append((brake_ns - stamp) / 1e6)
                    settled = time.monotonic() + 0.1  # the session sets its status just after the write
                    while hub.session.status.latency_ms == reported_before and time.monotonic() < settled:
                        time.sleep(0.001)
                    hub_reported.append(float(hub.session.status.latency_ms))
    commands = list(collector.command_latencies)
    result['e2e_samples'] = len(samples)
    result['e2e_ms_p50'], result['e2e_ms_p99'] = percentile(samples, 50), percentile(samples, 99)
    result['e2e_ms_max'] = round(max(samples), 3) if samples else None
    # Cross-check: the hub's own figure (hub/state command_latency_ms) for the same writes.
    result['e2e_hub_reported_ms_p50'] = percentile(hub_reported, 50)
    result['e2e_cycles_without_brake'] = missed
    result['e2e_frames_unanswered'] = unanswered
    # Where the time goes: image stamp -> the controller's first command on that image (all frames).
    result['image_to_command_ms_p50'] = percentile(commands, 50)
    result['image_to_command_ms_p99'] = percentile(commands, 99)
    result['reasons']['e2e'] = (
        f'{len(samples)} stop cycles: {config.confirm_window} clear frames then {config.confirm_hits} frames with '
        f'a stop sign (the last one completes the {config.confirm_hits}-of-{config.confirm_window} confirmation); '
        'e2e = that frame\'s stamp -> the brake bytes written to the sim hub (listener on the virtual hub); '
        f'frames at <= {args.e2e_rate:g} Hz, each sent after the previous one was answered; controller with '
        + ', '.join(f'{k}={v:g}' for k, v in E2E_POLICY.items()))
    if missed:
        result['reasons']['e2e'] += f'; {missed} cycles gave no brake within 1 s'


def start_node_process(params: dict, namespace: str, executor: str, scratch) -> subprocess.Popen:
    """detector_node as `train-fou run` in its own process (its own interpreter and GIL)."""
    path = pathlib.Path(scratch.name) / 'detector_node.yaml'
    path.write_text(json.dumps({'detector_node': {'ros__parameters': params}}))  # JSON is YAML
    return subprocess.Popen([sys.executable, '-m', 'train_fou.cli', 'run', '--nodes', 'detector_node',
                             '--namespace', namespace, '--params', str(path), '--executor', executor],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_node_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def measure(detector, model_path: pathlib.Path, frames, args, result: dict) -> None:
    """raw vs node (alternating), then the e2e pipeline run when its nodes exist."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from train_fou import qos
    from train_fou.executors import executor_kind, make_executor
    from train_fou.msg import SignDetectionArray, SpeedCommand
    from train_fou.nodes import NODE_CLASSES
    from train_fou.nodes.detector_node import DetectorNode
    from train_fou.nodes.runner import destroy_nodes, run_shutdown_hooks

    skip = set(filter(None, args.skip.split(',')))
    tensors = [detector.preprocess(frame)[0].copy() for frame in frames]
    backend = detector.backend
    raw_ms, node_ms, stages = [], [], []
    context = Context()
    rclpy.init(context=context, args=[])
    namespace = f'/train_fou_bench_{os.getpid()}'
    nodes, executor, spinner, stop = [], None, None, threading.Event()
    callback_errors: list[str] = []
    node_process = None
    scratch = tempfile.TemporaryDirectory(prefix='train_fou_bench_')
    result['executor'] = executor_kind(args.executor)
    result['node_in'] = 'own process' if args.node_process else 'bench process'
    try:
        node_params = {'model_path': str(model_path), 'backend': backend.name,
                       'conf_threshold': float(detector.conf_threshold),
                       'iou_threshold': float(detector.iou_threshold)}
        if 'node' not in skip and args.node_process:
            node_process = start_node_process(node_params, namespace, result['executor'], scratch)
        elif 'node' not in skip:
            nodes.append(DetectorNode(context=context, namespace=namespace, parameter_overrides=[
                Parameter(name, value=value) for name, value in node_params.items()]))
        bench = Node('bench', namespace=namespace, context=context)
        nodes.append(bench)
        collector = _Collector()
        pub = bench.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
        bench.create_subscription(SignDetectionArray, 'signs/detections', collector.on_detections, qos.RELIABLE,
                                  raw=True)
        bench.create_subscription(SpeedCommand, 'train/speed_command', collector.on_command, qos.RELIABLE)
        executor = make_executor(result['executor'], context=context)
        for node in nodes:
            executor.add_node(node)

        def spin() -> None:
            while not stop.is_set():
                try:
                    executor.spin_once(timeout_sec=0.1)
                except Exception as err:  # a pipeline node's callback failed: report it, keep measuring
                    callback_errors.append(f'{type(err).__name__}: {err}')
        spinner = threading.Thread(target=spin, name='bench_spin', daemon=True)
        spinner.start()
        deadline = time.monotonic() + (60 if node_process else 10)
        while 'node' not in skip and pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            if node_process is not None and node_process.poll() is not None:
                raise RuntimeError(f'detector_node process exited with {node_process.returncode}: '
                                   f'{node_process.communicate()[1].strip()[-500:]}')
            time.sleep(0.01)
        messages = SerializedFrames(frames)
        total = args.warmup + len(frames)
        for i in range(total):
            k = i % len(frames)
            t0 = time.perf_counter()
            backend.infer(tensors[k])
            raw = (time.perf_counter() - t0) * 1e3
            if 'node' in skip:
                if i >= args.warmup:
                    raw_ms.append(raw)
                continue
            key = time.time_ns()
            data = messages.stamped(k, key)
            t0 = time.perf_counter()
            pub.publish(data)
            arrived = collector.wait_for(key, 10.0)
            if i >= args.warmup and arrived is not None:
                raw_ms.append(raw)
                node_ms.append((arrived[0] - t0) * 1e3)
                msg = arrived[1]
                stages.append((msg.preprocess_ms, msg.inference_ms, msg.postprocess_ms))
        if 'node' not in skip:
            result['node_frames_lost'] = len(frames) - len(node_ms)
            if args.soak_s > 0:
                result['soak'] = soak(pub, collector, messages, args.soak_s, args.soak_fps)
        missing = [name for name in E2E_NODES if name not in NODE_CLASSES]
        if 'e2e' in skip or 'node' in skip:
            result['reasons']['e2e'] = 'skipped'
        elif missing:
            result['reasons']['e2e'] = f'{" and ".join(missing)} not available yet (not in NODE_CLASSES)'
        else:
            measure_e2e(detector, frames, pub, collector, executor, nodes, namespace, context, args, result)
            if callback_errors:
                result['reasons']['e2e'] = f'a pipeline callback failed ({len(callback_errors)}x): {callback_errors[0]}'
    finally:
        if node_process is not None:
            stop_node_process(node_process)
        scratch.cleanup()
        run_shutdown_hooks(nodes)  # while the executor still spins: the hub brakes and publishes its state
        stop.set()
        if spinner is not None:
            spinner.join(5)
        if executor is not None:
            executor.shutdown()
        destroy_nodes(nodes, hooks=False)  # no callback may run on a node being destroyed
        rclpy.shutdown(context=context)
    result['raw_session_ms_p50'], result['raw_session_ms_p95'] = percentile(raw_ms, 50), percentile(raw_ms, 95)
    result['node_ms_p50'], result['node_ms_p95'] = percentile(node_ms, 50), percentile(node_ms, 95)
    if stages:
        result['node_stage_ms_p50'] = {name: percentile([s[i] for s in stages], 50)
                                       for i, name in enumerate(('preprocess', 'inference', 'postprocess'))}
    if result['node_ms_p50'] and result['raw_session_ms_p50']:
        result['node_over_raw'] = round(result['node_ms_p50'] / result['raw_session_ms_p50'], 4)
        # Paired per frame (both measured back to back): robust to the machine's load drifting.
        result['node_overhead_ms_p50'] = percentile([n - r for n, r in zip(node_ms, raw_ms)], 50)


def measure_baseline(detector, baseline, frames, warmup: int, result: dict) -> None:
    """Bare inference of `detector` and `baseline` on the same frames, alternating call by call."""
    own = [detector.preprocess(frame)[0].copy() for frame in frames]
    other = [baseline.preprocess(frame)[0].copy() for frame in frames]
    own_ms, other_ms = [], []
    for i in range(warmup + len(frames)):
        k = i % len(frames)
        t0 = time.perf_counter()
        detector.backend.infer(own[k])
        t1 = time.perf_counter()
        baseline.backend.infer(other[k])
        t2 = time.perf_counter()
        if i >= warmup:
            own_ms.append((t1 - t0) * 1e3)
            other_ms.append((t2 - t1) * 1e3)
    result['baseline_paired_raw_ms_p50'] = percentile(own_ms, 50)
    result['baseline_raw_ms_p50'] = percentile(other_ms, 50)
    result['baseline_imgsz'] = list(baseline.metadata.imgsz)
    result['raw_over_baseline'] = round(percentile(own_ms, 50) / percentile(other_ms, 50), 3)


def measure_ultralytics(model_path: pathlib.Path, frames, detector, args, result: dict) -> None:
    import importlib.util

    import numpy as np
    python = sys.executable if importlib.util.find_spec('ultralytics') else args.ultralytics_python
    if model_path.suffix != '.onnx':
        result['reasons']['ultralytics'] = 'measured on ONNX models only'
        return
    if not python:
        result['reasons']['ultralytics'] = ('ultralytics is not importable here; pass --ultralytics-python '
                                            '(e.g. .venv-train/bin/python)')
        return
    h, w = detector.metadata.imgsz
    with tempfile.TemporaryDirectory(prefix='train_fou_bench_') as tmp:
        frames_path = pathlib.Path(tmp) / 'frames.npy'
        np.save(frames_path, np.stack(frames))
        env = dict(os.environ, YOLO_CONFIG_DIR=tmp, YOLO_OFFLINE='1')
        cmd = [python, '-c', ULTRALYTICS_WORKER, str(model_path), str(frames_path), str(h), str(w),
               str(detector.conf_threshold), str(detector.iou_threshold), str(args.warmup)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as err:
            result['reasons']['ultralytics'] = f'{python}: {err}'
            return
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['no output'])[-1]
        result['reasons']['ultralytics'] = f'{python}: ultralytics predict failed: {last}'
        return
    data = json.loads(done.stdout.strip().splitlines()[-1])
    result['ultralytics_ms_p50'] = percentile(data['ms'], 50)
    result['ultralytics_ms_p95'] = percentile(data['ms'], 95)
    result['ultralytics_version'] = data['version']
    result['ultralytics_python'] = python


def run(args: argparse.Namespace) -> int:
    from train_fou.cli import CliError
    from train_fou.cli.detect_cmd import open_cli_detector

    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise CliError(f'--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 640x480') from None
    if args.frames < 1 or args.warmup < 0 or args.e2e_samples < 1 or not args.e2e_rate > 0:
        raise CliError('--frames and --e2e-samples must be >= 1, --warmup >= 0 and --e2e-rate > 0')
    detector, choice = open_cli_detector(args.model, args.backend)
    model_path = pathlib.Path(args.model) if args.model else None
    if model_path is None:
        from train_fou.paths import default_model
        model_path = default_model()
    print(f'backend: {choice.reason}', file=sys.stderr)
    frames, source = make_frames(min(args.frames, 50), width, height)
    frames = [frames[i % len(frames)] for i in range(args.frames)]
    result: dict = {'raw_session_ms_p50': None, 'node_ms_p50': None, 'e2e_ms_p50': None, 'e2e_ms_p99': None,
                    'ultralytics_ms_p50': None, 'backend': choice.backend.name,
                    'imgsz': list(detector.metadata.imgsz), 'model': str(model_path), 'frames': args.frames,
                    'frame_size': [width, height], 'frames_source': source, 'reasons': {}}
    try:
        if args.baseline:
            baseline, _ = open_cli_detector(args.baseline, choice.backend.name)
            result['baseline'] = str(args.baseline)
            try:
                measure_baseline(detector, baseline, frames, args.warmup, result)
            finally:
                baseline.close()
        measure(detector, model_path, frames, args, result)
    finally:
        detector.close()
    if 'ultralytics' in args.skip.split(','):
        result['reasons']['ultralytics'] = 'skipped'
    else:
        measure_ultralytics(model_path, frames[:min(len(frames), 100)], detector, args, result)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f'{key:>22}: {value}')
    return 0
