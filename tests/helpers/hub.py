"""LWP3 frames as the hub receives them: golden power frames, and a record of what a VirtualHub was written."""
from __future__ import annotations

import time


def power_frame(power: int, port: int = 0) -> bytes:
    """The session's power order (127: brake)."""
    return bytes([
        0x08,           # length
        0x00,           # hub id
        0x81,           # port output command
        port,           # port (0: A)
        0x11,           # execute immediately, command feedback
        0x51,           # write direct mode data
        0x00,           # mode 0
        power & 0xFF,   # power, percent (int8; 127: brake)
    ])


#: What the session writes to brake the motor on port A.
BRAKE = power_frame(127)
assert BRAKE == bytes.fromhex('080081001151007f')


def record_writes(hub, clock=time.monotonic) -> list[tuple[float, bytes]]:
    """(clock(), bytes) of every write that reaches `hub` (a VirtualHub) from now on, in order."""
    writes: list[tuple[float, bytes]] = []
    receive = hub.receive

    def recording(data: bytes) -> list[bytes]:
        writes.append((clock(), bytes(data)))
        return receive(data)
    hub.receive = recording
    return writes
