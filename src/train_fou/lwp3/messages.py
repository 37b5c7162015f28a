"""LWP3 messages: one frozen dataclass per message kind, `bytes(msg)` encodes, `decode_message` decodes.

Common header: length (one byte, or two when the message is 128 bytes or
longer: low 7 bits with bit 7 set, then the rest), hub id (0), message kind.
Decoding validates the length, the hub id and every enumerated value and
raises `Lwp3DecodeError` naming the bad byte; a well-formed message of a kind
train_fou does not model comes back as `UnknownMessage`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from collections.abc import Callable

from train_fou.lwp3.bytecodes import (
    HUB_ID, POWER_BRAKE, POWER_FLOAT, POWER_MAX_PCT, AlertKind, AlertOperation, AlertStatus,
    CompletionInfo, ErrorCode, Feedback, HubAction, HubProperty, HubPropertyOperation, IOEvent,
    MessageKind, PortOutputSubcommand, StartupInfo, port_name)
from train_fou.lwp3.errors import Lwp3DecodeError

E = TypeVar('E')

#: Longest message the stream parser waits for (the two-byte length could say 32767).
MAX_MESSAGE_LENGTH = 255


def encode_header(kind: int, payload_length: int) -> bytes:
    """Length byte(s), hub id and kind for a message with `payload_length` bytes after the header."""
    length = 3 + payload_length
    if length < 0x80:
        return bytes((length, HUB_ID, kind))
    length += 1
    return bytes(((length & 0x7F) | 0x80, length >> 7, HUB_ID, kind))


def read_length(data: bytes | bytearray) -> tuple[int, int] | None:
    """(message length, header length size) from the first byte(s), None when more bytes are needed."""
    if not data:
        return None
    if data[0] & 0x80:
        if len(data) < 2:
            return None
        return (data[0] & 0x7F) | (data[1] << 7), 2
    return data[0], 1


def _enum(cls: Callable[[int], E], value: int, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        raise Lwp3DecodeError(f'unknown {what} 0x{value:02x}') from None


def _need(payload: bytes, size: int, what: str, exact: bool = True) -> None:
    if len(payload) < size or (exact and len(payload) != size):
        expected = f'{size}' if exact else f'at least {size}'
        raise Lwp3DecodeError(f'{what}: expected {expected} payload bytes, got {len(payload)}')


class Message:
    """Base of every message: `bytes(msg)` is the complete frame."""

    kind: ClassVar[MessageKind]

    def payload(self) -> bytes:
        """The bytes after the common header."""
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        body = self.payload()
        return encode_header(self.kind, len(body)) + body


# -- hub properties -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Codec:
    """How a property value is written: struct format, text or fixed raw bytes."""

    fmt: str = ''
    text: bool = False
    raw_size: int = 0

    def encode(self, value: Any) -> bytes:
        if self.text:
            return str(value).encode('utf-8')
        if self.raw_size:
            data = bytes(value)
            if len(data) != self.raw_size:
                raise ValueError(f'expected {self.raw_size} bytes, got {len(data)}')
            return data
        return struct.pack(self.fmt, int(value))

    def decode(self, data: bytes) -> Any:
        if self.text:
            try:
                return data.decode('utf-8')
            except UnicodeDecodeError as err:
                raise Lwp3DecodeError(f'property text is not UTF-8: {data.hex()}') from err
        if self.raw_size:
            _need(data, self.raw_size, 'property value')
            return bytes(data)
        _need(data, struct.calcsize(self.fmt), 'property value')
        return struct.unpack(self.fmt, data)[0]


#: Value encoding of each hub property (lookup table, not an if-chain).
PROPERTY_CODECS: dict[HubProperty, _Codec] = {
    HubProperty.ADVERTISING_NAME: _Codec(text=True),
    HubProperty.BUTTON: _Codec('<?'),
    HubProperty.FW_VERSION: _Codec('<i'),
    HubProperty.HW_VERSION: _Codec('<i'),
    HubProperty.RSSI: _Codec('<b'),
    HubProperty.BATTERY_VOLTAGE: _Codec('<B'),
    HubProperty.BATTERY_TYPE: _Codec('<B'),
    HubProperty.MANUFACTURER_NAME: _Codec(text=True),
    HubProperty.RADIO_FW_VERSION: _Codec(text=True),
    HubProperty.LWP_VERSION: _Codec('<H'),
    HubProperty.SYSTEM_TYPE_ID: _Codec('<B'),
    HubProperty.HW_NETWORK_ID: _Codec('<B'),
    HubProperty.PRIMARY_MAC: _Codec(raw_size=6),
    HubProperty.SECONDARY_MAC: _Codec(raw_size=6),
    HubProperty.HW_NETWORK_FAMILY: _Codec('<B'),
}

#: Operations that carry a value.
_VALUE_OPERATIONS = frozenset({HubPropertyOperation.SET, HubPropertyOperation.UPDATE})


@dataclass(frozen=True)
class HubPropertyMessage(Message):
    """Hub property: set / enable updates / request (downstream) or update (upstream) a property."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_PROPERTIES
    prop: HubProperty
    op: HubPropertyOperation
    value: Any = None

    def __post_init__(self) -> None:
        if (self.op in _VALUE_OPERATIONS) != (self.value is not None):
            raise ValueError(f'{self.op.name} of {self.prop.name}: value must be given exactly for SET and UPDATE')

    def payload(self) -> bytes:
        head = bytes((self.prop, self.op))
        if self.value is None:
            return head
        return head + PROPERTY_CODECS[self.prop].encode(self.value)

    @classmethod
    def decode(cls, payload: bytes) -> HubPropertyMessage:
        _need(payload, 2, 'hub property', exact=False)
        prop = _enum(HubProperty, payload[0], 'hub property')
        op = _enum(HubPropertyOperation, payload[1], 'hub property operation')
        if op in _VALUE_OPERATIONS:
            return cls(prop, op, PROPERTY_CODECS[prop].decode(bytes(payload[2:])))
        _need(payload, 2, f'{prop.name} {op.name}')
        return cls(prop, op)


