"""The detector bare (backend.infer on a pre-processed tensor) against detector_node over DDS.

The bare run feeds the backend the tensor type it takes (`raw_input`): on the CPU that is the
letterbox's uint8 bytes, and the raw time then includes the normalisation the model does in its
graph (vision/backends/onnxruntime_backend.with_uint8_input).

The two alternate frame by frame, so both see the same machine load; a node sample is
image message published -> detections message received. Right after each node frame the same
frame goes to an echo node (graph.EchoNode: answers at once, no model), whose round trip is the
rclpy + DDS part any node pays here; `node_overhead_above_echo_ms_p50` is what the detector
node's own work adds to it. With an interpreter that has
ultralytics, the yolo_ros-style peer (train_fou.bench.yolo_ros_style, a process of its
own) gets the same frames, timed the same way, in blocks of PEER_BLOCK frames between the
blocks of bare and node runs (see PEER_SETTLE_S why not frame by frame). The soak (frames
streamed at a camera's rate, latency over time) and the e2e run follow in the same ROS graph.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace

from train_fou.bench.e2e import E2eResult, measure_e2e
from train_fou.bench.graph import BenchGraph
from train_fou.bench.harness import SerializedFrames, percentile
from train_fou.executors import executor_kind

STAGES = ('preprocess', 'inference', 'postprocess')
#: The node's path, stage by stage, when it runs in the bench process (InferenceWorker.on_timing):
#: bench publish -> the subscription callback, the callback's header read, the mailbox ->
#: inference thread hand-off, letterbox, the model and decoding (+ refiner) as the node reports
#: them, building and publishing the message, its publish -> the bench's callback.
NODE_PATH = ('dds_in', 'decode', 'hand_off', 'letterbox', 'inference', 'postprocess', 'publish', 'dds_out')
#: After the peer's frames, before the next bare run: the peer's threads (ultralytics keeps ONNX
#: Runtime's and torch's defaults) spin-wait for a while after their work, and must not share the
#: cores with the bare and node runs (a bare run right after a peer frame was 22 ms slower, 3.5 ms
#: after 50 ms, unaffected after 200 ms: docs/performance.md). Frame by frame that pause would
#: also cool the peer's threads down before each frame, which a camera's stream never does; in
#: blocks, each of the peer's frames follows its previous one as in a stream, and the bare and node
#: runs get quiet cores, while the blocks still share the machine's load drift.
PEER_SETTLE_S = 0.2
PEER_BLOCK = 10


@dataclass(frozen=True)
class BenchOptions:
    """How `measure_detector` runs; `skip` may hold 'node' and 'e2e' (no e2e without the node)."""
    warmup: int = 10                 #: unmeasured frames first
    executor: str | None = None      #: executor kind (train_fou.executors), None: the default
    node_process: bool = False       #: detector_node in its own process instead of the bench's
    skip: frozenset[str] = frozenset()
    soak_s: float = 0.0              #: 0: no soak
    soak_fps: float = 30.0
    e2e_rate_hz: float = 30.0        #: highest frame rate of the e2e run
    e2e_samples: int = 100           #: timed stop cycles of the e2e run
    peer_python: str = ''            #: interpreter with ultralytics for the yolo_ros-style peer ('': none)


@dataclass(frozen=True)
class DetectorResult:
    """Bare and node times, paired per frame (a frame lost by the node drops both)."""
    executor: str
    node_in: str                                       #: 'bench process' or 'own process'
    raw_ms: tuple[float, ...]
    node_ms: tuple[float, ...]                         #: empty when the node was skipped
    stages_ms: tuple[tuple[float, float, float], ...]  #: the node's own figures, in STAGES order
    node_frames_lost: int | None                       #: None when the node was skipped
    soak: SoakResult | None
    e2e: E2eResult
    path_ms: tuple[tuple[float, ...], ...] = ()        #: NODE_PATH per frame (bench process only)
    peer: PeerResult | None = None                     #: None: not measured, no reason either
    #: what the bare run fed the backend: 'uint8' (the CPU's; raw then includes the in-graph
    #: DequantizeLinear (k / 255) that the float path's letterbox did) or 'float32'
    raw_input: str = 'float32'
    #: graph.EchoNode's round trip on each node frame, right after it (paired with node_ms; None: lost)
    echo_ms: tuple[float | None, ...] = ()

    def fields(self) -> dict:
        """The bench's fields for these runs (the e2e ones included), without `reasons`."""
        out: dict = {'executor': self.executor, 'node_in': self.node_in, 'raw_input': self.raw_input}
        if self.node_frames_lost is not None:
            out['node_frames_lost'] = self.node_frames_lost
        if self.soak is not None:
            out['soak'] = self.soak.fields()
        out.update(self.e2e.fields())
        raw_p50, node_p50 = percentile(self.raw_ms, 50), percentile(self.node_ms, 50)
        out.update({'raw_session_ms_p50': raw_p50, 'raw_session_ms_p95': percentile(self.raw_ms, 95),
                    'node_ms_p50': node_p50, 'node_ms_p95': percentile(self.node_ms, 95)})
        if self.stages_ms:
            out['node_stage_ms_p50'] = {name: percentile([s[i] for s in self.stages_ms], 50)
                                        for i, name in enumerate(STAGES)}
        if self.path_ms:
            out['node_path_ms_p50'] = {name: percentile([s[i] for s in self.path_ms], 50)
                                       for i, name in enumerate(NODE_PATH)}
        if node_p50 and raw_p50:
            out['node_over_raw'] = round(node_p50 / raw_p50, 4)
            # Paired per frame (both measured back to back): robust to the machine's load drifting.
            out['node_overhead_ms_p50'] = percentile([n - r for n, r in zip(self.node_ms, self.raw_ms)], 50)
        echoed = [(n, r, e) for n, r, e in zip(self.node_ms, self.raw_ms, self.echo_ms) if e is not None]
        if echoed:
            echo = [e for _, _, e in echoed]
            out.update({'echo_node_ms_p50': percentile(echo, 50), 'echo_node_ms_p95': percentile(echo, 95),
                        'echo_node_frames_lost': len(self.echo_ms) - len(echoed),
                        'node_overhead_above_echo_ms_p50': percentile([n - r - e for n, r, e in echoed], 50)})
        if self.peer is not None:
            out.update(self.peer.fields(node_p50))
        return out

    def reasons(self) -> dict:
        out = {'e2e': self.e2e.reason}
        if self.peer is not None and self.peer.reason is not None:
            out['yolo_ros_style'] = self.peer.reason
        return out


