"""The virtual City hub answers LWP3 bytes like the real one, and the session drives it safely."""
from __future__ import annotations

import time

from helpers.waiting import LIVENESS_S, StepClock, timing_trials, wait_until

from train_fou.hub import HubSession, NoMotorError, SimTransport, VirtualHub
from train_fou.lwp3.bytecodes import IOType

BRAKE = bytes.fromhex('080081001151007f')
POWER_50 = bytes.fromhex('0800810011510032')
POWER_40 = bytes.fromhex('0800810011510028')
FEEDBACK_A = bytes.fromhex('050082000a')


def test_virtual_hub_announces_a_train_motor_on_port_a_first():
    frames = VirtualHub().connect_messages()
    assert frames[0] == bytes([
        0x0F,  # length
        0x00,  # hub id
        0x04,  # hub attached I/O
        0x00,  # port A
        0x01,  # attached
        0x02, 0x00,  # train motor
        0x00, 0x00, 0x00, 0x10,  # hardware revision
        0x00, 0x00, 0x00, 0x10,  # software revision
    ])
    assert len(frames) == 4  # + status light, current, voltage


def test_virtual_hub_applies_power_answers_feedback_and_says_it_in_words():
    orders = []
    hub = VirtualHub(on_order=orders.append)
    assert hub.receive(POWER_50) == [FEEDBACK_A]
    assert hub.power[0] == 50
    assert hub.receive(BRAKE) == [FEEDBACK_A]
    assert (hub.power[0], hub.braked[0]) == (0, True)
    assert orders == ['motor A power 50', 'motor A brake']


def test_virtual_hub_reports_battery_when_updates_are_enabled():
    assert VirtualHub(battery_pct=87).receive(bytes.fromhex('0500010602')) == [bytes.fromhex('060001060657')]


def test_virtual_hub_rejects_power_on_an_empty_port_and_unknown_commands():
    hub = VirtualHub()
    assert hub.receive(bytes.fromhex('0800810111510032')) == [bytes.fromhex('0500058106')]
    assert hub.receive(bytes.fromhex('0500450012')) == [bytes.fromhex('0500054505')]


def test_virtual_hub_announces_switch_off():
    hub = VirtualHub()
    assert hub.receive(bytes.fromhex('04000201')) == [bytes.fromhex('04000230')]
    assert hub.disconnect_requested


def test_virtual_hub_accepts_several_messages_in_one_write():
    hub = VirtualHub()
    assert hub.receive(POWER_50 + BRAKE) == [FEEDBACK_A, FEEDBACK_A]


class Recorder:
    def __init__(self, clock=time.monotonic):
        self.clock = clock   #: what `sent` is stamped with (a StepClock is read without counting)
        self.sent: list[tuple[float, bytes]] = []
        self.received: list[bytes] = []
        self.events: list[tuple[str, str]] = []
        self.sequence: list[str] = []  #: bytes written ('> hex') and events ('level: text'), in order

    def trace(self, direction, data):
        if direction == '>':
            self.sent.append((self.clock.now if isinstance(self.clock, StepClock) else self.clock(), data))
            self.sequence.append(f'> {data.hex()}')
        else:
            self.received.append(data)

    def event(self, level, text):
        self.events.append((level, text))
        self.sequence.append(f'{level}: {text}')


def make_session(hub, rec, **kw):
    kw.setdefault('deadman_timeout_s', 0.5)
    return HubSession(lambda: SimTransport(hub), 0, backend='sim', on_trace=rec.trace,
                      on_event=rec.event, **kw)


def test_session_brakes_first_then_drives_and_brakes_on_stop_with_acknowledgement():
    hub, rec = VirtualHub(), Recorder()
    session = make_session(hub, rec)
    session.start()
    try:
        assert wait_until(lambda: session.status.connected and session.status.battery_pct == 100, LIVENESS_S)
        session.command(50, source_stamp_ns=time.time_ns())
        assert wait_until(lambda: hub.power[0] == 50, LIVENESS_S)
        assert session.status.applied_power == 50
        assert session.status.latency_ms >= 0
    finally:
        acknowledged = session.stop()
    assert acknowledged
    assert rec.sent[0][1] == BRAKE
    assert rec.sent[-1][1] == BRAKE
    assert hub.braked[0] or hub.power[0] == 0
    assert not session.status.connected


def test_session_dead_man_brakes_when_commands_stop():
    """Wall clock, a liveness check (the exact bound is the next test's): every trial reported, from the
    moment the last command is given; more than one late trial of three fails."""
    hub, rec = VirtualHub(), Recorder()
    session = make_session(hub, rec)
    session.start()
    try:
        assert wait_until(lambda: session.status.connected, LIVENESS_S)

        def written_after(frame, t0):
            return next((t for t, data in rec.sent if data == frame and t > t0), None)

        def commands_stop_until_brake() -> float:
            last_command = time.monotonic()
            session.command(40)   # the last one: the dead-man counts from here
            assert wait_until(lambda: written_after(BRAKE, last_command) is not None, LIVENESS_S)
            assert written_after(POWER_40, last_command) < written_after(BRAKE, last_command)  # it drove first
            return written_after(BRAKE, last_command) - last_command

        timing_trials(commands_stop_until_brake, 0.6)
        warning = next(i for i, line in enumerate(rec.sequence) if line.startswith('warn: dead-man'))
        assert rec.sequence[warning - 1] == f'> {BRAKE.hex()}', rec.sequence  # brake first, then the log line
    finally:
        session.stop()


