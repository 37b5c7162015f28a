"""hub_node on a real executor and real DDS: dead-man, shutdown brake, BLE reconnects, hub choice."""
from __future__ import annotations

import time

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from helpers.fake_ble import crowded_world
from helpers.hub import BRAKE, power_frame, record_writes
from helpers.spinning import Spinner
from helpers.waiting import LIVENESS_S, timing_trials, wait_until

from train_fou import qos
from train_fou.msg import HubState, SpeedCommand
from train_fou.nodes import ParameterError
from train_fou.nodes.hub_node import HubNode


class Controller(Node):
    """Plays the speed controller: a command every 50 ms while `power` is not None; records hub/state."""

    def __init__(self, context):
        super().__init__('hub_node_bench', context=context)
        self.pub = self.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
        self.states: list[HubState] = []
        self.create_subscription(HubState, 'hub/state', self.states.append, qos.LATCHED)
        self.power: int | None = None
        self.last_sent = 0.0
        self.create_timer(0.05, self.send)

    def send(self):
        if self.power is None:
            return
        msg = SpeedCommand(power=self.power, brake=False, state=SpeedCommand.CRUISE, reason='test')
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.source_stamp = msg.header.stamp
        self.pub.publish(msg)
        self.last_sent = time.monotonic()

    def latest(self) -> HubState | None:
        return self.states[-1] if self.states else None


@pytest.fixture
def spin(ros_context):
    """Start nodes on the shipped executor in a thread; stop and destroy them afterwards."""
    spinner = Spinner(ros_context, 0.05, destroy_first=True)  # hub first: its on_shutdown needs no executor
    yield spinner
    spinner.close(5)


def test_sim_hub_drives_and_brakes_within_0_6_s_when_commands_stop(ros_context, spin):
    hub_node = HubNode(context=ros_context)
    writes = record_writes(hub_node.virtual_hub)  # (time.monotonic(), frame) as the hub receives them
    bench = Controller(ros_context)
    spin(hub_node, bench)
    bench.power = 45
    assert wait_until(lambda: bench.latest() is not None and bench.latest().applied_power == 45, LIVENESS_S)
    state = bench.latest()
    assert state.connected and state.backend == 'sim' and state.hub_kind == HubState.HUB_KIND_CITY
    assert state.battery_percent == 100
    assert 0.0 <= state.command_latency_ms < 1000.0

    def commands_stop_until_brake() -> float:
        bench.power = 45  # (again, after an earlier trial's brake)
        assert wait_until(lambda: bench.latest().applied_power == 45, LIVENESS_S)
        bench.power = None  # kill the command stream
        last = bench.last_sent
        assert wait_until(lambda: hub_node.virtual_hub.braked[0], LIVENESS_S)  # measured below, from stamps
        braked_at = next(t for t, frame in writes if frame == BRAKE and t > last)
        assert wait_until(lambda: bench.latest().applied_power == 0, LIVENESS_S)
        return braked_at - last

    # wall clock: a liveness check over three trials (the exact bound: test_hub_virtual, on the session's clock)
    timing_trials(commands_stop_until_brake, 0.6)