@dataclass(frozen=True)
class PeerResult:
    """The yolo_ros-style peer on the node's frames (in blocks between the bare and node runs), or only why not."""
    reason: str | None = None                          #: None when measured
    ms: tuple[float, ...] = ()                         #: image published -> its detections received
    stages_ms: tuple[tuple[float, float, float], ...] = ()  #: ultralytics' own, in STAGES order
    frames_lost: int = 0                               #: frames it did not answer within 10 s
    ultralytics: str = ''                              #: its version
    python: str = ''                                   #: the interpreter that ran it

    def fields(self, node_p50: float | None) -> dict:
        """The bench's yolo_ros_style_* fields; none when not measured."""
        if self.reason is not None:
            return {}
        p50 = percentile(self.ms, 50)
        out = {'yolo_ros_style_ms_p50': p50, 'yolo_ros_style_ms_p95': percentile(self.ms, 95),
               'yolo_ros_style_frames_lost': self.frames_lost, 'yolo_ros_style_ultralytics': self.ultralytics,
               'yolo_ros_style_python': self.python}
        if self.stages_ms:
            out['yolo_ros_style_stage_ms_p50'] = {name: percentile([s[i] for s in self.stages_ms], 50)
                                                  for i, name in enumerate(STAGES)}
        if p50 and node_p50:
            out['node_over_yolo_ros_style'] = round(node_p50 / p50, 4)
        return out


