"""Image stamp -> brake bytes written to the sim hub, through detector_node, speed_controller and hub_node.

The hub writes only when the power changes, so the run forces one write per timed frame:
cycles of `confirm_window` clear frames then `confirm_hits` stop-sign frames. The last
stop frame completes the policy's confirmation, the controller brakes on it, the hub
writes the brake; one sample per cycle is that write's time (taken by a listener on the
virtual hub, in the session thread as the bytes are written) minus the frame's stamp.
Frames go out at `rate_hz` at most, each after the previous one was answered (no queue
anywhere), and the confirming frame waits for the brake. While a confirming frame is on its
way the bench does no Python work of its own beyond its two stamp-reading callbacks (it
waits on the brake, not on the detections), since it shares the GIL with the pipeline.
Each sample is split at the bench's own arrivals: detector (stamp -> detections),
controller (-> its first command on that image), hub (-> the brake bytes).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from train_fou.bench.graph import BenchGraph
from train_fou.bench.harness import SerializedFrames, percentile
from train_fou.nodes.runner import create_nodes
from train_fou.params import load_params_file, params_for_node
from train_fou.paths import config_path
from train_fou.policy import Detection as PolicyDetection
from train_fou.policy import Frame
from train_fou.policy.machine import qualifying_labels
from train_fou.render.scene import background, paste_rgba
from train_fou.render.signs import render_sign

E2E_NODES = ('speed_controller', 'hub_node')
#: Controller parameters of the run: short cycles, the policy's semantics untouched (a stop
#: sign still needs confirm_hits of confirm_window frames). The hold ends and the stop class
#: re-arms within the cycle's clear frames, and the power is back up at once after the hold,
#: so that every cycle's confirmation changes the hub's power byte (the hub writes only changes).
E2E_POLICY = {'stop_hold_s': 0.05, 'rearm_s': 0.0, 'ramp_up_pct_per_s': 1000.0}
#: Unmeasured stop cycles first (the controller leaves FAILSAFE, the hub connects).
E2E_WARMUP_CYCLES = 2
#: The parts of one e2e sample (E2eResult.stages_ms).
E2E_STAGES = ('detector', 'controller', 'hub')


@dataclass(frozen=True)
class E2eResult:
    """The whole-pipeline run: one brake delay per timed stop cycle, or only why there is none."""
    reason: str
    timed: bool = False                           #: False: not run; only `reason` holds
    brake_ms: tuple[float, ...] = ()              #: confirming frame's stamp -> brake bytes written
    hub_reported_ms: tuple[float, ...] = ()       #: the hub's own command latency for the same writes
    image_to_command_ms: tuple[float, ...] = ()   #: image stamp -> the controller's first command on it
    cycles_without_brake: int = 0                 #: timed cycles with no brake within 1 s
    frames_unanswered: int = 0                    #: frames with no detections within 2 s
    stages_ms: tuple[tuple[float, float, float], ...] = ()  #: per sample, in E2E_STAGES order

    def fields(self) -> dict:
        """The bench's e2e_* and image_to_command_* fields; none when not timed."""
        if not self.timed:
            return {}
        return {'e2e_samples': len(self.brake_ms),
                'e2e_ms_p50': percentile(self.brake_ms, 50), 'e2e_ms_p99': percentile(self.brake_ms, 99),
                'e2e_ms_max': round(max(self.brake_ms), 3) if self.brake_ms else None,
                'e2e_hub_reported_ms_p50': percentile(self.hub_reported_ms, 50),
                'e2e_cycles_without_brake': self.cycles_without_brake,
                'e2e_frames_unanswered': self.frames_unanswered,
                'image_to_command_ms_p50': percentile(self.image_to_command_ms, 50),
                'image_to_command_ms_p99': percentile(self.image_to_command_ms, 99),
                **({'e2e_stage_ms_p50': {name: percentile([s[i] for s in self.stages_ms], 50)
                                         for i, name in enumerate(E2E_STAGES)}} if self.stages_ms else {})}


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def render_clear_frames(width: int, height: int, rng) -> list:
    """Candidate frames without signs: rails backgrounds (checked against the model by the caller)."""
    return [_bgr(background('rails', width, height, rng)[0]) for _ in range(12)]


def render_stop_frames(width: int, height: int, rng) -> list:
    """Candidate frames with one near stop sign (15-25 % of the image height) on rails backgrounds."""
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
    rng = np.random.default_rng(3)

    def labels(image) -> set:
        found = detector.detect(image).detections
        frame = Frame(0, image.shape[0], tuple(PolicyDetection(d.label, d.score, d.height) for d in found))
        return set(qualifying_labels(frame, config))
    clear = [f for f in render_clear_frames(width, height, rng) if not labels(f)][:keep]
    stop = [f for f in render_stop_frames(width, height, rng) if labels(f) == {'stop'}][:keep]
    return clear, stop


