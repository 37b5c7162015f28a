"""Golden LWP3 frames, both directions: bytes(msg) == golden and decode(golden) == msg.

Frames follow the LEGO Wireless Protocol 3.0 documentation
(https://lego.github.io/lego-ble-wireless-protocol-docs/), one field per line.
"""
from __future__ import annotations

import pytest

from train_fou.lwp3 import Lwp3DecodeError, decode_message
from train_fou.lwp3.bytecodes import (
    AlertKind, AlertOperation, AlertStatus, CompletionInfo, ErrorCode, Feedback, HubAction,
    HubProperty, HubPropertyOperation, IOType, MessageKind, StartupInfo, port_from_name)
from train_fou.lwp3.messages import (
    AttachedIOMessage, AttachedVirtualIOMessage, DetachedIOMessage, GenericErrorMessage,
    HubActionMessage, HubAlertMessage, HubPropertyMessage, PortOutputCommandMessage,
    PortOutputFeedbackMessage, UnknownMessage, WriteDirectModeDataMessage, encode_header)

P = HubProperty
OP = HubPropertyOperation

GOLDEN = [
    pytest.param(
        WriteDirectModeDataMessage.power(0, 50),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x00,  # port A
            0x11,  # execute immediately, command feedback
            0x51,  # WriteDirectModeData
            0x00,  # mode 0: power
            0x32,  # +50 %
        ]), id='port-A-power-+50'),
    pytest.param(
        WriteDirectModeDataMessage.power(1, -30),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x01,  # port B
            0x11,  # execute immediately, command feedback
            0x51,  # WriteDirectModeData
            0x00,  # mode 0: power
            0xE2,  # -30 % as int8
        ]), id='port-B-power--30'),
    pytest.param(
        WriteDirectModeDataMessage.brake(0),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x00,  # port A
            0x11,  # execute immediately, command feedback
            0x51,  # WriteDirectModeData
            0x00,  # mode 0: power
            0x7F,  # 127: brake
        ]), id='port-A-brake'),
    pytest.param(
        WriteDirectModeDataMessage.power(0, 0),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x00,  # port A
            0x11,  # execute immediately, command feedback
            0x51,  # WriteDirectModeData
            0x00,  # mode 0: power
            0x00,  # 0: float
        ]), id='port-A-float'),
    pytest.param(
        WriteDirectModeDataMessage(0, 0, b'\x14', StartupInfo.BUFFER_IF_NECESSARY, CompletionInfo.NO_ACTION),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x00,  # port A
            0x00,  # buffer if necessary, no feedback
            0x51,  # WriteDirectModeData
            0x00,  # mode 0: power
            0x14,  # +20 %
        ]), id='port-A-power-buffered-no-feedback'),
    pytest.param(
        PortOutputCommandMessage(0, 0x11, 0x07, bytes([0x32, 0x64, 0x00])),
        bytes([
            0x09,  # length
            0x00,  # hub id
            0x81,  # port output command
            0x00,  # port A
            0x11,  # execute immediately, command feedback
            0x07,  # StartSpeed (kept raw)
            0x32,  # speed 50
            0x64,  # max power 100
            0x00,  # use profile 0
        ]), id='port-output-other-subcommand'),
    pytest.param(
        PortOutputFeedbackMessage(((0, Feedback.BUFFER_EMPTY_COMPLETED | Feedback.IDLE),)),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x82,  # port output command feedback
            0x00,  # port A
            0x0A,  # buffer empty + command completed, idle
        ]), id='feedback-port-A-completed-idle'),
    pytest.param(
        PortOutputFeedbackMessage(((0, Feedback.BUFFER_EMPTY_IN_PROGRESS), (1, Feedback.DISCARDED | Feedback.IDLE))),
        bytes([
            0x07,  # length
            0x00,  # hub id
            0x82,  # port output command feedback
            0x00,  # port A
            0x01,  # buffer empty + command in progress
            0x01,  # port B
            0x0C,  # discarded, idle
        ]), id='feedback-two-ports'),
    pytest.param(
        HubPropertyMessage(P.BATTERY_VOLTAGE, OP.ENABLE_UPDATES),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x06,  # battery voltage (percent)
            0x02,  # enable updates
        ]), id='battery-enable-updates'),
    pytest.param(
        HubPropertyMessage(P.BATTERY_VOLTAGE, OP.UPDATE, 100),
        bytes([
            0x06,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x06,  # battery voltage (percent)
            0x06,  # update (upstream)
            0x64,  # 100 %
        ]), id='battery-update-100'),
    pytest.param(
        HubPropertyMessage(P.BUTTON, OP.UPDATE, True),
        bytes([
            0x06,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x02,  # button
            0x06,  # update (upstream)
            0x01,  # pressed
        ]), id='button-pressed'),
    pytest.param(
        HubPropertyMessage(P.BUTTON, OP.ENABLE_UPDATES),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x02,  # button
            0x02,  # enable updates
        ]), id='button-enable-updates'),
    pytest.param(
        HubPropertyMessage(P.ADVERTISING_NAME, OP.REQUEST_UPDATE),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x01,  # advertising name
            0x05,  # request update
        ]), id='name-request'),
    pytest.param(
        HubPropertyMessage(P.ADVERTISING_NAME, OP.UPDATE, 'Train'),
        bytes([
            0x0A,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x01,  # advertising name
            0x06,  # update (upstream)
            0x54, 0x72, 0x61, 0x69, 0x6E,  # "Train"
        ]), id='name-update'),
    pytest.param(
        HubPropertyMessage(P.ADVERTISING_NAME, OP.SET, 'Fou'),
        bytes([
            0x08,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x01,  # advertising name
            0x01,  # set (downstream)
            0x46, 0x6F, 0x75,  # "Fou"
        ]), id='name-set'),
    pytest.param(
        HubPropertyMessage(P.RSSI, OP.UPDATE, -60),
        bytes([
            0x06,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x05,  # RSSI
            0x06,  # update (upstream)
            0xC4,  # -60 dBm as int8
        ]), id='rssi-update'),
    pytest.param(
        HubPropertyMessage(P.FW_VERSION, OP.UPDATE, 0x1100_0004),
        bytes([
            0x09,  # length
            0x00,  # hub id
            0x01,  # hub properties
            0x03,  # firmware version
            0x06,  # update (upstream)
            0x04, 0x00, 0x00, 0x11,  # 1.1.00.0004, int32 little endian
        ]), id='fw-version-update'),
    pytest.param(
        HubActionMessage(HubAction.SWITCH_OFF),
        bytes([
            0x04,  # length
            0x00,  # hub id
            0x02,  # hub actions
            0x01,  # switch off hub
        ]), id='action-switch-off'),
    pytest.param(
        HubActionMessage(HubAction.DISCONNECT),
        bytes([
            0x04,  # length
            0x00,  # hub id
            0x02,  # hub actions
            0x02,  # disconnect
        ]), id='action-disconnect'),
    pytest.param(
        HubActionMessage(HubAction.WILL_SWITCH_OFF),
        bytes([
            0x04,  # length
            0x00,  # hub id
            0x02,  # hub actions
            0x30,  # hub will switch off (upstream)
        ]), id='action-will-switch-off'),
    pytest.param(
        HubActionMessage(HubAction.WILL_DISCONNECT),
        bytes([
            0x04,  # length
            0x00,  # hub id
            0x02,  # hub actions
            0x31,  # hub will disconnect (upstream)
        ]), id='action-will-disconnect'),
    pytest.param(
        HubAlertMessage(AlertKind.LOW_VOLTAGE, AlertOperation.ENABLE_UPDATES),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x03,  # hub alerts
            0x01,  # low voltage
            0x01,  # enable updates
        ]), id='alert-low-voltage-enable'),
    pytest.param(
        HubAlertMessage(AlertKind.HIGH_CURRENT, AlertOperation.UPDATE, AlertStatus.ALERT),
        bytes([
            0x06,  # length
            0x00,  # hub id
            0x03,  # hub alerts
            0x02,  # high current
            0x04,  # update (upstream)
            0xFF,  # alert!
        ]), id='alert-high-current-update'),
    pytest.param(
        HubAlertMessage(AlertKind.OVER_POWER, AlertOperation.UPDATE, AlertStatus.OK),
        bytes([
            0x06,  # length
            0x00,  # hub id
            0x03,  # hub alerts
            0x04,  # over power condition
            0x04,  # update (upstream)
            0x00,  # status OK
        ]), id='alert-over-power-ok'),
    pytest.param(
        AttachedIOMessage(0, IOType.TRAIN_MOTOR, 0x1000_0000, 0x1000_0000),
        bytes([
            0x0F,  # length
            0x00,  # hub id
            0x04,  # hub attached I/O
            0x00,  # port A
            0x01,  # attached
            0x02, 0x00,  # I/O type 0x0002: train motor
            0x00, 0x00, 0x00, 0x10,  # hardware revision 1.0.00.0000
            0x00, 0x00, 0x00, 0x10,  # software revision 1.0.00.0000
        ]), id='attached-train-motor-port-A'),
    pytest.param(
        AttachedIOMessage(0x32, IOType.RGB_LIGHT, 0x0000_0001, 0x0000_0001),
        bytes([
            0x0F,  # length
            0x00,  # hub id
            0x04,  # hub attached I/O
            0x32,  # internal port 50
            0x01,  # attached
            0x17, 0x00,  # I/O type 0x0017: RGB light
            0x01, 0x00, 0x00, 0x00,  # hardware revision
            0x01, 0x00, 0x00, 0x00,  # software revision
        ]), id='attached-rgb-light'),
    pytest.param(
        DetachedIOMessage(0),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x04,  # hub attached I/O
            0x00,  # port A
            0x00,  # detached
        ]), id='detached-port-A'),
    pytest.param(
        AttachedVirtualIOMessage(0x10, IOType.TRAIN_MOTOR, 0, 1),
        bytes([
            0x09,  # length
            0x00,  # hub id
            0x04,  # hub attached I/O
            0x10,  # virtual port 16
            0x02,  # attached virtual
            0x02, 0x00,  # I/O type 0x0002: train motor
            0x00,  # first port: A
            0x01,  # second port: B
        ]), id='attached-virtual-AB'),
    pytest.param(
        GenericErrorMessage(MessageKind.PORT_OUTPUT_COMMAND, ErrorCode.INVALID_USE),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x05,  # generic error
            0x81,  # for: port output command
            0x06,  # invalid use
        ]), id='error-invalid-use'),
    pytest.param(
        GenericErrorMessage(0x77, ErrorCode.COMMAND_NOT_RECOGNIZED),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x05,  # generic error
            0x77,  # for: unknown command 0x77
            0x05,  # command not recognized
        ]), id='error-not-recognized'),
    pytest.param(
        UnknownMessage(0x45, bytes([0x00, 0x12])),
        bytes([
            0x05,  # length
            0x00,  # hub id
            0x45,  # port value (single): not modelled
            0x00,  # port A
            0x12,  # value
        ]), id='unknown-kind-kept-raw'),
]