def measure_detector(detector, model_path: pathlib.Path, frames, options: BenchOptions) -> DetectorResult:
    """Bare against node (and the peer) on `frames` (after `options.warmup`), then the soak and the e2e run."""
    with_node = 'node' not in options.skip
    kind = executor_kind(options.executor)
    node_params = {'model_path': str(model_path), 'backend': detector.backend.name,
                   'conf_threshold': float(detector.conf_threshold),
                   'iou_threshold': float(detector.iou_threshold)}
    # the backend's own input, as the node letterboxes it (uint8 on the CPU: normalised in the graph)
    tensors = [detector.prepare(frame)[0].copy() for frame in frames]
    height, width = frames[0].shape[:2]
    with BenchGraph(kind) as graph, tempfile.TemporaryDirectory(prefix='train_fou_peer_') as scratch:
        graph.start(node_params if with_node else None, options.node_process, echo=with_node)
        if with_node:
            graph.wait_for_detector()
        if graph.detector_node is not None:
            graph.detector_node.worker.on_timing = graph.collector.on_timing
        messages = SerializedFrames(frames)
        peer_reason = _start_peer(graph, detector, model_path, options, kind, messages, scratch) \
            if with_node else None
        timed = _alternate(detector.backend, tensors, graph, messages, options.warmup, with_node,
                           with_peer=with_node and peer_reason is None)
        if graph.detector_node is not None:
            graph.detector_node.worker.on_timing = None
        peer = PeerResult('runs beside the node: skipped with it')
        if with_node:
            peer = PeerResult(peer_reason) if peer_reason is not None else PeerResult(
                None, tuple(timed.peer_ms), tuple(timed.peer_stages), len(frames) - len(timed.peer_ms),
                graph.peer_info.get('ultralytics', ''), graph.peer_info.get('python', ''))
        soaked = None
        if with_node and options.soak_s > 0:
            soaked = soak(graph, messages, options.soak_s, options.soak_fps)
        if 'e2e' in options.skip or not with_node:
            e2e = E2eResult('skipped')
        else:
            e2e = measure_e2e(detector, graph, width, height, options.e2e_rate_hz, options.e2e_samples)
            if graph.callback_errors:
                e2e = replace(e2e, reason=f'a pipeline callback failed ({len(graph.callback_errors)}x): '
                                          f'{graph.callback_errors[0]}')
    return DetectorResult(kind, 'own process' if options.node_process else 'bench process', tuple(timed.raw_ms),
                          tuple(timed.node_ms), tuple(timed.stages), len(frames) - len(timed.node_ms)
                          if with_node else None, soaked, e2e, tuple(timed.path_ms), peer,
                          str(tensors[0].dtype), tuple(timed.echo_ms))


def peer_python(other_python: str) -> str:
    """The interpreter for the yolo_ros-style peer: this one when it has ultralytics, else `other_python`."""
    return sys.executable if importlib.util.find_spec('ultralytics') else other_python


