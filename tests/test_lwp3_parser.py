"""Stream reassembly: several messages per notification, split messages, garbage never raises."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from train_fou.lwp3 import Lwp3DecodeError, StreamParser
from train_fou.lwp3.bytecodes import HubAction, HubProperty, HubPropertyOperation, IOType
from train_fou.lwp3.messages import (
    AttachedIOMessage, HubActionMessage, HubPropertyMessage, Message, PortOutputFeedbackMessage,
    WriteDirectModeDataMessage, decode_message)

ATTACHED = bytes.fromhex('0f00040001020000000010000000 10'.replace(' ', ''))
FEEDBACK = bytes.fromhex('050082000a')
BATTERY = bytes.fromhex('060001060664')


def test_one_notification_with_three_messages_gives_three_messages():
    out = StreamParser().feed(ATTACHED + FEEDBACK + BATTERY)
    assert out == [
        AttachedIOMessage(0, IOType.TRAIN_MOTOR),
        decode_message(FEEDBACK),
        HubPropertyMessage(HubProperty.BATTERY_VOLTAGE, HubPropertyOperation.UPDATE, 100),
    ]


def test_message_split_across_notifications_is_reassembled():
    parser = StreamParser()
    assert parser.feed(ATTACHED[:1]) == []
    assert parser.feed(ATTACHED[1:7]) == []
    assert parser.pending == 7
    assert parser.feed(ATTACHED[7:] + FEEDBACK[:2]) == [AttachedIOMessage(0, IOType.TRAIN_MOTOR)]
    assert parser.feed(FEEDBACK[2:]) == [decode_message(FEEDBACK)]
    assert parser.pending == 0


def test_two_byte_length_split_between_its_bytes_is_reassembled():
    frame = bytes(HubPropertyMessage(HubProperty.ADVERTISING_NAME, HubPropertyOperation.UPDATE, 'n' * 200))
    parser = StreamParser()
    assert parser.feed(frame[:1]) == []
    assert parser.feed(frame[1:]) == [decode_message(frame)]


def test_garbage_before_a_message_is_reported_and_skipped():
    out = StreamParser().feed(bytes([0x01, 0x02]) + FEEDBACK)
    assert isinstance(out[0], Lwp3DecodeError)
    assert 'skipped 2 bytes' in str(out[0])
    assert out[1] == decode_message(FEEDBACK)


def test_framed_but_invalid_message_is_an_error_item_and_parsing_goes_on():
    bad_action = bytes([0x04, 0x00, 0x02, 0x99])
    out = StreamParser().feed(bad_action + FEEDBACK)
    assert isinstance(out[0], Lwp3DecodeError)
    assert out[1] == decode_message(FEEDBACK)


def test_reset_drops_a_partial_message():
    parser = StreamParser()
    parser.feed(ATTACHED[:5])
    parser.reset()
    assert parser.feed(FEEDBACK) == [decode_message(FEEDBACK)]


MESSAGES = st.sampled_from([
    WriteDirectModeDataMessage.power(0, 50), WriteDirectModeDataMessage.brake(1),
    PortOutputFeedbackMessage.decode(bytes([0, 0x0A])), HubActionMessage(HubAction.WILL_SWITCH_OFF),
    AttachedIOMessage(0, IOType.TRAIN_MOTOR),
    HubPropertyMessage(HubProperty.ADVERTISING_NAME, HubPropertyOperation.UPDATE, 'x' * 140),
])


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_random_notifications_never_raise(chunks):
    parser = StreamParser()
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, (Message, Lwp3DecodeError))


@settings(max_examples=1000, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=6), st.data())
def test_any_split_of_valid_messages_gives_them_back_in_order(messages, data):
    stream = b''.join(bytes(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = StreamParser()
    out = []
    start = 0
    for cut in cuts + [len(stream)]:
        out.extend(parser.feed(stream[start:cut]))
        start = cut
    assert out == messages


@settings(max_examples=1000, deadline=None)
@given(MESSAGES, st.integers(1, 30), st.binary(max_size=20))
def test_truncated_message_followed_by_anything_never_raises(message, keep, tail):
    frame = bytes(message)
    parser = StreamParser()
    for item in parser.feed(frame[:keep] + tail) + parser.feed(frame):
        assert isinstance(item, (Message, Lwp3DecodeError))
