"""metrics_exporter: the train's Prometheus metrics on http://<host>:<port>/metrics (prometheus-client).

One node that listens to what the pipeline already publishes (signs/detections,
train/speed_command, hub/state, /diagnostics) and keeps the metrics of
train_fou.monitoring.metrics; prometheus-client serves them from its own
thread. The detector, controller and hub carry no exporter of their own:
their control path stays free of HTTP, and one scrape target sees the whole
train whether the nodes share a process (`train-fou run`) or not (`ros2
launch`). It never subscribes to the camera.
"""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from train_fou import qos
from train_fou.monitoring.errors import MonitoringError
from train_fou.monitoring.live_view import diagnostic_level
from train_fou.monitoring.metrics import TrainMetrics
from train_fou.msg import HubState, SignDetectionArray, SpeedCommand
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, int_range


class MetricsExporter(CheckedParameters, Node):
    def __init__(self, **kwargs):
        self._server = None  # what destroy_node needs, before anything can fail
        super().__init__('metrics_exporter', **kwargs)
        with destroyed_on_failure(self):
            self._setup()

    def _setup(self) -> None:
        from prometheus_client import start_http_server

        ro = dict(read_only=True)
        host = self.declare_parameter('host', '0.0.0.0', described(
            'address to listen on (0.0.0.0: every interface, 127.0.0.1: this machine only)', **ro)).value
        port = self.declare_parameter('port', 9464, int_range('HTTP port of /metrics (0: any free port)',
                                                              0, 65535, **ro)).value
        if not host.strip():
            raise self.parameter_error('host', host, 'an address to listen on, e.g. 0.0.0.0 or 127.0.0.1')
        self.metrics = TrainMetrics()
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.metrics.registry)
        except OSError as err:
            raise MonitoringError(f'metrics_exporter: cannot serve metrics on {host}:{port}: '
                                  f'{err.strerror or err} (another exporter on this port? set port)') from None
        self.port = self._server.server_address[1]
        self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE)
        self.create_subscription(SpeedCommand, 'train/speed_command', self._on_command, qos.RELIABLE)
        self.create_subscription(HubState, 'hub/state', self._on_hub, qos.LATCHED)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, qos.DIAGNOSTICS)
        self.get_logger().info(f'Prometheus metrics on http://{host}:{self.port}/metrics')

    def _on_detections(self, msg: SignDetectionArray) -> None:
        self.metrics.detections([d.label for d in msg.detections], msg.frames_dropped, msg.preprocess_ms,
                                msg.inference_ms, msg.postprocess_ms, msg.backend, time.time())

    def _on_command(self, msg: SpeedCommand) -> None:
        self.metrics.speed_command(msg.state, msg.power, msg.brake, time.time())

    def _on_hub(self, msg: HubState) -> None:
        self.metrics.hub_state(msg.connected, msg.battery_percent, msg.rssi, msg.applied_power,
                               msg.command_latency_ms, msg.backend, msg.name, msg.address, time.time())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.time()
        for status in msg.status:
            self.metrics.diagnostic_status(status.name, diagnostic_level(status.level),
                                           {kv.key: kv.value for kv in status.values}, now)

    def destroy_node(self):
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        return super().destroy_node()
