"""Stand-ins at bleak's API boundary: FakeBleak builds BleakScanner/BleakClient look-alikes over
VirtualHubs, with real bleak BLEDevice/AdvertisementData/BleakError values, the same call signatures
(detection_callback, service_uuids, disconnected_callback, start_notify,
write_gatt_char(..., response=True)), and hooks to drop the link, fail writes and inject notifications.
"""
from __future__ import annotations

import asyncio

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from train_fou.hub import VirtualHub
from train_fou.hub.ble import BleTransport
from train_fou.lwp3.bytecodes import LEGO_COMPANY_ID, LWP3_CHARACTERISTIC_UUID, LWP3_SERVICE_UUID


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
