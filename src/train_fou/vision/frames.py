"""The newest-frame mailbox between a subscription and an inference thread, and rolling stats.

A slow model must never make latency grow: the subscription callback only
`put`s into a one-place mailbox, replacing (and counting) a frame that was not
taken yet; the inference thread `take`s the newest one. Time is passed in.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar('T')


class NewestSlot(Generic[T]):
    """A one-place mailbox: put() overwrites, take() blocks for the newest item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0  # items replaced before anyone took them
        self.received = 0

    def put(self, item: T) -> T | None:
        """Store `item`; returns the item it replaced before anyone took it (a dropped frame), else None."""
        with self._cond:
            replaced = self._item if self._full else None
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.received += 1
            self._cond.notify()
            return replaced

    def take(self, timeout_s: float | None = None) -> T | None:
        """The newest item, or None after `timeout_s` or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout_s):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class RollingStats:
    """Latencies and event times of the last `window` frames: fps, p50, p95."""

    def __init__(self, window: int = 300):
        self._latencies: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, now_s: float, latency_ms: float) -> None:
        with self._lock:
            self._latencies.append(latency_ms)
            self._times.append(now_s)
            self.count += 1

    def snapshot(self, now_s: float, horizon_s: float = 5.0) -> dict[str, Any]:
        """fps over the last `horizon_s`, latency percentiles over the window (None when empty)."""
        with self._lock:
            latencies = np.fromiter(self._latencies, float)
            recent = sum(1 for t in self._times if now_s - t <= horizon_s)
            last = self._times[-1] if self._times else None
        if latencies.size == 0:
            return {'fps': 0.0, 'latency_p50_ms': None, 'latency_p95_ms': None, 'last_s': None}
        p50, p95 = np.percentile(latencies, [50, 95])
        return {'fps': recent / horizon_s, 'latency_p50_ms': float(p50), 'latency_p95_ms': float(p95),
                'last_s': last}
