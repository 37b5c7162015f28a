"""LEGO Wireless Protocol 3.0 constants (https://lego.github.io/lego-ble-wireless-protocol-docs/).

Only what train_fou speaks: hub properties, hub actions, hub alerts, attached
I/O, generic errors and port output (motor power) with its feedback.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag, unique

#: GATT service of every LWP3 hub.
LWP3_SERVICE_UUID = '00001623-1212-efde-1623-785feabcd123'
#: The single characteristic: writes go down, notifications come up.
LWP3_CHARACTERISTIC_UUID = '00001624-1212-efde-1623-785feabcd123'
#: Bluetooth SIG company identifier of LEGO System A/S (manufacturer data key).
LEGO_COMPANY_ID = 0x0397

#: The only hub id a hub uses on a single BLE connection.
HUB_ID = 0x00

#: Motor power byte values with a special meaning (WriteDirectModeData mode 0).
POWER_FLOAT = 0
POWER_BRAKE = 127
POWER_MAX_PCT = 100


@unique
class MessageKind(IntEnum):
    """Message type byte of the common header (byte 2, or 3 with a two-byte length)."""

    HUB_PROPERTIES = 0x01
    """Set, enable updates, request or receive a hub property."""
    HUB_ACTIONS = 0x02
    """Switch off, disconnect, and the hub's announcements of them."""
    HUB_ALERTS = 0x03
    """Low voltage, high current, low signal, over power."""
    HUB_ATTACHED_IO = 0x04
    """A device was attached to or detached from a port."""
    GENERIC_ERROR = 0x05
    """The hub rejected or failed a command."""
    HW_NETWORK_COMMANDS = 0x08
    """Hardware network commands (not used by train_fou)."""
    PORT_INFORMATION_REQUEST = 0x21
    """Ask for port information (not used by train_fou)."""
    PORT_MODE_INFORMATION_REQUEST = 0x22
    """Ask for port mode information (not used by train_fou)."""
    PORT_INPUT_FORMAT_SETUP_SINGLE = 0x41
    """Subscribe to a sensor mode (not used by train_fou)."""
    PORT_INFORMATION = 0x43
    """Port information reply (not used by train_fou)."""
    PORT_MODE_INFORMATION = 0x44
    """Port mode information reply (not used by train_fou)."""
    PORT_VALUE_SINGLE = 0x45
    """A sensor value (not used by train_fou)."""
    PORT_INPUT_FORMAT_SINGLE = 0x47
    """Input format acknowledgement (not used by train_fou)."""
    VIRTUAL_PORT_SETUP = 0x61
    """Combine two ports into a virtual port (not used by train_fou)."""
    PORT_OUTPUT_COMMAND = 0x81
    """Drive an output: motor power, LED colour."""
    PORT_OUTPUT_COMMAND_FEEDBACK = 0x82
    """The hub's answer to a port output command that asked for feedback."""


@unique
class HubProperty(IntEnum):
    """Property byte of a hub properties message."""

    ADVERTISING_NAME = 0x01
    """The name the hub advertises (UTF-8, at most 14 bytes)."""
    BUTTON = 0x02
    """Green button: 0 released, 1 pressed."""
    FW_VERSION = 0x03
    """Firmware version, int32 little endian, BCD-packed."""
    HW_VERSION = 0x04
    """Hardware version, int32 little endian, BCD-packed."""
    RSSI = 0x05
    """Signal strength seen by the hub, int8 dBm."""
    BATTERY_VOLTAGE = 0x06
    """Battery level in percent, uint8."""
    BATTERY_TYPE = 0x07
    """0 normal, 1 rechargeable."""
    MANUFACTURER_NAME = 0x08
    """Manufacturer name (UTF-8)."""
    RADIO_FW_VERSION = 0x09
    """Radio firmware version (UTF-8)."""
    LWP_VERSION = 0x0A
    """LEGO Wireless Protocol version, uint16 BCD."""
    SYSTEM_TYPE_ID = 0x0B
    """System type and device number (0x41 City hub, 0x80 Technic hub)."""
    HW_NETWORK_ID = 0x0C
    """Hardware network id, uint8."""
    PRIMARY_MAC = 0x0D
    """Primary MAC address, 6 bytes."""
    SECONDARY_MAC = 0x0E
    """Secondary MAC address, 6 bytes."""
    HW_NETWORK_FAMILY = 0x0F
    """Hardware network family, uint8."""


