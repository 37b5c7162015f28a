"""What the hub session needs from a link to a hub: connect, write bytes, get notifications, disconnect.

Two implementations: `ble.BleTransport` (bleak, the real hub) and
`virtual.SimTransport` (an in-process virtual City hub). A transport is used
for one connection; the session builds a fresh one to reconnect.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Callable

from train_fou.lwp3.bytecodes import HubKind

NotifyCallback = Callable[[bytes], None]
DisconnectCallback = Callable[[], None]


def kind_name(kind: int) -> str:
    try:
        return HubKind(kind).name
    except ValueError:
        return f'0x{kind:02x}'


@dataclass(frozen=True)
class Advertiser:
    """A LEGO hub seen while scanning."""

    name: str
    address: str
    kind: int
    rssi: int
    device: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return f'{self.name or "?"} [{self.address}] {kind_name(self.kind)} {self.rssi} dBm'


@dataclass(frozen=True)
class HubInfo:
    """The hub a transport connected to."""

    name: str
    address: str
    kind: int
    rssi: int = 0


class Transport(Protocol):
    """One connection to one hub. Callbacks are called on the session's event loop."""

    backend: str

    async def connect(self, on_notify: NotifyCallback, on_disconnect: DisconnectCallback) -> HubInfo:
        """Find the configured hub, connect, start notifications; raise HubError on failure."""

    async def write(self, data: bytes) -> None:
        """Write one LWP3 message; raise HubError when it cannot be written."""

    async def disconnect(self) -> None:
        """Drop the connection (never raises)."""
