"""The train's Prometheus metrics, fed from what the pipeline publishes (prometheus-client, no rclpy).

`TrainMetrics` owns one registry; the metrics_exporter node calls `detections`,
`speed_command`, `hub_state` and `diagnostic_status` with the fields of the
messages it receives, and serves the registry over HTTP. Per-frame figures
come from signs/detections (every processed frame, so counts and histograms
are exact); the detector's own rolling figures (fps, latency quantiles over
image in -> detections out), the controller's speed limit and the hub's
readiness only exist in /diagnostics, whose values are strings: they are
parsed here, and a value that is not a number ('n/a') leaves the gauge as it
was. Metric names follow Prometheus' conventions: base units (seconds),
`_total` counters, `_info` for labels that describe.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info

from train_fou.monitoring.live_view import STATE_NAMES

#: Seconds: a CPU detector takes 15-200 ms a frame, a Jetson's TensorRT 2-10 ms.
DETECTOR_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
#: Image stamp -> hub write: the detector's time plus a few milliseconds (SPEC §8), more over a bad BLE link.
COMMAND_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
#: The component a /diagnostics status reports on: the part of its name after 'node: '.
COMPONENTS = {'sign detector': 'detector', 'speed policy': 'controller', 'LEGO hub': 'hub'}


def number(text) -> float | None:
    """A diagnostics value as a number: '12.5', 'True', 'False'; None for 'n/a', 'never', '' or NaN."""
    if isinstance(text, bool):
        return float(text)
    text = str(text).strip()
    if text in ('True', 'true'):
        return 1.0
    if text in ('False', 'false'):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class TrainMetrics:
    """Every metric of the train, in one registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # detector: per frame, from signs/detections
        self.frames = Counter('train_fou_detector_frames', 'frames the detector answered (signs/detections)',
                              registry=r)
        self.frames_dropped = Counter('train_fou_detector_frames_dropped',
                                      'frames replaced before inference (the detector keeps only the newest)',
                                      registry=r)
        self.signs = Counter('train_fou_detector_detections', 'signs detected, per label', ['label'],
                                  registry=r)
        self.processing = Histogram('train_fou_detector_processing_seconds',
                                    'preprocess + inference + postprocess of one frame', buckets=DETECTOR_BUCKETS,
                                    registry=r)
        self.inference = Histogram('train_fou_detector_inference_seconds', 'the model call of one frame',
                                   buckets=DETECTOR_BUCKETS, registry=r)
        self.backend = Info('train_fou_detector', 'inference backend and model of the detector', registry=r)
        # detector: its own rolling figures, from /diagnostics
        self.fps = Gauge('train_fou_detector_fps', 'frames answered per second (the detector\'s count)', registry=r)
        self.latency = Gauge('train_fou_detector_latency_seconds',
                             'image in -> detections out, rolling quantiles of the detector', ['quantile'],
                             registry=r)
        # controller: from train/speed_command
        self.state = Enum('train_fou_controller_state', 'speed controller state',
                          states=list(STATE_NAMES.values()), registry=r)
        self.state_code = Gauge('train_fou_controller_state_code', 'speed controller state as its number: ' + ', '.join(
            f'{k} {v}' for k, v in STATE_NAMES.items()), registry=r)
        self.power = Gauge('train_fou_controller_power_percent', 'commanded motor power (-100..100)', registry=r)
        self.brake = Gauge('train_fou_controller_brake', '1 while the command brakes', registry=r)
        self.commands = Counter('train_fou_controller_commands', 'speed commands received', registry=r)
        self.transitions = Counter('train_fou_controller_state_changes', 'state changes, per new state', ['state'],
                                   registry=r)
        self.limit = Gauge('train_fou_controller_limit_percent', 'active speed limit (/diagnostics)', registry=r)
        # hub: from hub/state (and its readiness from /diagnostics)
        self.hub_connected = Gauge('train_fou_hub_connected', '1 while connected to the LEGO hub', registry=r)
        self.hub_ready = Gauge('train_fou_hub_ready', '1 while the motor is attached and commands apply', registry=r)
        self.battery = Gauge('train_fou_hub_battery_percent', 'hub battery (-1: unknown)', registry=r)
        self.rssi = Gauge('train_fou_hub_rssi_dbm', 'hub signal strength', registry=r)
        self.applied = Gauge('train_fou_hub_applied_power_percent', 'power the hub applies (127: brake)',
                             registry=r)
        self.command_latency = Gauge('train_fou_hub_last_command_latency_seconds',
                                     'image stamp -> bytes written to the hub, last command', registry=r)
        self.command_latencies = Histogram('train_fou_hub_command_latency_seconds',
                                           'image stamp -> bytes written to the hub', buckets=COMMAND_BUCKETS,
                                           registry=r)
        self.hub = Info('train_fou_hub', 'hub backend, name and address', registry=r)
        # everything on /diagnostics
        self.level = Gauge('train_fou_diagnostic_level', '/diagnostics level per status: 0 OK, 1 WARN, 2 ERROR, '
                           '3 STALE', ['name'], registry=r)
        self.last_seen = Gauge('train_fou_last_message_timestamp_seconds',
                               'wall time of the last message, per topic', ['topic'], registry=r)
        self._dropped_seen = 0
        self._state: int | None = None
        self._latency_ms: float | None = None
        self._backend: dict[str, str] = {}
        self._hub: dict[str, str] = {}

    def _seen(self, topic: str, now_s: float | None) -> None:
        if now_s is not None:
            self.last_seen.labels(topic).set(now_s)

    def detections(self, labels: Iterable[str], frames_dropped: int, preprocess_ms: float, inference_ms: float,
                   postprocess_ms: float, backend: str, now_s: float | None = None) -> None:
        """One signs/detections message (one processed frame)."""
        self.frames.inc()
        for label in labels:
            self.signs.labels(label or 'unknown').inc()
        dropped = int(frames_dropped)
        # the detector counts since it started: a smaller count means it restarted
        self.frames_dropped.inc(dropped - self._dropped_seen if dropped >= self._dropped_seen else dropped)
        self._dropped_seen = dropped
        self.processing.observe(max(0.0, preprocess_ms + inference_ms + postprocess_ms) / 1e3)
        self.inference.observe(max(0.0, inference_ms) / 1e3)
        if backend and backend != self._backend.get('backend'):
            self._backend = {**self._backend, 'backend': backend}
            self.backend.info(self._backend)
        self._seen('signs/detections', now_s)

    def speed_command(self, state: int, power: int, brake: bool, now_s: float | None = None) -> None:
        state = int(state)
        name = STATE_NAMES.get(state)
        if name is not None:
            self.state.state(name)
            if state != self._state:
                self.transitions.labels(name).inc()
        self._state = state
        self.state_code.set(state)
        self.power.set(0 if brake else int(power))
        self.brake.set(1 if brake else 0)
        self.commands.inc()
        self._seen('train/speed_command', now_s)

    def hub_state(self, connected: bool, battery_percent: int, rssi: int, applied_power: int,
                  command_latency_ms: float, backend: str, name: str, address: str, now_s: float | None = None) -> None:
        self.hub_connected.set(1 if connected else 0)
        self.battery.set(int(battery_percent))
        self.rssi.set(int(rssi))
        self.applied.set(int(applied_power))
        latency = float(command_latency_ms)
        if latency > 0 and math.isfinite(latency):
            self.command_latency.set(latency / 1e3)
            # hub/state comes on every change and periodically: count each new figure once
            if latency != self._latency_ms:
                self.command_latencies.observe(latency / 1e3)
            self._latency_ms = latency
        described = {'backend': str(backend), 'name': str(name), 'address': str(address)}
        if described != self._hub:
            self._hub = described
            self.hub.info(described)
        self._seen('hub/state', now_s)

    def diagnostic_status(self, name: str, level: int, values: Mapping[str, str], now_s: float | None = None) -> None:
        """One status of a /diagnostics message."""
        self.level.labels(name).set(int(level))
        component = COMPONENTS.get(name.partition(': ')[2])
        if component == 'detector':
            self._set(self.fps, values.get('fps'))
            for quantile, key in (('0.5', 'latency_p50_ms'), ('0.95', 'latency_p95_ms')):
                latency_ms = number(values.get(key, ''))
                if latency_ms is not None:  # a label only once there is a figure
                    self.latency.labels(quantile).set(latency_ms / 1e3)
            model = values.get('model')
            if model and model != self._backend.get('model'):
                self._backend = {**self._backend, 'model': model}
                self.backend.info(self._backend)
        elif component == 'controller':
            self._set(self.limit, values.get('limit_pct'))
        elif component == 'hub':
            self._set(self.hub_ready, values.get('ready'))
        self._seen('/diagnostics', now_s)

    @staticmethod
    def _set(gauge, text) -> None:
        value = number(text) if text is not None else None
        if value is not None:
            gauge.set(value)
