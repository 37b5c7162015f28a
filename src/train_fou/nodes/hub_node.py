"""hub_node: train/speed_command in, LEGO hub motor out, hub/state published.

A thin adapter over train_fou.hub.HubSession, whose asyncio loop runs in a
thread owned by this node. Backends: `sim` (an in-process virtual City hub,
the default) and `ble` (bleak). The session brakes on the dead-man, on every
reconnect and in `on_shutdown()` (brake written and acknowledged before it
disconnects); the runner calls `on_shutdown()` on SIGINT, SIGTERM and SIGHUP.

One master: the hub obeys train/speed_command only while the topic has a
single publisher. A second one (another controller, another ROS system on the
same domain, a stray `ros2 topic pub`) brakes the train, logs it once, says so
in hub/state.last_error and on /diagnostics; commands apply again once a single
publisher remains. The count is read on every command, before it reaches the
motor (a second publisher is in the ROS graph before its first message is
delivered), and at 20 Hz, so a silent second publisher brakes the train too.
`trace: true` logs every LWP3 message as hex (`> ` sent, `< ` received), as
`train-fou hub drive --trace` prints them.
"""
from __future__ import annotations

import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from train_fou import qos
from train_fou.hub import HubSession, HubStatus, SimTransport, VirtualHub, health
from train_fou.lwp3.bytecodes import port_from_name, port_name
from train_fou.msg import HubState, SpeedCommand
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range, stamp_ns

BACKENDS = ('sim', 'ble')
#: How often the publishers of train/speed_command are counted without a command (one master).
MASTER_CHECK_HZ = 20.0


def _publisher_name(info) -> str:
    """'/ns/node' of a publisher; its GID while the graph does not know the node's name yet."""
    if info.node_name and not info.node_name.startswith('_NODE_NAME_UNKNOWN'):
        return f'{info.node_namespace.rstrip("/")}/{info.node_name}'
    return 'a node not yet named, gid ' + bytes(info.endpoint_gid[:8]).hex()


