"""Errors of train_fou.monitoring (the Foxglove live view and the Prometheus metrics)."""
from __future__ import annotations

from train_fou.errors import TrainFouError


class MonitoringError(TrainFouError):
    """A live view or metrics endpoint that cannot start (port taken, bad address)."""