class BrakeListener:
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
        """time_ns of the latest brake write at or after `t_ns`, or None within `timeout_s`."""
        with self.cond:
            self.cond.wait_for(lambda: self.brakes_ns and self.brakes_ns[-1] >= t_ns, timeout_s)
            return self.brakes_ns[-1] if self.brakes_ns and self.brakes_ns[-1] >= t_ns else None


def pipeline_params() -> dict:
    """config/<node>.yaml of the controller and the hub, with the sim hub and E2E_POLICY on top."""
    files = [load_params_file(path) for path in (config_path(f'{name}.yaml') for name in E2E_NODES)
             if path.is_file()]
    params = {name: params_for_node(files, name) for name in E2E_NODES}
    params['hub_node'] = dict(params['hub_node'], backend='sim', sim_log_orders=False)
    params['speed_controller'] = dict(params['speed_controller'], **E2E_POLICY)
    return params


def measure_e2e(detector, graph: BenchGraph, width: int, height: int, rate_hz: float, samples: int) -> E2eResult:
    """`samples` timed stop cycles (after E2E_WARMUP_CYCLES) of `width` x `height` frames in `graph`.

    `graph` already spins the detector (bench process or its own) and the bench's node.
    """
    pipeline = create_nodes(E2E_NODES, pipeline_params(), namespace=graph.namespace, context=graph.context)
    graph.adopt(pipeline)
    controller = next(n for n in pipeline if n.get_name() == 'speed_controller')
    hub = next(n for n in pipeline if n.get_name() == 'hub_node')
    config = controller.config
    clear, stop = e2e_scenes(detector, config, width, height)
    if not clear or not stop:
        return E2eResult(f'no rendered {"clear" if not clear else "stop"} frame that this model '
                         'and the policy see as such: no brake to time')
    listener = BrakeListener()
    hub.virtual_hub.on_order = listener
    graph.spin_also(pipeline)
    cycle = [clear[i % len(clear)] for i in range(config.confirm_window)] + \
        [stop[i % len(stop)] for i in range(config.confirm_hits)]
    timed = _time_cycles(graph, hub, listener, SerializedFrames(cycle), 1.0 / rate_hz, samples)
    reason = (f'{len(timed.brake_ms)} stop cycles: {config.confirm_window} clear frames then '
              f'{config.confirm_hits} frames with a stop sign (the last one completes the '
              f'{config.confirm_hits}-of-{config.confirm_window} confirmation); '
              'e2e = that frame\'s stamp -> the brake bytes written to the sim hub (listener on the virtual hub); '
              f'frames at <= {rate_hz:g} Hz, each sent after the previous one was answered; controller with '
              + ', '.join(f'{k}={v:g}' for k, v in E2E_POLICY.items()))
    if timed.cycles_without_brake:
        reason += f'; {timed.cycles_without_brake} cycles gave no brake within 1 s'
    return replace(timed, reason=reason)


def _time_cycles(graph: BenchGraph, hub, listener: BrakeListener, cycle: SerializedFrames, period_s: float,
                 samples: int) -> E2eResult:
    """The timed run, its reason left empty; the confirming frame is the cycle's last."""
    collector = graph.collector
    brake_ms, hub_reported, stages, missed, unanswered = [], [], [], 0, 0
    collector.forget_commands()
    deadline = time.monotonic() + 10
    while not hub.session.status.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    next_t = time.monotonic()
    for c in range(E2E_WARMUP_CYCLES + samples):
        if c == E2E_WARMUP_CYCLES:
            collector.forget_commands()
        for i in range(len(cycle)):
            time.sleep(max(0.0, next_t - time.monotonic()))
            stamp = time.time_ns()
            data = cycle.stamped(i, stamp)
            reported_before = hub.session.status.latency_ms
            t0 = time.perf_counter()
            graph.publish(data)
            next_t = time.monotonic() + period_s
            if i < len(cycle) - 1:
                if collector.wait_arrival(stamp, 2.0) is None:
                    unanswered += 1
                continue
            brake_ns = listener.wait_brake_after(stamp, 1.0)  # the confirming frame: the brake first
            arrived = collector.wait_arrival(stamp, 2.0)
            if arrived is None:
                unanswered += 1
            if c < E2E_WARMUP_CYCLES:
                continue
            if brake_ns is None:
                missed += 1
                continue
            brake_ms.append((brake_ns - stamp) / 1e6)
            command_ns = collector.command_arrivals.get(stamp)
            if arrived is not None and command_ns is not None:
                detector = (arrived - t0) * 1e3
                stages.append((detector, (command_ns - stamp) / 1e6 - detector, (brake_ns - command_ns) / 1e6))
            settled = time.monotonic() + 0.1  # the session sets its status just after the write
            while hub.session.status.latency_ms == reported_before and time.monotonic() < settled:
                time.sleep(0.001)
            hub_reported.append(float(hub.session.status.latency_ms))
    return E2eResult('', True, tuple(brake_ms), tuple(hub_reported), tuple(collector.command_latencies),
                     missed, unanswered, tuple(stages))