def test_hub_state_is_published_periodically(ros_context, spin):
    hub_node = HubNode(context=ros_context)
    bench = Controller(ros_context)
    spin(hub_node, bench)
    assert wait_until(lambda: bench.latest() is not None and bench.latest().connected, LIVENESS_S)
    count = len(bench.states)
    assert wait_until(lambda: len(bench.states) - count >= 11, LIVENESS_S)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in bench.states[count:count + 11]]
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    # the node's own stamps and the median gap (state_rate_hz 10): robust to a stalled CI machine
    assert 0.05 <= gaps[len(gaps) // 2] <= 0.15, gaps


def test_on_shutdown_writes_an_acknowledged_brake_before_disconnecting(ros_context, spin):
    hub_node = HubNode(context=ros_context)
    bench = Controller(ros_context)
    spin(hub_node, bench)
    bench.power = 30
    assert wait_until(lambda: hub_node.virtual_hub.power[0] == 30, LIVENESS_S)
    bench.power = None
    assert hub_node.on_shutdown() is True
    assert hub_node.virtual_hub.orders[-1] == 'motor A brake'
    assert not hub_node.session.status.connected


def test_ble_backend_picks_the_named_hub_and_brakes_first_after_every_reconnect(ros_context, spin):
    world = crowded_world()
    target = world.radios[1]
    hub_node = HubNode(context=ros_context, ble_classes=(world.scanner_cls, world.client_cls), parameter_overrides=[
        Parameter('backend', value='ble'), Parameter('hub_name', value='Train Fou'),
        Parameter('scan_timeout_s', value=1.0), Parameter('reconnect_backoff_max_s', value=0.5)])
    bench = Controller(ros_context)
    spin(hub_node, bench)
    bench.power = 40
    assert wait_until(lambda: target.hub.power[0] == 40, LIVENESS_S)
    assert wait_until(lambda: bench.latest().name == 'Train Fou' and bench.latest().backend == 'ble', LIVENESS_S)

    def driven_by_client(count, power):
        """The `count`-th client exists and has itself written `power` (not a stale motor state)."""
        return len(world.clients) == count and power_frame(power) in world.clients[-1].writes

    world.clients[-1].drop()                                   # link lost mid-run
    assert wait_until(lambda: driven_by_client(2, 40), LIVENESS_S)
    target.fail_writes = 1                                     # a write fails
    bench.power = 35
    assert wait_until(lambda: driven_by_client(3, 35), LIVENESS_S)
    world.clients[-1].inject(bytes.fromhex('0500058106'))     # generic error
    world.clients[-1].inject(bytes.fromhex('04000230'))       # hub will switch off
    assert wait_until(lambda: driven_by_client(4, 35), LIVENESS_S)

    assert all(client.radio is target for client in world.clients)
    assert all(client.writes[0] == BRAKE for client in world.clients)
    assert wait_until(lambda: bench.latest().connected, LIVENESS_S)
    bench.power = None
    assert hub_node.on_shutdown()
    assert world.clients[-1].writes[-1] == BRAKE


def test_read_only_and_out_of_range_parameters_are_rejected(ros_context, spin):
    hub_node = HubNode(context=ros_context)
    spin(hub_node)
    result = hub_node.set_parameters([Parameter('backend', value='ble')])[0]
    assert not result.successful and 'read-only' in result.reason
    result = hub_node.set_parameters([Parameter('deadman_timeout_s', value=30.0)])[0]
    assert not result.successful and 'out of range' in result.reason
    assert hub_node.set_parameters([Parameter('deadman_timeout_s', value=0.3)])[0].successful
    assert hub_node.session.deadman_timeout_s == 0.3


def test_unknown_backend_refuses_to_start_with_a_clear_message(ros_context):
    with pytest.raises(ParameterError, match="^hub_node: parameter backend = 'usb': expected one of sim, ble$"):
        HubNode(context=ros_context, parameter_overrides=[Parameter('backend', value='usb')])


def test_hub_node_reports_its_health_on_diagnostics(ros_context, spin):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    hub_node = HubNode(context=ros_context)
    bench = Controller(ros_context)
    statuses = []
    bench.create_subscription(DiagnosticArray, '/diagnostics',
                              lambda m: statuses.extend(s for s in m.status if s.name == 'hub_node: LEGO hub'),
                              qos.DIAGNOSTICS)
    spin(hub_node, bench)
    bench.power = 30
    assert wait_until(lambda: any('power 30 %' in s.message for s in statuses), LIVENESS_S), statuses
    status = next(s for s in statuses if 'power 30 %' in s.message)
    assert status.level == DiagnosticStatus.OK
    assert {kv.key: kv.value for kv in status.values}['applied_power'] == '30'


@pytest.mark.parametrize(('status', 'level', 'text'), [
    (dict(connected=False, last_error='no hub named Train Base'), 'error', 'not connected: no hub named Train Base'),
    (dict(connected=True, ready=False), 'warn', 'waiting for the train motor'),
    (dict(connected=True, ready=True, battery_pct=12), 'warn', 'battery low: 12 %'),
    (dict(connected=True, ready=True, battery_pct=80, braked=True, name='City'), 'ok', 'connected to City: braked'),
    (dict(connected=True, ready=True, braked=False, applied_power=-40), 'ok', 'power -40 %'),
])
def test_health_levels(status, level, text):
    from train_fou.hub import HubStatus, health
    got_level, message = health(HubStatus(**status))
    assert got_level == level and text in message


def test_a_second_publisher_of_speed_commands_brakes_the_train_and_is_never_obeyed(ros_context, spin):
    """One master: another ROS system on the domain sends power 100; the hub brakes until it is gone."""
    import pathlib
    import subprocess
    import sys

    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    hub_node = HubNode(context=ros_context)
    bench = Controller(ros_context)
    errors = []
    bench.create_subscription(DiagnosticArray, '/diagnostics', lambda m: errors.extend(
        s for s in m.status if s.name == 'hub_node: LEGO hub' and s.level == DiagnosticStatus.ERROR), qos.DIAGNOSTICS)
    spin(hub_node, bench)
    bench.power = 30
    assert wait_until(lambda: hub_node.virtual_hub.power[0] == 30, LIVENESS_S)
    intruder = subprocess.Popen([sys.executable, '-m', 'helpers.intruder'], cwd=pathlib.Path(__file__).parent,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert intruder.stdout.readline().strip() == 'publishing'
        assert wait_until(lambda: '2 publishers on /train/speed_command' in bench.latest().last_error, LIVENESS_S)
        assert hub_node.virtual_hub.braked[0]
        # the publisher is in the graph at once; its node's name follows (then hub/state names it)
        assert wait_until(lambda: '/intruder' in bench.latest().last_error, LIVENESS_S), bench.latest().last_error
        assert '/hub_node_bench' in bench.latest().last_error
        assert wait_until(lambda: any('braked: 2 publishers' in s.message for s in errors), LIVENESS_S)
    finally:
        intruder.terminate()
        intruder.wait(timeout=LIVENESS_S)
    assert wait_until(lambda: hub_node.virtual_hub.power[0] == 30 and bench.latest().last_error == '', LIVENESS_S)
    assert 'motor A power 100' not in hub_node.virtual_hub.orders