@pytest.mark.parametrize(('message', 'golden'), GOLDEN)
def test_message_encodes_to_golden_frame(message, golden):
    assert bytes(message) == golden


@pytest.mark.parametrize(('message', 'golden'), GOLDEN)
def test_golden_frame_decodes_to_message(message, golden):
    assert decode_message(golden) == message


def test_two_byte_length_is_used_from_128_bytes():
    name = HubPropertyMessage(P.ADVERTISING_NAME, OP.UPDATE, 'x' * 130)
    frame = bytes(name)
    assert frame[:2] == bytes([
        0x88,  # 136 & 0x7f with bit 7 set
        0x01,  # 136 >> 7
    ])
    assert len(frame) == 136
    assert decode_message(frame) == name
    assert encode_header(0x01, 124) == bytes([0x7F, 0x00, 0x01])


def test_power_outside_range_is_refused():
    with pytest.raises(ValueError, match='outside'):
        WriteDirectModeDataMessage.power(0, 101)


def test_power_orders_describe_themselves_in_words():
    assert WriteDirectModeDataMessage.power(0, 30).describe() == 'motor A power 30'
    assert WriteDirectModeDataMessage.brake(0).describe() == 'motor A brake'
    assert WriteDirectModeDataMessage.power(1, 0).describe() == 'motor B float'


