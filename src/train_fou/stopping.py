"""SIGINT, SIGTERM and SIGHUP stop every process that can drive a motor the same way: braked.

`docker stop` and systemd send SIGTERM, a closing terminal SIGHUP, Ctrl-C SIGINT.
Python's defaults kill the process at once on SIGTERM and SIGHUP, so a `finally`
never runs and a powered motor keeps its power (`train-fou hub drive --power 30
--for 30` and SIGTERM: exit 143, power 30 was the last frame written). While
`StopSignals` is installed the three signals only set an event and remember the
first signal; the main thread's loop sees the event, leaves, and its `finally`
brakes and waits for the hub's acknowledgement (the runner's `destroy_nodes`, the
CLI's `HubSession.stop`). An exception leaves through the same `finally`.

The handler never raises (as Python's SIGINT default does with KeyboardInterrupt):
a second Ctrl-C or SIGTERM while the brake is being written must not interrupt it.
The brake is bounded in time (the session waits `ack_timeout_s` and a few seconds
to disconnect), so a stop always ends.

Exit codes: a service stopped on request (`train-fou run`, the node executables)
exits 0; a command cut short (`hub drive`, `replay`, `sim`) exits 128 + the signal
number, as a shell reports a signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
"""
from __future__ import annotations

import signal
import threading

#: The signals that stop a process cleanly (the motor braked first).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """While installed (a context manager), SIGINT, SIGTERM and SIGHUP set `event`.

    Handlers can only be installed from the main thread; elsewhere (a test that runs
    a pipeline in a thread) the object is just the event, set by whoever owns it.
    """

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()
        #: The first stop signal received (None: none, or the event was set otherwise).
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def restore(self) -> None:
        for signum, old in self._previous.items():
            signal.signal(signum, old)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *_exc) -> None:
        self.restore()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self.event.wait(timeout_s)

    def exit_code(self, otherwise: int) -> int:
        """128 + the signal that stopped the process, or `otherwise` when no signal did."""
        return 128 + int(self.signum) if self.signum is not None else otherwise