# -- hub actions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class HubActionMessage(Message):
    """Hub action: switch off / disconnect (downstream), will switch off / will disconnect (upstream)."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_ACTIONS
    action: HubAction

    def payload(self) -> bytes:
        return bytes((self.action,))

    @classmethod
    def decode(cls, payload: bytes) -> HubActionMessage:
        _need(payload, 1, 'hub action')
        return cls(_enum(HubAction, payload[0], 'hub action'))


# -- hub alerts -----------------------------------------------------------------------------

@dataclass(frozen=True)
class HubAlertMessage(Message):
    """Hub alert: enable/disable/request (downstream) or update with a status (upstream)."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_ALERTS
    alert: AlertKind
    op: AlertOperation
    status: AlertStatus | None = None

    def __post_init__(self) -> None:
        if (self.op == AlertOperation.UPDATE) != (self.status is not None):
            raise ValueError('an alert status is given exactly for UPDATE')

    def payload(self) -> bytes:
        tail = () if self.status is None else (self.status,)
        return bytes((self.alert, self.op, *tail))

    @classmethod
    def decode(cls, payload: bytes) -> HubAlertMessage:
        _need(payload, 2, 'hub alert', exact=False)
        alert = _enum(AlertKind, payload[0], 'alert type')
        op = _enum(AlertOperation, payload[1], 'alert operation')
        if op == AlertOperation.UPDATE:
            _need(payload, 3, 'alert update')
            return cls(alert, op, _enum(AlertStatus, payload[2], 'alert status'))
        _need(payload, 2, f'alert {op.name}')
        return cls(alert, op)


# -- hub attached I/O -----------------------------------------------------------------------

@dataclass(frozen=True)
class AttachedIOMessage(Message):
    """A device is attached to `port`: its type id and hardware/software revisions (int32, BCD)."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_ATTACHED_IO
    port: int
    io_type: int
    hw_revision: int = 0x10000000
    sw_revision: int = 0x10000000

    def payload(self) -> bytes:
        return struct.pack('<BBHii', self.port, IOEvent.ATTACHED, self.io_type,
                           self.hw_revision, self.sw_revision)


@dataclass(frozen=True)
class DetachedIOMessage(Message):
    """The device on `port` was removed."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_ATTACHED_IO
    port: int

    def payload(self) -> bytes:
        return bytes((self.port, IOEvent.DETACHED))


