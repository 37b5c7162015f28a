"""Stream reassembly: BLE notifications in, whole LWP3 messages out.

A notification may hold several messages, and a message may be split across
notifications. `StreamParser.feed()` never raises: a message that frames but
does not decode comes back as a `Lwp3DecodeError` item, and bytes that cannot
start a message (length out of range, hub id not 0, unknown message kind) are
skipped one at a time and reported once per run. LEGO hubs send at most a few
dozen bytes per message, so a length over 255 is taken as garbage too.
"""
from __future__ import annotations

from train_fou.lwp3.bytecodes import HUB_ID, MessageKind
from train_fou.lwp3.errors import Lwp3DecodeError
from train_fou.lwp3.messages import MAX_MESSAGE_LENGTH, Message, decode_message, read_length


_KINDS = frozenset(int(kind) for kind in MessageKind)


class StreamParser:
    """Buffer notifications and cut them into messages."""

    def __init__(self, max_message_length: int = MAX_MESSAGE_LENGTH) -> None:
        self._buffer = bytearray()
        self._max = max_message_length

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their message."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial message (after a reconnect)."""
        self._buffer.clear()

    def _plausible(self, size: int) -> bool:
        """Hub id 0 and a known message kind: otherwise the bytes start no message (resync)."""
        buf = self._buffer
        if len(buf) > size and buf[size] != HUB_ID:
            return False
        return len(buf) <= size + 1 or buf[size + 1] in _KINDS

    def feed(self, data: bytes | bytearray) -> list[Message | Lwp3DecodeError]:
        """Append `data`; return every complete message (or its decode error) in order."""
        self._buffer.extend(data)
        out: list[Message | Lwp3DecodeError] = []
        skipped = bytearray()
        while self._buffer:
            header = read_length(self._buffer)
            if header is None:
                break
            length, size = header
            if length < size + 2 or length > self._max or not self._plausible(size):
                skipped.append(self._buffer.pop(0))
                continue
            if skipped:
                out.append(Lwp3DecodeError(f'skipped {len(skipped)} bytes that start no message: {skipped.hex()}'))
                skipped.clear()
            if len(self._buffer) < length:
                break
            frame = bytes(self._buffer[:length])
            del self._buffer[:length]
            try:
                out.append(decode_message(frame))
            except Lwp3DecodeError as err:
                out.append(err)
            except Exception as err:  # a codec bug must not kill the notification handler
                out.append(Lwp3DecodeError(f'cannot decode {frame.hex()}: {err!r}'))
        if skipped:
            out.append(Lwp3DecodeError(f'skipped {len(skipped)} bytes that start no message: {skipped.hex()}'))
        return out