def _start_peer(graph: BenchGraph, detector, model_path: pathlib.Path, options: BenchOptions, kind: str,
                messages: SerializedFrames, scratch: str) -> str | None:
    """Start the yolo_ros-style peer in `graph` (its first answer on `messages`' first frame); None when it
    runs, else why it does not."""
    from train_fou.bench.yolo_ros_style import peer_environment, runtime_site
    if 'yolo_ros_style' in options.skip:
        return 'skipped'
    if model_path.suffix != '.onnx':
        return 'measured on ONNX models only'
    python = peer_python(options.peer_python)
    if not python:
        return 'needs an interpreter with ultralytics: pass --ultralytics-python (e.g. .venv-train/bin/python)'
    probe = ('import importlib.util, json, sys; '
             'print(json.dumps([list(sys.version_info[:2]), importlib.util.find_spec("ultralytics") is not None]))')
    try:
        done = subprocess.run([python, '-c', probe], capture_output=True, text=True, timeout=60)
        version, has_ultralytics = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as err:
        return f'{python}: cannot run it ({err})'
    if not has_ultralytics:
        return f'{python}: ultralytics is not importable there'
    if tuple(version) != sys.version_info[:2]:
        return (f'{python} is Python {version[0]}.{version[1]}; this install space\'s rclpy is built for '
                f'{sys.version_info[0]}.{sys.version_info[1]}')
    h, w = detector.metadata.imgsz
    command = [python, '-m', 'train_fou.bench.yolo_ros_style', str(model_path), '--imgsz', str(h), str(w),
               '--conf', str(detector.conf_threshold), '--iou', str(detector.iou_threshold),
               '--max-det', str(detector.max_detections), '--names', json.dumps(list(detector.metadata.names)),
               '--namespace', graph.peer_namespace, '--executor', kind,
               '--frame-size', str(messages.width), str(messages.height)]
    env = peer_environment(dict(os.environ, YOLO_CONFIG_DIR=scratch, YOLO_OFFLINE='1'), runtime_site(),
                           pathlib.Path(sys.prefix))
    try:
        graph.start_peer(command, env, lambda key: messages.stamped(0, key))
    except RuntimeError as err:
        return f'{python}: {err}'
    return None


@dataclass
class _Timed:
    raw_ms: list
    node_ms: list
    stages: list
    path_ms: list
    peer_ms: list
    peer_stages: list
    echo_ms: list


def _alternate(backend, tensors, graph: BenchGraph, messages: SerializedFrames, warmup: int, with_node: bool,
               with_peer: bool = False) -> _Timed:
    """Per measured frame one bare call, then the same frame to the node; with the peer, after every
    PEER_BLOCK frames the same block to the peer, then PEER_SETTLE_S of quiet."""
    out = _Timed([], [], [], [], [], [], [])
    total = warmup + len(tensors)
    for first in range(0, total, PEER_BLOCK if with_peer else total):
        block = range(first, min(first + PEER_BLOCK, total) if with_peer else total)
        for i in block:
            _bare_and_node(i, backend, tensors, graph, messages, warmup, with_node, out)
        if with_peer:
            for i in block:
                _peer_frame(i, len(tensors), graph, messages, warmup, out)
            time.sleep(PEER_SETTLE_S)
    return out


def _bare_and_node(i: int, backend, tensors, graph: BenchGraph, messages: SerializedFrames, warmup: int,
                   with_node: bool, out: _Timed) -> None:
    k = i % len(tensors)
    t0 = time.perf_counter()
    backend.infer(tensors[k])
    raw = (time.perf_counter() - t0) * 1e3
    if not with_node:
        if i >= warmup:
            out.raw_ms.append(raw)
        return
    collector = graph.collector
    key = time.time_ns()
    data = messages.stamped(k, key)
    t0 = time.perf_counter()
    graph.publish(data)
    arrived = collector.wait_for(key, 10.0)
    timing = collector.wait_timing(key, 1.0) if graph.detector_node is not None and arrived is not None else None
    if arrived is None:
        return
    key = time.time_ns()
    data = messages.stamped(k, key)
    t1 = time.perf_counter()
    graph.publish_echo(data)
    echoed = collector.wait_arrival(key, 10.0)
    if i >= warmup:
        out.raw_ms.append(raw)
        out.node_ms.append((arrived[0] - t0) * 1e3)
        out.echo_ms.append(None if echoed is None else (echoed - t1) * 1e3)
        msg = arrived[1]
        out.stages.append((msg.preprocess_ms, msg.inference_ms, msg.postprocess_ms))
        if timing is not None:
            out.path_ms.append(_path(t0, arrived[0], timing, msg))


def _peer_frame(i: int, count: int, graph: BenchGraph, messages: SerializedFrames, warmup: int,
                out: _Timed) -> None:
    key = time.time_ns()
    data = messages.stamped(i % count, key)
    t0 = time.perf_counter()
    graph.publish_peer(data)
    answer = graph.collector.wait_for(key, 10.0)
    if i >= warmup and answer is not None:
        out.peer_ms.append((answer[0] - t0) * 1e3)
        out.peer_stages.append((answer[1].preprocess_ms, answer[1].inference_ms, answer[1].postprocess_ms))