@dataclass(frozen=True)
class AttachedVirtualIOMessage(Message):
    """Ports `port_a` and `port_b` were combined into virtual port `port`."""

    kind: ClassVar[MessageKind] = MessageKind.HUB_ATTACHED_IO
    port: int
    io_type: int
    port_a: int
    port_b: int

    def payload(self) -> bytes:
        return struct.pack('<BBHBB', self.port, IOEvent.ATTACHED_VIRTUAL, self.io_type,
                           self.port_a, self.port_b)


def _decode_attached_io(payload: bytes) -> Message:
    _need(payload, 2, 'attached I/O', exact=False)
    event = _enum(IOEvent, payload[1], 'I/O event')
    if event == IOEvent.DETACHED:
        _need(payload, 2, 'detached I/O')
        return DetachedIOMessage(payload[0])
    if event == IOEvent.ATTACHED:
        _need(payload, 12, 'attached I/O')
        port, _, io_type, hw, sw = struct.unpack('<BBHii', payload)
        return AttachedIOMessage(port, io_type, hw, sw)
    _need(payload, 6, 'attached virtual I/O')
    port, _, io_type, port_a, port_b = struct.unpack('<BBHBB', payload)
    return AttachedVirtualIOMessage(port, io_type, port_a, port_b)


# -- generic error --------------------------------------------------------------------------

@dataclass(frozen=True)
class GenericErrorMessage(Message):
    """The hub answers `command` (a message kind byte) with `error`."""

    kind: ClassVar[MessageKind] = MessageKind.GENERIC_ERROR
    command: int
    error: ErrorCode

    def payload(self) -> bytes:
        return bytes((self.command, self.error))

    @classmethod
    def decode(cls, payload: bytes) -> GenericErrorMessage:
        _need(payload, 2, 'generic error')
        return cls(payload[0], _enum(ErrorCode, payload[1], 'error code'))

    def describe(self) -> str:
        try:
            command = MessageKind(self.command).name
        except ValueError:
            command = f'0x{self.command:02x}'
        return f'hub error {self.error.name} for {command}'


# -- port output ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteDirectModeDataMessage(Message):
    """Port output command WriteDirectModeData: `data` for `mode` of the device on `port`.

    Mode 0 of a motor is its power: one int8, -100..100, 0 floats, 127 brakes.
    """

    kind: ClassVar[MessageKind] = MessageKind.PORT_OUTPUT_COMMAND
    port: int
    mode: int
    data: bytes
    startup: StartupInfo = StartupInfo.EXECUTE_IMMEDIATELY
    completion: CompletionInfo = CompletionInfo.COMMAND_FEEDBACK

    def payload(self) -> bytes:
        flags = (self.startup << 4) | self.completion
        return bytes((self.port, flags, PortOutputSubcommand.WRITE_DIRECT_MODE_DATA, self.mode)) + self.data

    @classmethod
    def power(cls, port: int, power_pct: int) -> WriteDirectModeDataMessage:
        """Motor power in percent (-100..100); 0 lets the motor float."""
        if not -POWER_MAX_PCT <= power_pct <= POWER_MAX_PCT:
            raise ValueError(f'power {power_pct} outside -{POWER_MAX_PCT}..{POWER_MAX_PCT}')
        return cls(port, 0, struct.pack('<b', power_pct))

    @classmethod
    def brake(cls, port: int) -> WriteDirectModeDataMessage:
        """Short the motor: it stops at once."""
        return cls(port, 0, bytes((POWER_BRAKE,)))

    @property
    def power_value(self) -> int | None:
        """The int8 power byte of a mode-0 order (127 = brake), None for other modes."""
        if self.mode != 0 or len(self.data) != 1:
            return None
        return struct.unpack('<b', self.data)[0]

    def describe(self) -> str:
        value = self.power_value
        if value is None:
            return f'port {port_name(self.port)} mode {self.mode} data {self.data.hex()}'
        if value == POWER_BRAKE:
            return f'motor {port_name(self.port)} brake'
        if value == POWER_FLOAT:
            return f'motor {port_name(self.port)} float'
        return f'motor {port_name(self.port)} power {value}'


@dataclass(frozen=True)
class PortOutputCommandMessage(Message):
    """Any other port output sub-command, kept as raw parameters."""

    kind: ClassVar[MessageKind] = MessageKind.PORT_OUTPUT_COMMAND
    port: int
    flags: int
    subcommand: int
    parameters: bytes

    def payload(self) -> bytes:
        return bytes((self.port, self.flags, self.subcommand)) + self.parameters