def test_session_dead_man_brakes_exactly_after_its_timeout_on_the_session_clock():
    """The session's own clock, moved by the test: no brake while the last command is deadman_timeout_s
    old, the brake as soon as it is older; every time (a brake late every other time fails here)."""
    clock = StepClock(1000.0)
    hub, rec = VirtualHub(), Recorder(clock)
    session = make_session(hub, rec, clock=clock, deadman_timeout_s=0.5)
    session.start()
    try:
        assert wait_until(lambda: session.status.ready, LIVENESS_S)
        for trial in range(4):
            t0 = 1000.0 + 10.0 * trial
            clock.set(t0)
            session.command(40)
            assert wait_until(lambda: hub.power[0] == 40, LIVENESS_S), trial
            clock.set(t0 + 0.5)                      # the last command exactly 0.5 s old: still driving
            assert clock.wait_reads(3, LIVENESS_S)
            assert (hub.power[0], hub.braked[0]) == (40, False), trial
            clock.set(t0 + 0.501)                    # older than the timeout: the next look brakes
            assert clock.wait_reads(3, LIVENESS_S)
            assert hub.braked[0], trial
            braked_at = next(t for t, data in reversed(rec.sent) if data == BRAKE)
            assert braked_at == t0 + 0.501, (trial, braked_at - t0)
        assert sum(level == 'warn' and text.startswith('dead-man') for level, text in rec.events) == 4
    finally:
        session.stop()


def test_session_reconnects_after_the_hub_switches_off_and_brakes_first():
    hub, rec = VirtualHub(), Recorder()
    session = make_session(hub, rec, backoff_initial_s=0.05, deadman_timeout_s=5.0)
    session.start()
    try:
        assert wait_until(lambda: session.status.connected, LIVENESS_S)
        session.command(30)
        assert wait_until(lambda: hub.power[0] == 30, LIVENESS_S)
        hub.disconnect_requested = True  # the hub says it will switch off on the next write
        before = len(rec.sent)
        session.command(35)
        assert wait_until(lambda: session.connections == 2 and session.status.connected, LIVENESS_S)
        after_reconnect = [data for _, data in rec.sent[before + 1:]]
        assert after_reconnect[0] == BRAKE
        assert wait_until(lambda: hub.power[0] == 35, LIVENESS_S)
    finally:
        session.stop()


def test_session_waits_for_the_motor_and_reports_a_missing_one():
    hub, rec = VirtualHub(devices={1: IOType.TRAIN_MOTOR}), Recorder()
    session = make_session(hub, rec, attach_timeout_s=0.2, backoff_initial_s=0.05)
    session.start()
    try:
        assert wait_until(lambda: 'no motor attached to port A' in session.status.last_error, LIVENESS_S)
    finally:
        session.stop()


def test_a_port_the_hub_does_not_announce_ends_a_session_that_gives_up_on_it():
    hub, rec = VirtualHub(devices={1: IOType.TRAIN_MOTOR}), Recorder()
    session = make_session(hub, rec, attach_settle_s=0.2, give_up_on=(NoMotorError,))
    session.start()
    try:
        assert wait_until(lambda: not session.running, LIVENESS_S)
        assert session.connections == 1 and not session.status.connected
        assert session.status.last_error == ('no motor attached to port A of Virtual City Hub: the hub announced '
                                             'devices on B, 0x32, 0x3b, 0x3c only')
    finally:
        session.stop()


def test_another_device_on_the_port_is_no_motor():
    hub, rec = VirtualHub(devices={0: IOType.VOLTAGE}), Recorder()
    session = make_session(hub, rec, give_up_on=(NoMotorError,))
    session.start()
    try:
        assert wait_until(lambda: not session.running, LIVENESS_S)
        assert 'no motor attached to port A of Virtual City Hub: it has device type 0x0014' in session.status.last_error
    finally:
        session.stop()


def test_inhibit_brakes_ignores_commands_and_says_why_until_released():
    hub, rec = VirtualHub(), Recorder()
    session = make_session(hub, rec, deadman_timeout_s=5.0)
    session.start()
    try:
        session.command(40)
        assert wait_until(lambda: hub.power[0] == 40, LIVENESS_S)
        session.inhibit('2 publishers on /train/speed_command')
        assert wait_until(lambda: hub.braked[0], LIVENESS_S)
        session.command(100)
        assert wait_until(lambda: session.status.inhibited and session.status.last_error.startswith('2 publishers'),
                          LIVENESS_S)
        assert 'motor A power 100' not in hub.orders
        session.inhibit('')
        session.command(45)
        assert wait_until(lambda: hub.power[0] == 45, LIVENESS_S)
        assert session.status.inhibited == '' and session.status.last_error == ''
    finally:
        session.stop()
