"""recorder: every pipeline topic, as received (CDR bytes), into an MCAP bag.

Not a launchable node of its own (on the Jetson `ros2 bag record` does this);
`train-fou replay --record` adds it to the composition. Subscriptions are raw,
so nothing is deserialized; each message's bag time is its receive time.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from rclpy.node import Node

from train_fou.record import BagRecorder, msgtype_of


class Recorder(Node):
    def __init__(self, recorder: BagRecorder, topics: Sequence[tuple[str, type, object]], **kwargs):
        """`topics`: (topic, message class, QoS profile) to record."""
        super().__init__('recorder', **kwargs)
        self.bag = recorder
        for topic, msg_class, profile in topics:
            name = self.resolve_topic_name(topic)
            recorder.add_topic(name, msgtype_of(msg_class))
            self.create_subscription(msg_class, topic, self._writer_for(name), profile, raw=True)

    def _writer_for(self, topic: str):
        def write(data: bytes) -> None:
            self.bag.write(topic, time.time_ns(), data)
        return write
