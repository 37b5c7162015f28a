"""`train-fou bench`: the detector's cost, measured four ways on the same model and frames.

- raw_session_ms: the bare inference call (backend.infer on a pre-processed tensor);
- node_ms: detector_node over DDS, image message published -> detections message received;
- e2e_ms: image stamp -> bytes written to the simulated hub (detector, speed_controller,
  hub_node with the sim backend) at the camera rate, once those nodes exist; the hub
  writes only when the power changes, so its samples are the decisions that changed it.
  image_to_command_ms splits that: image stamp -> the controller's first command on it;
- ultralytics_ms: ultralytics predict on the same model and frames, here or in another
  interpreter (--ultralytics-python, e.g. the training venv), null when not installed.
Raw and node measurements alternate frame by frame, so both see the same machine load.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

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
                        help='camera frame rate of the pipeline run (default: %(default)s Hz)')
    parser.add_argument('--ultralytics-python', default=os.environ.get('TRAIN_FOU_ULTRALYTICS_PYTHON', ''),
                        metavar='PYTHON', help='interpreter with ultralytics when this one lacks it '
                                               '(default: $TRAIN_FOU_ULTRALYTICS_PYTHON)')
    parser.add_argument('--soak-s', type=float, default=0.0, metavar='S',
                        help='also stream frames to the node for S seconds and report latency over time')
    parser.add_argument('--soak-fps', type=float, default=30.0,
                        help='frame rate of the soak run (default: %(default)s)')
    parser.add_argument('--skip', default='', help='comma-separated parts to skip: node, e2e, ultralytics')
    parser.add_argument('--json', action='store_true', help='print one JSON object')


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
        for i in range(count):
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
    """Detections / hub states from the bench's own subscriptions, with arrival times."""

    def __init__(self):
        self.cond = threading.Condition()
        self.arrivals: dict[int, tuple[float, object]] = {}
        self.latencies: list[float] = []
        self.command_latencies: list[float] = []
        self._last_latency = None
        self._last_source = None

    def on_detections(self, msg) -> None:
        now = time.perf_counter()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.cond:
            self.arrivals[key] = (now, msg)
            self.cond.notify_all()

    def on_hub_state(self, msg) -> None:
        latency = float(msg.command_latency_ms)
        if latency > 0 and latency != self._last_latency:  # a new write (states are also republished)
            self.latencies.append(latency)
        self._last_latency = latency

    def on_command(self, msg) -> None:
        source = msg.source_stamp.sec * 1_000_000_000 + msg.source_stamp.nanosec
        if source and source != self._last_source:  # the first command decided on a new image
            self.command_latencies.append((time.time_ns() - source) / 1e6)
        self._last_source = source

    def wait_for(self, key: int, timeout_s: float):
        with self.cond:
            if self.cond.wait_for(lambda: key in self.arrivals, timeout_s):
                return self.arrivals.pop(key)
        return None


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
    with collector.cond:
        arrivals = dict(collector.arrivals)
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


def measure(detector, model_path: pathlib.Path, frames, args, result: dict) -> None:
    """raw vs node (alternating), then the e2e pipeline run when its nodes exist."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from train_fou import qos
    from train_fou.msg import HubState, SignDetectionArray, SpeedCommand
    from train_fou.nodes import NODE_CLASSES
    from train_fou.nodes.detector_node import DetectorNode
    from train_fou.nodes.runner import create_nodes, destroy_nodes

    skip = set(filter(None, args.skip.split(',')))
    tensors = [detector.preprocess(frame)[0].copy() for frame in frames]
    backend = detector.backend
    raw_ms, node_ms, stages = [], [], []
    context = Context()
    rclpy.init(context=context, args=[])
    namespace = f'/train_fou_bench_{os.getpid()}'
    nodes, executor, spinner, stop = [], None, None, threading.Event()
    callback_errors: list[str] = []
    try:
        if 'node' not in skip:
            nodes.append(DetectorNode(context=context, namespace=namespace, parameter_overrides=[
                Parameter('model_path', value=str(model_path)), Parameter('backend', value=backend.name),
                Parameter('conf_threshold', value=float(detector.conf_threshold)),
                Parameter('iou_threshold', value=float(detector.iou_threshold))]))
        bench = Node('bench', namespace=namespace, context=context)
        nodes.append(bench)
        collector = _Collector()
        pub = bench.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
        bench.create_subscription(SignDetectionArray, 'signs/detections', collector.on_detections, qos.RELIABLE)
        bench.create_subscription(HubState, 'hub/state', collector.on_hub_state, qos.LATCHED)
        bench.create_subscription(SpeedCommand, 'train/speed_command', collector.on_command, qos.RELIABLE)
        executor = SingleThreadedExecutor(context=context)
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
        deadline = time.monotonic() + 10
        while 'node' not in skip and pub.get_subscription_count() == 0 and time.monotonic() < deadline:
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
            from train_fou.cli.run_cmd import load_node_params
            params = load_node_params(E2E_NODES, [])
            params['hub_node'] = dict(params.get('hub_node', {}), backend='sim')
            pipeline = create_nodes(E2E_NODES, params, namespace=namespace, context=context)
            nodes.extend(pipeline)
            for node in pipeline:
                executor.add_node(node)
            period = 1.0 / args.e2e_rate
            next_t = time.monotonic()
            for i in range(total):
                k = i % len(frames)
                pub.publish(messages.stamped(k, time.time_ns()))
                if i == args.warmup:
                    collector.latencies.clear()
                    collector.command_latencies.clear()
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
            time.sleep(0.5)  # the last command reaches the hub
            lat = list(collector.latencies)
            result['e2e_samples'] = len(lat)
            commands = list(collector.command_latencies)
            # Where the time goes: image stamp -> the controller's first command on that image.
            result['image_to_command_ms_p50'] = percentile(commands, 50)
            result['image_to_command_ms_p99'] = percentile(commands, 99)
            result['e2e_ms_p50'], result['e2e_ms_p99'] = percentile(lat, 50), percentile(lat, 99)
            if callback_errors:
                result['reasons']['e2e'] = f'a pipeline callback failed ({len(callback_errors)}x): {callback_errors[0]}'
            elif not lat:
                result['reasons']['e2e'] = 'hub/state reported no command latency'
    finally:
        destroy_nodes(nodes)  # while the executor still spins: the hub brakes and publishes its state
        stop.set()
        if spinner is not None:
            spinner.join(5)
        if executor is not None:
            executor.shutdown()
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
    if args.frames < 1 or args.warmup < 0:
        raise CliError('--frames must be >= 1 and --warmup >= 0')
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
