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

The kind is light to import (no rclpy until an executor is made), so the CLI's
argument parsers can list the choices.
"""
from __future__ import annotations

import io
import logging
import os
import sys

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