@unique
class HubPropertyOperation(IntEnum):
    """Operation byte of a hub properties message."""

    SET = 0x01
    """Downstream: set the value (name, network id)."""
    ENABLE_UPDATES = 0x02
    """Downstream: send an update whenever the value changes."""
    DISABLE_UPDATES = 0x03
    """Downstream: stop sending updates."""
    RESET = 0x04
    """Downstream: reset the property to its default."""
    REQUEST_UPDATE = 0x05
    """Downstream: send one update now."""
    UPDATE = 0x06
    """Upstream: the current value."""


@unique
class HubAction(IntEnum):
    """Action byte of a hub actions message."""

    SWITCH_OFF = 0x01
    """Downstream: switch the hub off."""
    DISCONNECT = 0x02
    """Downstream: drop the BLE connection."""
    VCC_PORT_ON = 0x03
    """Downstream: power the VCC pin of the ports."""
    VCC_PORT_OFF = 0x04
    """Downstream: unpower the VCC pin of the ports."""
    ACTIVATE_BUSY = 0x05
    """Downstream: show the busy indication."""
    RESET_BUSY = 0x06
    """Downstream: clear the busy indication."""
    SHUTDOWN = 0x2F
    """Downstream: fast power off (production use)."""
    WILL_SWITCH_OFF = 0x30
    """Upstream: the hub is about to switch off."""
    WILL_DISCONNECT = 0x31
    """Upstream: the hub is about to disconnect."""
    WILL_GO_INTO_BOOT_MODE = 0x32
    """Upstream: the hub is about to enter firmware update mode."""


@unique
class AlertKind(IntEnum):
    """Alert type byte of a hub alerts message."""

    LOW_VOLTAGE = 0x01
    """Battery voltage is low."""
    HIGH_CURRENT = 0x02
    """Current drawn is high."""
    LOW_SIGNAL_STRENGTH = 0x03
    """Radio signal is weak."""
    OVER_POWER = 0x04
    """Over power condition."""


@unique
class AlertOperation(IntEnum):
    """Operation byte of a hub alerts message."""

    ENABLE_UPDATES = 0x01
    """Downstream: report this alert when it changes."""
    DISABLE_UPDATES = 0x02
    """Downstream: stop reporting this alert."""
    REQUEST_UPDATE = 0x03
    """Downstream: report this alert now."""
    UPDATE = 0x04
    """Upstream: the alert status (payload byte follows)."""


@unique
class AlertStatus(IntEnum):
    """Payload byte of an alert update."""

    OK = 0x00
    """No alert."""
    ALERT = 0xFF
    """The alert condition is present."""


@unique
class IOEvent(IntEnum):
    """Event byte of a hub attached I/O message."""

    DETACHED = 0x00
    """The device on the port was removed."""
    ATTACHED = 0x01
    """A device was plugged into the port (or is internal)."""
    ATTACHED_VIRTUAL = 0x02
    """Two ports were combined into a virtual port."""


@unique
class IOType(IntEnum):
    """Device type id (uint16) of an attached I/O message; the ones a train hub reports."""

    MOTOR = 0x0001
    """Medium motor (Powered Up simple motor)."""
    TRAIN_MOTOR = 0x0002
    """Train motor (88011)."""
    LIGHTS = 0x0008
    """Powered Up lights (88005)."""
    VOLTAGE = 0x0014
    """Internal: battery voltage sensor."""
    CURRENT = 0x0015
    """Internal: current sensor."""
    PIEZO_TONE = 0x0016
    """Internal: piezo buzzer."""
    RGB_LIGHT = 0x0017
    """Internal: the hub's RGB status light."""
    COLOR_DISTANCE_SENSOR = 0x0025
    """Color and distance sensor (88007)."""
    MOVE_HUB_MOTOR = 0x0027
    """Boost move hub internal motor."""
    TECHNIC_LARGE_MOTOR = 0x002E
    """Technic large motor (88013)."""
    TECHNIC_XL_MOTOR = 0x002F
    """Technic XL motor (88014)."""