class HubNode(CheckedParameters, Node):
    """Drive the train motor from train/speed_command; publish hub/state."""

    def __init__(self, ble_classes: tuple[type, type] | None = None, **kwargs: Any) -> None:
        """`ble_classes`: (scanner, client) stand-ins for bleak's BleakScanner/BleakClient (tests)."""
        self._stopped = True  # until the session exists: destroy_node is safe from the first line on
        self._closed = False
        self._lock = threading.Lock()
        self.brake_acknowledged = False  #: on_shutdown's result (the CLI reports it)
        super().__init__('hub_node', **kwargs)
        with destroyed_on_failure(self):
            self._setup(ble_classes)

    def _setup(self, ble_classes) -> None:
        declare = lambda name, value, descriptor: self.declare_parameter(name, value, descriptor).value  # noqa: E731
        ro = dict(read_only=True)
        backend = self.declare_choice('backend', 'sim', BACKENDS, 'sim (virtual hub) or ble (LEGO hub)')
        name = declare('hub_name', '', described('advertised name of the hub to connect to', **ro))
        address = declare('hub_address', '', described('BLE address of the hub (or its name)', **ro))
        port_text = declare('port', 'A', described('motor port: A, B, C or D', **ro))
        deadman = declare('deadman_timeout_s', 0.5, float_range(
            'brake when no speed command came for this long', 0.1, 10.0))
        rate = declare('state_rate_hz', 10.0, float_range('hub/state period rate', 5.0, 50.0, **ro))
        scan_s = declare('scan_timeout_s', 10.0, float_range('BLE scan time', 1.0, 120.0, **ro))
        ack_s = declare('ack_timeout_s', 1.0, float_range(
            'wait this long for the brake acknowledgement', 0.1, 10.0, **ro))
        backoff_s = declare('reconnect_backoff_max_s', 8.0, float_range(
            'longest wait between reconnects', 0.5, 120.0, **ro))
        log_orders = declare('sim_log_orders', True, described(
            'sim backend: log every order the virtual hub receives, in words', **ro))
        trace = declare('trace', False, described('log every LWP3 message as hex: "> " sent, "< " received', **ro))
        try:
            port = port_from_name(port_text)
        except ValueError:
            raise self.parameter_error('port', port_text, 'A, B, C, D or a port number 0..255') from None
        if backend == 'ble' and not (name or address):
            raise self.parameter_error(
                'hub_name', name, 'the name (or hub_address: the address) of the hub to drive with backend ble; '
                'train_fou never connects to whichever hub is in range (`train-fou hub scan` lists them)')

        self.virtual_hub: VirtualHub | None = None
        if backend == 'sim':
            self.virtual_hub = VirtualHub(
                on_order=(lambda text: self.get_logger().info(f'sim hub: {text}')) if log_orders else None)
            hub = self.virtual_hub
            factory = lambda: SimTransport(hub)  # noqa: E731
        else:
            from train_fou.hub.ble import BleTransport
            scanner_cls, client_cls = ble_classes or (None, None)
            factory = lambda: BleTransport(name, address, scan_s, scanner_cls, client_cls)  # noqa: E731

        self._state_pub = self.create_publisher(HubState, 'hub/state', qos.LATCHED)
        self._command_sub = self.create_subscription(SpeedCommand, 'train/speed_command', self._on_command,
                                                     qos.RELIABLE)
        self._masters = 1  # publishers of train/speed_command at the last count (1: obey)
        self.create_timer(1.0 / rate, self._publish_periodic)
        self.create_timer(1.0 / MASTER_CHECK_HZ, self._check_masters)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.session = HubSession(
            factory, port, backend=backend, deadman_timeout_s=deadman, ack_timeout_s=ack_s,
            backoff_max_s=backoff_s, connect_timeout_s=scan_s + 30.0,
            on_status=self._publish, on_event=self._log_event, on_trace=self._log_trace if trace else None,
            wall_clock_ns=lambda: self.get_clock().now().nanoseconds)
        self._publish(self.session.status)
        self.session.start()
        self._stopped = False
        target = name or address or 'the virtual hub'
        self.get_logger().info(f'{backend} backend: driving port {port_name(port)} of {target}')

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == 'deadman_timeout_s':
                self.session.deadman_timeout_s = float(p.value)
        return SetParametersResult(successful=True)

    def _log_event(self, level: str, text: str) -> None:
        # one call site per severity: rclpy refuses to mix them
        if level == 'error':
            self.get_logger().error(text)
        elif level == 'warn':
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def _log_trace(self, direction: str, data: bytes) -> None:
        self.get_logger().info(f'{direction} {data.hex()}')

    def _on_command(self, msg: SpeedCommand) -> None:
        if self._check_masters():
            self.session.command(int(msg.power), bool(msg.brake), stamp_ns(msg.source_stamp))

    def _check_masters(self) -> bool:
        """Count the publishers of train/speed_command; brake while there is more than one. True: obey."""
        count = self.count_publishers(self._command_sub.topic_name)
        if count <= 1:
            if self._masters > 1:
                self._masters = count
                self.session.inhibit('')
                self.get_logger().info('one publisher of train/speed_command again: commands apply')
            return True
        first = self._masters <= 1
        self._masters = count
        names = ', '.join(sorted(_publisher_name(p) for p in
                                 self.get_publishers_info_by_topic(self._command_sub.topic_name)))
        reason = (f'{count} publishers on {self._command_sub.topic_name} ({names}): braked until only one '
                  'remains (one master: another controller or ROS system on this domain?)')
        if reason != self.session.status.inhibited:  # node names arrive after the publisher itself
            self.session.inhibit(reason)
        if first:
            self.get_logger().error(reason)
        return False

    def _publish(self, status: HubStatus) -> None:
        with self._lock:
            if self._closed:
                return
            msg = HubState()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.connected = status.connected
            msg.name = status.name
            msg.address = status.address
            msg.hub_kind = int(status.kind) & 0xFF
            msg.battery_percent = max(-1, min(100, int(status.battery_pct)))
            msg.rssi = max(-32768, min(32767, int(status.rssi)))
            msg.applied_power = int(status.applied_power)
            msg.command_latency_ms = float(status.latency_ms)
            msg.backend = status.backend
            msg.last_error = status.last_error
            self._state_pub.publish(msg)

    def _publish_periodic(self) -> None:
        self._publish(self.session.status)

    def _publish_diagnostics(self) -> None:
        status = self.session.status
        level, message = health(status)
        values = {'backend': status.backend, 'connected': status.connected, 'ready': status.ready,
                  'name': status.name, 'address': status.address, 'battery_pct': status.battery_pct,
                  'rssi': status.rssi, 'applied_power': status.applied_power, 'braked': status.braked,
                  'command_latency_ms': f'{status.latency_ms:.1f}', 'last_error': status.last_error}
        self._diag_pub.publish(diagnostics(self.get_clock().now().to_msg(), f'{self.get_name()}: LEGO hub', level,
                                           message, values, hardware_id=status.address or 'hub'))

    def on_shutdown(self) -> bool:
        """Brake, wait for the hub's acknowledgement, disconnect. True when the hub acknowledged."""
        if self._stopped:
            return self.brake_acknowledged
        self._stopped = True
        acknowledged = self.brake_acknowledged = self.session.stop()
        self._publish(self.session.status)
        if acknowledged:
            self.get_logger().info('shutdown: brake acknowledged, disconnected')
        else:
            self.get_logger().warning('shutdown: no acknowledged brake (hub not connected or not answering)')
        return acknowledged

    def destroy_node(self) -> None:
        self.on_shutdown()
        with self._lock:
            self._closed = True
        super().destroy_node()
