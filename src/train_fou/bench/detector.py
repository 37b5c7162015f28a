"""The detector bare (backend.infer on a pre-processed tensor) against detector_node over DDS.

The two alternate frame by frame, so both see the same machine load; a node sample is
image message published -> detections message received. The soak (frames streamed at a
camera's rate, latency over time) and the e2e run follow in the same ROS graph.
"""
from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass, replace

from train_fou.bench.e2e import E2eResult, measure_e2e
from train_fou.bench.graph import BenchGraph
from train_fou.bench.harness import SerializedFrames, percentile
from train_fou.executors import executor_kind

STAGES = ('preprocess', 'inference', 'postprocess')


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

    def fields(self) -> dict:
        """The bench's fields for these runs (the e2e ones included), without `reasons`."""
        out: dict = {'executor': self.executor, 'node_in': self.node_in}
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
        if node_p50 and raw_p50:
            out['node_over_raw'] = round(node_p50 / raw_p50, 4)
            # Paired per frame (both measured back to back): robust to the machine's load drifting.
            out['node_overhead_ms_p50'] = percentile([n - r for n, r in zip(self.node_ms, self.raw_ms)], 50)
        return out

    def reasons(self) -> dict:
        return {'e2e': self.e2e.reason}


def measure_detector(detector, model_path: pathlib.Path, frames, options: BenchOptions) -> DetectorResult:
    """Bare against node on `frames` (after `options.warmup`), then the soak and the e2e run."""
    with_node = 'node' not in options.skip
    kind = executor_kind(options.executor)
    node_params = {'model_path': str(model_path), 'backend': detector.backend.name,
                   'conf_threshold': float(detector.conf_threshold),
                   'iou_threshold': float(detector.iou_threshold)}
    tensors = [detector.preprocess(frame)[0].copy() for frame in frames]
    with BenchGraph(kind) as graph:
        graph.start(node_params if with_node else None, options.node_process)
        if with_node:
            graph.wait_for_detector()
        messages = SerializedFrames(frames)
        raw_ms, node_ms, stages = _alternate(detector.backend, tensors, graph, messages, options.warmup, with_node)
        soaked = None
        if with_node and options.soak_s > 0:
            soaked = soak(graph, messages, options.soak_s, options.soak_fps)
        if 'e2e' in options.skip or not with_node:
            e2e = E2eResult('skipped')
        else:
            height, width = frames[0].shape[:2]
            e2e = measure_e2e(detector, graph, width, height, options.e2e_rate_hz, options.e2e_samples)
            if graph.callback_errors:
                e2e = replace(e2e, reason=f'a pipeline callback failed ({len(graph.callback_errors)}x): '
                                          f'{graph.callback_errors[0]}')
    return DetectorResult(kind, 'own process' if options.node_process else 'bench process', tuple(raw_ms),
                          tuple(node_ms), tuple(stages), len(frames) - len(node_ms) if with_node else None,
                          soaked, e2e)


def _alternate(backend, tensors, graph: BenchGraph, messages: SerializedFrames, warmup: int, with_node: bool):
    """(raw ms, node ms, node stage ms) per measured frame: one bare call, then the same frame to the node."""
    raw_ms, node_ms, stages = [], [], []
    for i in range(warmup + len(tensors)):
        k = i % len(tensors)
        t0 = time.perf_counter()
        backend.infer(tensors[k])
        raw = (time.perf_counter() - t0) * 1e3
        if not with_node:
            if i >= warmup:
                raw_ms.append(raw)
            continue
        key = time.time_ns()
        data = messages.stamped(k, key)
        t0 = time.perf_counter()
        graph.publish(data)
        arrived = graph.collector.wait_for(key, 10.0)
        if i >= warmup and arrived is not None:
            raw_ms.append(raw)
            node_ms.append((arrived[0] - t0) * 1e3)
            msg = arrived[1]
            stages.append((msg.preprocess_ms, msg.inference_ms, msg.postprocess_ms))
    return raw_ms, node_ms, stages


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