@pytest.mark.parametrize(('frame', 'problem'), [
    (bytes([0x05, 0x00, 0x01, 0x06]), 'length byte says 5'),
    (bytes([0x04, 0x01, 0x02, 0x01]), 'hub id 0x01'),
    (bytes([0x04, 0x00, 0x02, 0x99]), 'unknown hub action 0x99'),
    (bytes([0x05, 0x00, 0x01, 0x06, 0x06]), 'property value'),
    (bytes([0x05, 0x00, 0x04, 0x00, 0x01]), 'attached I/O'),
    (bytes([0x05, 0x00, 0x05, 0x81, 0x42]), 'unknown error code 0x42'),
    (bytes([0x04, 0x00, 0x82, 0x00]), 'expected pairs'),
    (bytes([0x08, 0x00, 0x81, 0x00, 0x71, 0x51, 0x00, 0x32]), 'unknown startup information 0x07'),
    (bytes([0x07, 0x00, 0x81, 0x00, 0x11, 0x51, 0x00]), 'at least 5'),
    (bytes([0x02, 0x00]), 'shorter than its header'),
    (b'', 'truncated header'),
])
def test_decode_raises_own_error_naming_the_problem(frame, problem):
    with pytest.raises(Lwp3DecodeError, match=problem):
        decode_message(frame)


def test_port_names_map_to_ids():
    assert port_from_name('a') == 0
    assert port_from_name('D') == 3
    assert port_from_name('0x32') == 0x32
    with pytest.raises(ValueError, match='bad port'):
        port_from_name('Z')
