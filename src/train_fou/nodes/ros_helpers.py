"""What every node writes the same way: stamps <-> nanoseconds, parameter descriptors with ranges,
/diagnostics statuses, and refusing to start without leaving a half-built node behind."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from std_msgs.msg import Header

NS_PER_S = 1_000_000_000

#: 'ok' | 'warn' | 'error' | 'stale' (what the pure packages report) -> DiagnosticStatus level.
LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR,
          'stale': DiagnosticStatus.STALE}


def stamp_ns(stamp) -> int:
    """Nanoseconds of a builtin_interfaces/Time (a header stamp, a source_stamp)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_from_ns(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def described(description: str, read_only: bool = False) -> ParameterDescriptor:
    """A descriptor for a string or bool parameter (numbers take a range: float_range, int_range)."""
    return ParameterDescriptor(description=description, read_only=read_only)


def float_range(description: str, low: float, high: float, read_only: bool = False) -> ParameterDescriptor:
    """A number from `low` to `high`: rclpy refuses anything else, NaN and infinity included."""
    return ParameterDescriptor(description=description, read_only=read_only, floating_point_range=[
        FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)])


def int_range(description: str, low: int, high: int, read_only: bool = False) -> ParameterDescriptor:
    """An integer from `low` to `high`."""
    return ParameterDescriptor(description=description, read_only=read_only, integer_range=[
        IntegerRange(from_value=int(low), to_value=int(high), step=1)])


def _text(value) -> str:
    return 'n/a' if value is None else (f'{value:.2f}' if isinstance(value, float) else str(value))


def diagnostics(stamp, name: str, level: str, message: str, values: dict,
                hardware_id: str = 'train_fou') -> DiagnosticArray:
    """A DiagnosticArray with one status; values are stringified (None -> 'n/a', floats to 2 places)."""
    status = DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=str(k), value=_text(v)) for k, v in values.items()]
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


@contextmanager
def destroyed_on_failure(node) -> Iterator[None]:
    """Around a node's set-up: a node that refuses to start destroys itself, then the error goes on.

    rclpy's context would destroy it only at shutdown, with its timers and subscriptions live
    until then; the caller reports the error (one line naming the parameter or the path).
    What `destroy_node` needs must be set before `super().__init__`.
    """
    try:
        yield
    except BaseException:
        node.destroy_node()
        raise
