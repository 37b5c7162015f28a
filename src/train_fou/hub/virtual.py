"""A virtual LEGO City hub that speaks LWP3 bytes, and the transport that reaches it in-process.

`VirtualHub` is pure (no I/O, no clock): bytes in, reply frames out. It
announces a train motor on port A plus the City hub's internal devices,
answers power orders with port output feedback (`05 00 82 00 0a`), reports
its battery, and models the motor power. Orders are reported in words
through `on_order` ("motor A power 30", "motor A brake"); the library never
prints, the CLI or node decides.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from train_fou.hub.errors import HubError
from train_fou.hub.transport import DisconnectCallback, HubInfo, NotifyCallback
from train_fou.lwp3.bytecodes import (
    POWER_BRAKE, POWER_MAX_PCT, AlertOperation, AlertStatus, CompletionInfo, ErrorCode, Feedback,
    HubAction, HubKind, HubProperty, HubPropertyOperation, IOType, MessageKind)
from train_fou.lwp3.errors import Lwp3DecodeError
from train_fou.lwp3.messages import (
    AttachedIOMessage, GenericErrorMessage, HubActionMessage, HubAlertMessage, HubPropertyMessage, Message,
    PortOutputFeedbackMessage, WriteDirectModeDataMessage)
from train_fou.lwp3.parser import StreamParser

#: Internal devices of a City hub (88009): status light, current and voltage sensors.
CITY_HUB_INTERNAL = {0x32: IOType.RGB_LIGHT, 0x3B: IOType.CURRENT, 0x3C: IOType.VOLTAGE}


class VirtualHub:
    """A City hub with a train motor on port A, driven by LWP3 frames."""

    def __init__(self, name: str = 'Virtual City Hub', address: str = 'sim:90:84:2b:00:00:01',
                 kind: int = HubKind.CITY_HUB, devices: dict[int, int] | None = None,
                 battery_pct: int = 100, rssi: int = -50,
                 on_order: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.address = address
        self.kind = kind
        self.devices = dict({0: IOType.TRAIN_MOTOR} if devices is None else devices)
        self.battery_pct = battery_pct
        self.rssi = rssi
        self.on_order = on_order
        #: Motor power per port, percent; 0 when braked or floating.
        self.power: dict[int, int] = {port: 0 for port in self.devices}
        self.braked: dict[int, bool] = {port: False for port in self.devices}
        self.orders: list[str] = []
        self.disconnect_requested = False
        self._parser = StreamParser()

    def connect_messages(self) -> list[bytes]:
        """What the hub sends when notifications start: one attached-I/O message per device."""
        self._parser.reset()
        self.disconnect_requested = False
        devices = {**self.devices, **CITY_HUB_INTERNAL}
        return [bytes(AttachedIOMessage(port, io_type)) for port, io_type in devices.items()]

    def receive(self, data: bytes) -> list[bytes]:
        """Handle written bytes; return the reply frames in order."""
        replies: list[Message] = []
        for item in self._parser.feed(data):
            if isinstance(item, Lwp3DecodeError):
                replies.append(GenericErrorMessage(0x00, ErrorCode.COMMAND_NOT_RECOGNIZED))
            else:
                replies.extend(self._handle(item))
        return [bytes(reply) for reply in replies]

    def _order(self, text: str) -> None:
        self.orders.append(text)
        if self.on_order is not None:
            self.on_order(text)

    def _handle(self, msg: Message) -> list[Message]:
        if isinstance(msg, WriteDirectModeDataMessage):
            return self._power(msg)
        if isinstance(msg, HubPropertyMessage):
            return self._property(msg)
        if isinstance(msg, HubAlertMessage):
            if msg.op == AlertOperation.REQUEST_UPDATE:
                return [HubAlertMessage(msg.alert, AlertOperation.UPDATE, AlertStatus.OK)]
            return []
        if isinstance(msg, HubActionMessage):
            return self._action(msg)
        return [GenericErrorMessage(int(msg.kind), ErrorCode.COMMAND_NOT_RECOGNIZED)]

    def _power(self, msg: WriteDirectModeDataMessage) -> list[Message]:
        value = msg.power_value
        if msg.port not in self.devices or value is None or \
                not (value == POWER_BRAKE or -POWER_MAX_PCT <= value <= POWER_MAX_PCT):
            return [GenericErrorMessage(MessageKind.PORT_OUTPUT_COMMAND, ErrorCode.INVALID_USE)]
        braked = value == POWER_BRAKE
        self.braked[msg.port] = braked
        self.power[msg.port] = 0 if braked else value
        self._order(msg.describe())
        if msg.completion != CompletionInfo.COMMAND_FEEDBACK:
            return []
        return [PortOutputFeedbackMessage(((msg.port, Feedback.BUFFER_EMPTY_COMPLETED | Feedback.IDLE),))]

    def _property(self, msg: HubPropertyMessage) -> list[Message]:
        values = {
            HubProperty.ADVERTISING_NAME: self.name,
            HubProperty.BATTERY_VOLTAGE: self.battery_pct,
            HubProperty.BUTTON: False,
            HubProperty.RSSI: self.rssi,
            HubProperty.SYSTEM_TYPE_ID: self.kind,
        }
        if msg.op == HubPropertyOperation.SET and msg.prop == HubProperty.ADVERTISING_NAME:
            self.name = msg.value
            return []
        if msg.op in (HubPropertyOperation.ENABLE_UPDATES, HubPropertyOperation.REQUEST_UPDATE) \
                and msg.prop in values:
            return [HubPropertyMessage(msg.prop, HubPropertyOperation.UPDATE, values[msg.prop])]
        if msg.op == HubPropertyOperation.DISABLE_UPDATES:
            return []
        return [GenericErrorMessage(MessageKind.HUB_PROPERTIES, ErrorCode.INVALID_USE)]

    def _action(self, msg: HubActionMessage) -> list[Message]:
        if msg.action in (HubAction.SWITCH_OFF, HubAction.SHUTDOWN):
            self.disconnect_requested = True
            self._stop_all()
            return [HubActionMessage(HubAction.WILL_SWITCH_OFF)]
        if msg.action == HubAction.DISCONNECT:
            self.disconnect_requested = True
            self._stop_all()
            return [HubActionMessage(HubAction.WILL_DISCONNECT)]
        return []

    def _stop_all(self) -> None:
        for port in self.power:
            self.power[port] = 0
            self.braked[port] = False

    def lost_connection(self) -> None:
        """A real hub lets its motors float when the BLE link drops."""
        self._stop_all()


class SimTransport:
    """In-process link to a VirtualHub; replies arrive as asynchronous notifications like BLE ones."""

    backend = 'sim'

    def __init__(self, hub: VirtualHub) -> None:
        self.hub = hub
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_notify: NotifyCallback | None = None
        self._on_disconnect: DisconnectCallback | None = None
        self.connected = False

    async def connect(self, on_notify: NotifyCallback, on_disconnect: DisconnectCallback) -> HubInfo:
        self._loop = asyncio.get_running_loop()
        self._on_notify, self._on_disconnect = on_notify, on_disconnect
        self.connected = True
        for frame in self.hub.connect_messages():
            self._loop.call_soon(self._deliver, frame)
        return HubInfo(self.hub.name, self.hub.address, self.hub.kind, self.hub.rssi)

    def _deliver(self, frame: bytes) -> None:
        if self.connected and self._on_notify is not None:
            self._on_notify(frame)

    def _drop(self) -> None:
        if self.connected:
            self.connected = False
            self.hub.lost_connection()
            if self._on_disconnect is not None:
                self._on_disconnect()

    async def write(self, data: bytes) -> None:
        if not self.connected or self._loop is None:
            raise HubError(f'{self.hub.name}: not connected')
        for frame in self.hub.receive(bytes(data)):
            self._loop.call_soon(self._deliver, frame)
        if self.hub.disconnect_requested:
            self._loop.call_soon(self._drop)

    async def disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self.hub.lost_connection()