def _decode_port_output(payload: bytes) -> Message:
    _need(payload, 3, 'port output command', exact=False)
    port, flags, sub = payload[0], payload[1], payload[2]
    if sub != PortOutputSubcommand.WRITE_DIRECT_MODE_DATA:
        return PortOutputCommandMessage(port, flags, sub, bytes(payload[3:]))
    _need(payload, 5, 'WriteDirectModeData', exact=False)
    startup = _enum(StartupInfo, flags >> 4, 'startup information')
    completion = _enum(CompletionInfo, flags & 0x0F, 'completion information')
    return WriteDirectModeDataMessage(port, payload[3], bytes(payload[4:]), startup, completion)


@dataclass(frozen=True)
class PortOutputFeedbackMessage(Message):
    """Port output command feedback: (port, feedback bits) for one or more ports."""

    kind: ClassVar[MessageKind] = MessageKind.PORT_OUTPUT_COMMAND_FEEDBACK
    feedback: tuple[tuple[int, Feedback], ...] = field(default_factory=tuple)

    def payload(self) -> bytes:
        return b''.join(bytes((port, bits)) for port, bits in self.feedback)

    @classmethod
    def decode(cls, payload: bytes) -> PortOutputFeedbackMessage:
        if not payload or len(payload) % 2:
            raise Lwp3DecodeError(f'port output feedback: expected pairs of bytes, got {len(payload)}')
        pairs = []
        for index in range(0, len(payload), 2):
            bits = payload[index + 1]
            if bits & ~0x1F:
                raise Lwp3DecodeError(f'port output feedback: unknown bits 0x{bits:02x}')
            pairs.append((payload[index], Feedback(bits)))
        return cls(tuple(pairs))

    def for_port(self, port: int) -> Feedback | None:
        for fb_port, bits in self.feedback:
            if fb_port == port:
                return bits
        return None


@dataclass(frozen=True)
class UnknownMessage(Message):
    """A well-framed message of a kind train_fou does not model."""

    kind_byte: int
    body: bytes

    @property
    def kind(self) -> int:  # type: ignore[override]
        return self.kind_byte

    def payload(self) -> bytes:
        return self.body


#: message kind -> payload decoder (plugin table).
DECODERS: dict[MessageKind, Callable[[bytes], Message]] = {
    MessageKind.HUB_PROPERTIES: HubPropertyMessage.decode,
    MessageKind.HUB_ACTIONS: HubActionMessage.decode,
    MessageKind.HUB_ALERTS: HubAlertMessage.decode,
    MessageKind.HUB_ATTACHED_IO: _decode_attached_io,
    MessageKind.GENERIC_ERROR: GenericErrorMessage.decode,
    MessageKind.PORT_OUTPUT_COMMAND: _decode_port_output,
    MessageKind.PORT_OUTPUT_COMMAND_FEEDBACK: PortOutputFeedbackMessage.decode,
}


def decode_message(frame: bytes | bytearray) -> Message:
    """Decode exactly one complete message; raise `Lwp3DecodeError` for anything else."""
    frame = bytes(frame)
    header = read_length(frame)
    if header is None:
        raise Lwp3DecodeError(f'truncated header: {frame.hex()}')
    length, size = header
    if length != len(frame):
        raise Lwp3DecodeError(f'length byte says {length}, frame has {len(frame)} bytes: {frame.hex()}')
    if length < size + 2:
        raise Lwp3DecodeError(f'message of {length} bytes is shorter than its header: {frame.hex()}')
    if frame[size] != HUB_ID:
        raise Lwp3DecodeError(f'hub id 0x{frame[size]:02x}, expected 0x{HUB_ID:02x}: {frame.hex()}')
    kind_byte = frame[size + 1]
    payload = frame[size + 2:]
    try:
        kind = MessageKind(kind_byte)
        decoder = DECODERS[kind]
    except (ValueError, KeyError):
        return UnknownMessage(kind_byte, payload)
    try:
        return decoder(payload)
    except (struct.error, ValueError) as err:
        if isinstance(err, Lwp3DecodeError):
            raise
        raise Lwp3DecodeError(f'bad {kind.name} message {frame.hex()}: {err}') from err
