"""The bleak transport and the session against stand-ins at the bleak API boundary
(helpers.fake_ble: FakeBleak's scanner and client over VirtualHubs)."""
from __future__ import annotations

import asyncio
import time

import pytest

from helpers.fake_ble import crowded_world
from helpers.hub import BRAKE
from helpers.waiting import LIVENESS_S, wait_until

from train_fou.hub import HubError, HubNotFoundError, HubSession
from train_fou.hub.ble import matches
from train_fou.hub.transport import Advertiser


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