#: Device types that take a power order through WriteDirectModeData mode 0.
POWER_OUTPUT_TYPES = frozenset({IOType.MOTOR, IOType.TRAIN_MOTOR, IOType.LIGHTS,
                                IOType.TECHNIC_LARGE_MOTOR, IOType.TECHNIC_XL_MOTOR})


@unique
class ErrorCode(IntEnum):
    """Error code byte of a generic error message."""

    ACK = 0x01
    """Acknowledged."""
    MACK = 0x02
    """Multiple acknowledged."""
    BUFFER_OVERFLOW = 0x03
    """The hub's command buffer overflowed."""
    TIMEOUT = 0x04
    """The command timed out."""
    COMMAND_NOT_RECOGNIZED = 0x05
    """Unknown command."""
    INVALID_USE = 0x06
    """Invalid use, e.g. a parameter error or no device on the port."""
    OVERCURRENT = 0x07
    """Over current."""
    INTERNAL_ERROR = 0x08
    """Internal error of the hub."""


@unique
class PortOutputSubcommand(IntEnum):
    """Sub-command byte of a port output command."""

    START_POWER_2 = 0x02
    """Power of two ports of a virtual port."""
    SET_ACC_TIME = 0x05
    """Acceleration profile time."""
    SET_DEC_TIME = 0x06
    """Deceleration profile time."""
    START_SPEED = 0x07
    """Speed with a tacho motor."""
    WRITE_DIRECT = 0x50
    """Raw direct write."""
    WRITE_DIRECT_MODE_DATA = 0x51
    """Write mode data; mode 0 of a motor is its power (int8)."""


@unique
class StartupInfo(IntEnum):
    """High nibble of the startup-and-completion byte of a port output command."""

    BUFFER_IF_NECESSARY = 0x0
    """Queue behind a running command."""
    EXECUTE_IMMEDIATELY = 0x1
    """Replace the running command now."""


@unique
class CompletionInfo(IntEnum):
    """Low nibble of the startup-and-completion byte of a port output command."""

    NO_ACTION = 0x0
    """No feedback message."""
    COMMAND_FEEDBACK = 0x1
    """Answer with a port output command feedback message."""


@unique
class Feedback(IntFlag):
    """Bits of a port output command feedback message."""

    BUFFER_EMPTY_IN_PROGRESS = 0x01
    """Buffer empty, command in progress."""
    BUFFER_EMPTY_COMPLETED = 0x02
    """Buffer empty, command completed."""
    DISCARDED = 0x04
    """The current command(s) were discarded."""
    IDLE = 0x08
    """The port is idle."""
    BUSY = 0x10
    """The port is busy or its buffer full."""


@unique
class HubKind(IntEnum):
    """System type and device number byte (advertising manufacturer data, property 0x0B)."""

    MOVE_HUB = 0x40
    """BOOST Move hub."""
    CITY_HUB = 0x41
    """Powered Up hub (88009), the City train hub."""
    REMOTE = 0x42
    """Powered Up remote."""
    TECHNIC_HUB = 0x80
    """Technic medium hub (88012)."""


PORT_NAMES = {0: 'A', 1: 'B', 2: 'C', 3: 'D'}


def port_name(port: int) -> str:
    """'A'..'D' for the external ports, the number (hex) for internal ones."""
    return PORT_NAMES.get(port, f'0x{port:02x}')


def port_from_name(name: str) -> int:
    """Port id from 'A'..'D' (any case) or a number ('0', '0x32')."""
    text = str(name).strip()
    for port, letter in PORT_NAMES.items():
        if text.upper() == letter:
            return port
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f'bad port {name!r}: use A, B, C, D or a port number') from None
    if not 0 <= value <= 255:
        raise ValueError(f'bad port {name!r}: a port number is 0..255')
    return value
