"""The bleak transport and the session against stand-ins at the bleak API boundary.

FakeBleak builds BleakScanner/BleakClient look-alikes over VirtualHubs: real
bleak BLEDevice/AdvertisementData/BleakError values, the same call signatures
(detection_callback, service_uuids, disconnected_callback, start_notify,
write_gatt_char(..., response=True)), and hooks to drop the link, fail writes
and inject notifications. test_hub_node.py uses it too.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from conftest import LIVENESS_S, wait_until

from train_fou.hub import HubError, HubNotFoundError, HubSession, VirtualHub
from train_fou.hub.ble import BleTransport, matches
from train_fou.hub.transport import Advertiser
from train_fou.lwp3.bytecodes import LEGO_COMPANY_ID, LWP3_CHARACTERISTIC_UUID, LWP3_SERVICE_UUID

BRAKE = bytes.fromhex('080081001151007f')


class Radio:
    """One advertiser: a VirtualHub behind fake BLE."""

    def __init__(self, name, address, kind=0x41, rssi=-60, lego=True):
        self.hub = VirtualHub(name=name, address=address, kind=kind)
        self.device = BLEDevice(address, name, details=None)
        manufacturer = {LEGO_COMPANY_ID: bytes([0x00, kind, 0x1F, 0x00, 0x00, 0x00])} if lego else {}
        self.adv = AdvertisementData(local_name=name, manufacturer_data=manufacturer, service_data={},
                                     service_uuids=[LWP3_SERVICE_UUID] if lego else [], tx_power=None,
                                     rssi=rssi, platform_data=())
        self.fail_writes = 0


class FakeBleak:
    """A little radio world; `.scanner_cls` and `.client_cls` are what BleTransport gets injected."""

    def __init__(self, *radios):
        self.radios = list(radios)
        self.clients: list = []
        self.refuse_connect = 0
        world = self

        class FakeBleakScanner:
            def __init__(self, detection_callback=None, service_uuids=None, scanning_mode='active', **kwargs):
                self.callback = detection_callback
                self.service_uuids = service_uuids

            async def start(self):
                loop = asyncio.get_running_loop()
                for radio in world.radios:
                    loop.call_soon(self.callback, radio.device, radio.adv)

            async def stop(self):
                pass

        class FakeBleakClient:
            def __init__(self, address_or_ble_device, disconnected_callback=None, services=None, **kwargs):
                address = getattr(address_or_ble_device, 'address', address_or_ble_device)
                self.radio = next(r for r in world.radios if r.device.address == address)
                self.disconnected_callback = disconnected_callback
                self.is_connected = False
                self.writes: list[bytes] = []
                self.loop = None
                self.callback = None
                world.clients.append(self)

            async def connect(self, **kwargs):
                if world.refuse_connect:
                    world.refuse_connect -= 1
                    raise BleakError('Device with address was not found')
                self.loop = asyncio.get_running_loop()
                self.is_connected = True

            async def start_notify(self, char_specifier, callback, **kwargs):
                assert char_specifier == LWP3_CHARACTERISTIC_UUID
                self.callback = callback
                for frame in self.radio.hub.connect_messages():
                    self.loop.call_soon(self._notify, frame)

            def _notify(self, data):
                if self.is_connected and self.callback is not None:
                    self.callback(LWP3_CHARACTERISTIC_UUID, bytearray(data))

            async def write_gatt_char(self, char_specifier, data, response=None):
                assert char_specifier == LWP3_CHARACTERISTIC_UUID
                if not self.is_connected:
                    raise BleakError('Not connected')
                if self.radio.fail_writes:
                    self.radio.fail_writes -= 1
                    raise BleakError('ATT error: write failed')
                self.writes.append(bytes(data))
                for reply in self.radio.hub.receive(bytes(data)):
                    self.loop.call_soon(self._notify, reply)

            async def disconnect(self):
                self.is_connected = False

            # -- test hooks, callable from the test thread --
            def drop(self):
                def _drop():
                    self.is_connected = False
                    if self.disconnected_callback:
                        self.disconnected_callback(self)
                self.loop.call_soon_threadsafe(_drop)

            def inject(self, data):
                self.loop.call_soon_threadsafe(self._notify, bytes(data))

        self.scanner_cls = FakeBleakScanner
        self.client_cls = FakeBleakClient

    def transport(self, name='', address='', scan_timeout_s=0.3):
        return BleTransport(name, address, scan_timeout_s, scanner_cls=self.scanner_cls, client_cls=self.client_cls)


def crowded_world():
    return FakeBleak(
        Radio('Technic Hub', '90:84:2B:00:00:03', kind=0x80, rssi=-40),
        Radio('Train Fou', '90:84:2B:00:00:02', rssi=-70),
        Radio('Other City', '90:84:2B:00:00:01', rssi=-50),
        Radio('Headphones', 'AA:BB:CC:DD:EE:FF', lego=False, rssi=-30),
    )


def run(coro):
    return asyncio.run(coro)


def test_scan_lists_only_lego_hubs_strongest_first():
    seen = run(crowded_world().transport().scan(0.2))
    assert [(ad.name, ad.kind) for ad in seen] == [('Technic Hub', 0x80), ('Other City', 0x41), ('Train Fou', 0x41)]


@pytest.mark.parametrize(('name', 'address', 'expected'), [
    ('Train Fou', '', 'Train Fou'),
    ('', '90:84:2b:00:00:02', 'Train Fou'),
    ('Other City', '90:84:2B:00:00:01', 'Other City'),
])
def test_connect_picks_the_configured_hub_among_several_advertisers(name, address, expected):
    world = crowded_world()

    async def go():
        transport = world.transport(name, address)
        info = await transport.connect(lambda data: None, lambda: None)
        await transport.disconnect()
        return info
    info = run(go())
    assert info.name == expected
    assert [c.radio.hub.name for c in world.clients] == [expected]


def test_no_matching_hub_lists_the_hubs_seen():
    with pytest.raises(HubNotFoundError) as err:
        run(crowded_world().transport('Nope').connect(lambda data: None, lambda: None))
    assert "name 'Nope'" in str(err.value)
    assert 'Train Fou [90:84:2B:00:00:02] CITY_HUB -70 dBm' in str(err.value)
    assert 'Technic Hub' in str(err.value) and 'Headphones' not in str(err.value)


def test_without_name_or_address_the_transport_refuses_to_pick_a_hub():
    with pytest.raises(HubError, match='never connects to whichever hub is in range'):
        run(crowded_world().transport().connect(lambda data: None, lambda: None))


def test_name_and_address_must_both_match_when_both_are_set():
    ad = Advertiser('Train Fou', '90:84:2B:00:00:02', 0x41, -60)
    assert matches(ad, 'Train Fou', '90:84:2b:00:00:02')
    assert not matches(ad, 'Train Fou', '90:84:2B:00:00:01')
    assert not matches(ad, '', '')


def test_bleak_errors_become_hub_errors_naming_the_hub():
    world = crowded_world()
    world.refuse_connect = 1
    with pytest.raises(HubError, match=r'cannot connect to Train Fou \[90:84:2B:00:00:02\].*not found'):
        run(world.transport('Train Fou').connect(lambda data: None, lambda: None))


class Log:
    def __init__(self):
        self.events = []

    def __call__(self, level, text):
        self.events.append((level, text))

    def has(self, text):
        return any(text in t for _, t in self.events)


def ble_session(world, log, **kw):
    return HubSession(lambda: world.transport('Train Fou'), 0, backend='ble', on_event=log,
                      backoff_initial_s=0.05, backoff_max_s=0.2, **kw)


def keep_commanding(session, power, until, timeout_s):
    """Command `power` every 50 ms (like the controller) until `until()` or the deadline."""
    return wait_until(until, timeout_s, spin=lambda dt: (session.command(power), time.sleep(dt)))


@pytest.mark.parametrize('fault', ['drop', 'write-failure', 'will-switch-off'])
def test_session_reconnects_with_a_fresh_client_and_brakes_first(fault):
    world, log = crowded_world(), Log()
    target = world.radios[1]
    session = ble_session(world, log)
    session.start()
    try:
        assert keep_commanding(session, 40, lambda: target.hub.power[0] == 40, LIVENESS_S)
        first = world.clients[-1]
        if fault == 'drop':
            first.drop()
        elif fault == 'write-failure':
            target.fail_writes = 1  # the next write (the order for 30 below) fails
        else:
            first.inject(bytes.fromhex('0500058106'))  # generic error: invalid use of port output
            first.inject(bytes.fromhex('04000230'))    # hub will switch off
        assert keep_commanding(session, 30, lambda: len(world.clients) >= 2 and world.clients[-1].writes
                               and target.hub.power[0] == 30, LIVENESS_S)
        second = world.clients[-1]
        assert second is not first
        assert second.writes[0] == BRAKE
        assert all(c.radio is target for c in world.clients)
    finally:
        assert session.stop()
    assert world.clients[-1].writes[-1] == BRAKE
    expected = {'drop': 'connection lost', 'write-failure': 'write failed',
                'will-switch-off': 'hub will switch off'}[fault]
    assert log.has(expected)
    if fault == 'will-switch-off':
        assert log.has('hub error INVALID_USE for PORT_OUTPUT_COMMAND')


def test_garbage_notifications_are_logged_and_the_session_keeps_driving():
    world, log = crowded_world(), Log()
    target = world.radios[1]
    session = ble_session(world, log)
    session.start()
    try:
        assert keep_commanding(session, 20, lambda: target.hub.power[0] == 20, LIVENESS_S)
        client = world.clients[-1]
        for junk in (b'\xff', b'\x03\x00', bytes(range(40)), b'\x05\x00\x82'):
            client.inject(junk)
        assert keep_commanding(session, 25, lambda: target.hub.power[0] == 25, LIVENESS_S)
        assert len(world.clients) == 1
        assert log.has('bad bytes from the hub')
    finally:
        session.stop()


def test_missing_hub_is_reported_with_the_hubs_seen_and_retried():
    world, log = crowded_world(), Log()
    session = HubSession(lambda: world.transport('Absent Hub', scan_timeout_s=0.05), 0, backend='ble',
                         on_event=log, backoff_initial_s=0.05, backoff_max_s=0.1)
    session.start()
    try:
        assert wait_until(lambda: sum('hubs seen' in t for _, t in log.events) >= 2, LIVENESS_S)
        assert 'Train Fou' in session.status.last_error
        assert world.clients == []
    finally:
        assert not session.stop()
