"""Which rclpy executor spins the nodes: one choice for run, replay, sim, bench and the node executables.

The executor is rclpy's C++ EventsExecutor by default. Every callback of these
nodes is short (inference, BLE, the camera and the bag reader have their own
threads), so one executor thread serves them all, and the Python executors' own
work per callback was the largest cost on the control path (docs/performance.md).

Every wait is finite: rclpy 9.1's EventsExecutor runs no callback at all when
it waits without a timeout (spin(), spin_once() without a timeout,
rclpy.spin(node, executor), spin_until_future_complete() without a timeout),
and the first publish to a subscription in the same process then hangs inside
`publish`, holding the GIL. So make_executor returns `FiniteWaitEventsExecutor`,
which turns every infinite wait into a loop of finite ones; the project's own
loops use `spin_until`. tests/test_runner.py holds the contract for every kind
and every way to spin (the camera, bag player, detector and hub publish from
their own threads).

The kind is light to import (no rclpy until an executor is made), so the CLI's
argument parsers can list the choices.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import sys
import threading

from train_fou.errors import TrainFouError

log = logging.getLogger('train_fou.executors')
_warned_no_events = False

#: --executor choices: rclpy's C++ events executor, or its Python single/multi-threaded ones.
EXECUTORS = ('events', 'single', 'multi')
#: The per-node executables and launch files take the kind from this variable (default: events).
EXECUTOR_ENV = 'TRAIN_FOU_EXECUTOR'


class ExecutorChoiceError(TrainFouError, ValueError):
    """An executor kind that does not exist (names the value and where it came from)."""


def default_executor_kind() -> str:
    return os.environ.get(EXECUTOR_ENV, '').strip() or 'events'


def events_available() -> bool:
    """rclpy.experimental.EventsExecutor exists (ROS 2 Kilted's rclpy; not Humble's)."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


def executor_kind(kind: str | None = None) -> str:
    """`kind`, or $TRAIN_FOU_EXECUTOR, or events; checked against EXECUTORS.

    Without an EventsExecutor in this rclpy, events becomes single (logged once).
    """
    chosen = kind or default_executor_kind()
    if chosen not in EXECUTORS:
        source = 'executor' if kind else f'${EXECUTOR_ENV}'
        raise ExecutorChoiceError(f'{source}={chosen!r}: expected one of {", ".join(EXECUTORS)}')
    if chosen == 'events' and not events_available():
        global _warned_no_events
        if not _warned_no_events:
            _warned_no_events = True
            log.warning('this rclpy has no EventsExecutor (ROS 2 Kilted and later): using the '
                        'single-threaded executor')
        return 'single'
    return chosen


def make_executor(kind: str | None = None, context=None, num_threads: int | None = None):
    """A new executor of `kind` (see executor_kind) on `context` (None: rclpy's default context)."""
    kind = executor_kind(kind)
    if kind == 'events':
        return _events_executor(context)
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind == 'single':
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=num_threads, context=context)


#: The longest single wait FiniteWaitEventsExecutor passes to rclpy (it loops for longer waits).
EVENTS_WAIT_S = 0.1


def _events_executor(context):
    """A FiniteWaitEventsExecutor, also where sys.stderr has no file descriptor (pytest, notebooks).

    rclpy's constructor enables faulthandler on sys.stderr (to dump Python stacks
    on a C++ crash), which raises without a real file: the process's own stderr
    is lent to it for that call.
    """
    import faulthandler

    import rclpy
    stderr = sys.stderr
    try:
        stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        sys.stderr = sys.__stderr__
    try:
        faulthandler.enable()
    finally:
        sys.stderr = stderr
    context = context if context is not None else rclpy.get_default_context()
    executor = _finite_wait_class()(context)
    context.on_shutdown(executor.wake)  # as rclpy.experimental.EventsExecutor does
    return executor


@functools.cache
def _finite_wait_class():
    """FiniteWaitEventsExecutor, defined on first use (rclpy is imported only when needed)."""
    import time

    from rclpy.impl.implementation_singleton import rclpy_implementation

    class FiniteWaitEventsExecutor(rclpy_implementation.EventsExecutor):
        """rclpy's C++ EventsExecutor whose waits are all finite (see the module docstring).

        spin_once() without a timeout returns after at most EVENTS_WAIT_S, with or without
        work done; spin() and spin_until_future_complete() loop until shutdown or the future.
        """

        def __init__(self, context):
            super().__init__(context)
            self._stopped = threading.Event()

        def spin_once(self, timeout_sec: float | None = None) -> None:
            if timeout_sec is None or timeout_sec < 0:
                timeout_sec = EVENTS_WAIT_S
            super().spin_once(timeout_sec)

        def spin(self) -> None:
            while not self._stopped.is_set() and self.context.ok():
                super().spin_once(EVENTS_WAIT_S)

        def spin_until_future_complete(self, future, timeout_sec: float | None = None) -> None:
            forever = timeout_sec is None or timeout_sec < 0
            if timeout_sec == 0:
                super().spin_once_until_future_complete(future, 0.0)
                return
            deadline = time.monotonic() + (0.0 if forever else timeout_sec)
            while not future.done() and not self._stopped.is_set() and self.context.ok():
                left = EVENTS_WAIT_S if forever else deadline - time.monotonic()
                if left <= 0:
                    return
                super().spin_once_until_future_complete(future, min(left, EVENTS_WAIT_S))

        def spin_once_until_future_complete(self, future, timeout_sec: float | None = None) -> None:
            if timeout_sec is None or timeout_sec < 0:
                timeout_sec = EVENTS_WAIT_S
            super().spin_once_until_future_complete(future, timeout_sec)

        def shutdown(self, timeout_sec: float | None = None) -> bool:
            self._stopped.set()
            return super().shutdown(timeout_sec)

    return FiniteWaitEventsExecutor


def spin_until(executor, stop: threading.Event, poll_s: float = 0.1) -> None:
    """Spin `executor` until `stop` is set (signal handlers only set the event)."""
    while not stop.is_set():
        executor.spin_once(timeout_sec=poll_s)