def _path(published: float, arrived: float, t, msg) -> tuple[float, ...]:
    """NODE_PATH in ms from the bench's clock readings and the worker's FrameTiming `t`."""
    model = (t.inferred_s - t.letterboxed_s) * 1e3
    return ((t.received_s - published) * 1e3, (t.decoded_s - t.received_s) * 1e3, (t.taken_s - t.decoded_s) * 1e3,
            (t.letterboxed_s - t.taken_s) * 1e3, min(msg.inference_ms, model),
            max(model - msg.inference_ms, 0.0), (t.published_s - t.inferred_s) * 1e3,
            (arrived - t.published_s) * 1e3)


@dataclass(frozen=True)
class SoakResult:
    """Frames streamed at `fps` for `duration_s`; per answered frame, in send order."""
    duration_s: float
    fps: float
    frames_sent: int
    sent_at_s: tuple[float, ...]      #: send time, from the first answered frame's
    latency_ms: tuple[float, ...]     #: send -> detections received
    inference_ms: tuple[float, ...]   #: the node's own figure
    frames_dropped_by_node: int = 0   #: the node's frames_dropped counter over the run

    def fields(self) -> dict:
        """The bench's `soak` object: latency early against late, drops before and in the node."""
        lat = list(zip(self.sent_at_s, self.latency_ms))
        if not lat:
            return {'frames_sent': self.frames_sent, 'frames_processed': 0}
        window = min(20.0, self.duration_s / 4)
        first = [ms for at, ms in lat if at < window]
        last = [ms for at, ms in lat if at >= self.duration_s - window]
        return {'duration_s': round(self.duration_s, 1), 'fps': self.fps, 'frames_sent': self.frames_sent,
                'frames_processed': len(lat), 'frames_dropped_by_node': self.frames_dropped_by_node,
                'frames_lost_before_node': self.frames_sent - len(lat) - self.frames_dropped_by_node,
                'inference_ms_p50': percentile(self.inference_ms, 50),
                'latency_ms_p50': percentile(self.latency_ms, 50),
                'latency_ms_p95': percentile(self.latency_ms, 95),
                'latency_ms_max': round(max(self.latency_ms), 3),
                f'first_{window:g}s_latency_ms_p50': percentile(first, 50),
                f'first_{window:g}s_latency_ms_p95': percentile(first, 95),
                f'last_{window:g}s_latency_ms_p50': percentile(last, 50),
                f'last_{window:g}s_latency_ms_p95': percentile(last, 95),
                'latency_ms_p50_per_10s': [percentile([ms for at, ms in lat if b <= at < b + 10], 50)
                                           for b in range(0, max(1, int(self.duration_s)), 10)]}


def soak(graph: BenchGraph, messages: SerializedFrames, duration_s: float, fps: float) -> SoakResult:
    """Frames at `fps` for `duration_s` without waiting for answers, then a second for the last ones."""
    graph.collector.forget_arrivals()
    sent: dict[int, float] = {}
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < duration_s:
        key = time.time_ns()
        data = messages.stamped(i, key)
        sent[key] = time.perf_counter()
        graph.publish(data)
        i += 1
        next_t += 1.0 / fps
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(1.0)  # the last frame's answer
    arrivals = graph.collector.take_all()
    rows = sorted((sent[k], t, msg) for k, (t, msg) in arrivals.items() if k in sent)
    t0 = rows[0][0] if rows else 0.0
    return SoakResult(duration_s, fps, len(sent), sent_at_s=tuple(pub_t - t0 for pub_t, _, _ in rows),
                      latency_ms=tuple((t - pub_t) * 1e3 for pub_t, t, _ in rows),
                      inference_ms=tuple(m.inference_ms for _, _, m in rows),
                      frames_dropped_by_node=rows[-1][2].frames_dropped - rows[0][2].frames_dropped if rows else 0)
