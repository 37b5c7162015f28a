"""Which rclpy executor spins the nodes: one choice for run, replay, sim, bench and the node executables.

The executor is rclpy's C++ EventsExecutor by default. Every callback of these
nodes is short (inference, BLE, the camera and the bag reader have their own
threads), so one executor thread serves them all, and the Python executors' own
work per callback was the largest cost on the control path. `train-fou bench
--executor K` on this project's 2-core CPU, 512 px model, bare inference
18.4-19.3 ms, paired node overhead (image message in -> detections out) and
whole-pipeline p99 (image stamp -> brake written to the sim hub):
events +2.2 ms and 27.5-37 ms, single-threaded +3.1 ms and 55 ms,
multi-threaded (what `train-fou run`, replay and the node executables used
before) +65 ms and 554-1078 ms.

Spin these executors with `spin_until` (a loop of `spin_once`), never with
`executor.spin()`: rclpy 9.1's EventsExecutor.spin() deadlocks the first time
anything publishes to a subscription in the same process (from any thread; the
publisher then spins at 100 % CPU inside `publish`), while its spin_once()
delivers the same messages in 0.2 ms. `rclpy.spin(node, executor)` is a
spin_once loop too, so it is safe. tests/test_executors.py holds the
spin_once contract the nodes rely on (the camera, bag player, detector and hub
publish from their own threads).

The kind is light to import (no rclpy until an executor is made), so the CLI's
argument parsers can list the choices.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import threading

log = logging.getLogger('train_fou.executors')
_warned_no_events = False

#: --executor choices: rclpy's C++ events executor, or its Python single/multi-threaded ones.
EXECUTORS = ('events', 'single', 'multi')
#: The per-node executables and launch files take the kind from this variable (default: events).
EXECUTOR_ENV = 'TRAIN_FOU_EXECUTOR'


class ExecutorChoiceError(ValueError):
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


def _events_executor(context):
    """rclpy's EventsExecutor, also where sys.stderr has no file descriptor (pytest, notebooks).

    Its constructor enables faulthandler on sys.stderr, which raises without a
    real file: the process's own stderr is lent to it for that call.
    """
    from rclpy.experimental import EventsExecutor
    stderr = sys.stderr
    try:
        stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        sys.stderr = sys.__stderr__
    try:
        return EventsExecutor(context=context)
    finally:
        sys.stderr = stderr


def spin_until(executor, stop: threading.Event, poll_s: float = 0.1) -> None:
    """Spin `executor` until `stop` is set; spin_once in a loop (see the module docstring)."""
    while not stop.is_set():
        executor.spin_once(timeout_sec=poll_s)
