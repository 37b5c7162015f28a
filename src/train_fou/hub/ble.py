"""The real hub over Bluetooth Low Energy, with bleak (imported here only, and lazily).

Scan for the LWP3 service and LEGO manufacturer data, pick the hub whose
name or address was configured (never the first one in range; list the hubs
seen when none matches), connect a fresh BleakClient, start notifications.
bleak's own errors are converted to HubError at this boundary. The scanner
and client classes can be injected (tests pass stand-ins at the bleak API).
"""
from __future__ import annotations

import asyncio
from typing import Any
from collections.abc import Callable

from train_fou.hub.errors import HubError, HubNotFoundError
from train_fou.hub.transport import Advertiser, DisconnectCallback, HubInfo, NotifyCallback
from train_fou.lwp3.bytecodes import LEGO_COMPANY_ID, LWP3_CHARACTERISTIC_UUID, LWP3_SERVICE_UUID


def advertiser_from(device: Any, adv: Any) -> Advertiser | None:
    """An Advertiser from bleak's (BLEDevice, AdvertisementData), None when it is no LEGO hub."""
    data = (getattr(adv, 'manufacturer_data', None) or {}).get(LEGO_COMPANY_ID)
    if data is None:
        return None
    kind = data[1] if len(data) >= 2 else 0
    name = getattr(adv, 'local_name', None) or getattr(device, 'name', None) or ''
    rssi = getattr(adv, 'rssi', None)
    return Advertiser(name, str(device.address), kind, int(rssi) if rssi is not None else 0, device)


def matches(ad: Advertiser, name: str, address: str) -> bool:
    """True when `ad` is the configured hub: the address (any case) and/or the exact name."""
    if address and ad.address.lower() != address.lower():
        return False
    if name and ad.name != name:
        return False
    return bool(name or address)


def _bleak_classes() -> tuple[type, type]:
    try:
        from bleak import BleakClient, BleakScanner
    except ImportError as err:
        raise HubError(f'the ble backend needs bleak ({err}); install it or use --backend sim') from err
    return BleakScanner, BleakClient


class BleTransport:
    """One BLE connection to the configured LEGO hub."""

    backend = 'ble'

    def __init__(self, name: str = '', address: str = '', scan_timeout_s: float = 10.0,
                 scanner_cls: type | None = None, client_cls: type | None = None) -> None:
        self.name = name
        self.address = address
        self.scan_timeout_s = scan_timeout_s
        self._scanner_cls = scanner_cls
        self._client_cls = client_cls
        self._client: Any = None

    def _classes(self) -> tuple[type, type]:
        if self._scanner_cls is None or self._client_cls is None:
            scanner, client = _bleak_classes()
            self._scanner_cls = self._scanner_cls or scanner
            self._client_cls = self._client_cls or client
        return self._scanner_cls, self._client_cls

    async def scan(self, timeout_s: float, until: Callable[[Advertiser], bool] | None = None) -> list[Advertiser]:
        """LEGO hubs advertising the LWP3 service, strongest first; stops early once `until` is met."""
        scanner_cls, _ = self._classes()
        seen: dict[str, Advertiser] = {}
        found = asyncio.Event()

        def on_advertisement(device: Any, adv: Any) -> None:
            ad = advertiser_from(device, adv)
            if ad is None:
                return
            seen[ad.address] = ad
            if until is not None and until(ad):
                found.set()

        try:
            scanner = scanner_cls(detection_callback=on_advertisement, service_uuids=[LWP3_SERVICE_UUID])
            await scanner.start()
        except Exception as err:  # bleak raises BleakError, OSError, D-Bus errors...
            raise HubError(f'cannot scan for hubs (is a Bluetooth adapter present and BlueZ running?): '
                           f'{err or type(err).__name__}') from err
        try:
            await asyncio.wait_for(found.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        finally:
            try:
                await scanner.stop()
            except Exception:
                pass
        return sorted(seen.values(), key=lambda ad: -ad.rssi)

    def _wanted(self, ad: Advertiser) -> bool:
        return matches(ad, self.name, self.address)

    async def connect(self, on_notify: NotifyCallback, on_disconnect: DisconnectCallback) -> HubInfo:
        if not (self.name or self.address):
            raise HubError('no hub_name or hub_address configured: train_fou never connects to whichever '
                           'hub is in range (run `train-fou hub scan` and set one)')
        _, client_cls = self._classes()
        seen = await self.scan(self.scan_timeout_s, until=self._wanted)
        wanted = [ad for ad in seen if self._wanted(ad)]
        if not wanted:
            listed = '; '.join(ad.describe() for ad in seen) or 'none'
            who = ' / '.join(x for x in (f'name {self.name!r}' if self.name else '',
                                         f'address {self.address}' if self.address else '') if x)
            raise HubNotFoundError(f'no LEGO hub with {who} in {self.scan_timeout_s:g} s; hubs seen: {listed}')
        ad = wanted[0]
        client = client_cls(ad.device, disconnected_callback=lambda _client: on_disconnect())
        try:
            await client.connect()
            await client.start_notify(LWP3_CHARACTERISTIC_UUID, lambda _sender, data: on_notify(bytes(data)))
        except Exception as err:
            try:
                await client.disconnect()
            except Exception:
                pass
            raise HubError(f'cannot connect to {ad.describe()}: {err or type(err).__name__}') from err
        self._client = client
        return HubInfo(ad.name, ad.address, ad.kind, ad.rssi)

    async def write(self, data: bytes) -> None:
        if self._client is None:
            raise HubError('not connected')
        try:
            await self._client.write_gatt_char(LWP3_CHARACTERISTIC_UUID, bytes(data), response=True)
        except Exception as err:
            raise HubError(f'write {bytes(data).hex()} failed: {err or type(err).__name__}') from err

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.disconnect()
        except Exception:
            pass
