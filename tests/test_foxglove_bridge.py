"""foxglove_bridge and metrics_exporter as nodes: the camera only while a viewer watches, a stalled viewer
slows nothing, a port that is taken is one clear line."""
from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from train_fou import qos
from train_fou.monitoring.errors import MonitoringError
from train_fou.nodes.runner import create_nodes

from helpers.foxglove_client import FoxgloveClient, taken_port
from helpers.spinning import Spinner
from helpers.waiting import LIVENESS_S, wait_until

LOCAL = {'host': '127.0.0.1', 'port': 0}


@pytest.fixture
def spinning(ros_context):
    """start(nodes...): spin them on one executor in a thread until the test ends."""
    spinner = Spinner(ros_context, shutdown_hooks=True)
    yield spinner
    spinner.close()


def _bridge(ros_context, **params):
    return create_nodes(['foxglove_bridge'], {'foxglove_bridge': {**LOCAL, **params}}, context=ros_context)[0]


def test_the_camera_is_subscribed_only_while_a_viewer_watches(ros_context, spinning):
    bridge = _bridge(ros_context)
    probe = Node('diagnostics_probe', context=ros_context)
    reports = []
    probe.create_subscription(DiagnosticArray, '/diagnostics', lambda m: reports.extend(
        {kv.key: kv.value for kv in s.values} for s in m.status if s.name == 'foxglove_bridge: live view'),
        qos.DIAGNOSTICS)
    spinning(bridge, probe)
    watching = lambda: bridge.count_subscribers('/camera/image_raw') == 1  # noqa: E731
    # its first report comes after a second of its timers: five viewer checks, none with a viewer
    assert wait_until(lambda: reports, LIVENESS_S)
    assert reports[0]['viewers'] == '0' and reports[0]['camera_subscribed'] == 'False'
    assert not watching()
    with FoxgloveClient(f'ws://127.0.0.1:{bridge.port}') as viewer:
        viewer.receive(LIVENESS_S, until=lambda v: len(v.channels) == 6)
        assert wait_until(watching, LIVENESS_S)
        assert bridge.viewers == 1
    assert wait_until(lambda: not watching(), LIVENESS_S)
    assert bridge.stats['camera_subscriptions'] == 1


def test_a_viewer_that_stops_reading_slows_neither_the_executor_nor_the_encoder(ros_context, spinning):
    """Noise frames make ~300 KB JPEGs: at 30 fps the stalled socket fills in a second, then the SDK drops."""
    bridge = _bridge(ros_context, image_max_rate_hz=30.0, message_backlog=8)
    camera = Node('fake_camera', context=ros_context)
    publisher = camera.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(3)]
    published, ticks = [0], []

    def publish():
        image = frames[published[0] % 3]
        msg = Image(height=480, width=640, encoding='bgr8', step=640 * 3, data=image.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + published[0], 0
        publisher.publish(msg)
        published[0] += 1
    camera.create_timer(1 / 30, publish)
    camera.create_timer(0.05, lambda: ticks.append(time.monotonic()))
    spinning(bridge, camera)
    viewer = FoxgloveClient(f'ws://127.0.0.1:{bridge.port}')
    try:
        viewer.receive(LIVENESS_S, until=lambda v: len(v.channels) == 6)  # subscribed to all, then never reads
        assert wait_until(lambda: bridge.stats['images_sent'] >= 5, LIVENESS_S)
        sent, t0, ticks_before = bridge.stats['images_sent'], time.monotonic(), len(ticks)
        assert wait_until(lambda: time.monotonic() - t0 > 4.0, 10.0)  # 4 s of ~9 MB/s to a stalled viewer
        elapsed = time.monotonic() - t0
        assert bridge.stats['images_sent'] - sent > 0.5 * 30 * elapsed * 0.5  # the encoder never waited
        assert len(ticks) - ticks_before > 0.5 * elapsed / 0.05  # a 20 Hz timer on the same executor kept up
    finally:
        viewer.close()
        camera.destroy_node()


def test_a_port_in_use_is_one_line_naming_it(ros_context):
    with taken_port() as port:
        with pytest.raises(MonitoringError) as caught:
            _bridge(ros_context, port=port)
        assert str(caught.value).startswith(f'foxglove_bridge: cannot serve the live view on 127.0.0.1:{port}: ')
        assert '\n' not in str(caught.value)
        with pytest.raises(MonitoringError) as caught:
            create_nodes(['metrics_exporter'], {'metrics_exporter': {'host': '127.0.0.1', 'port': port}},
                         context=ros_context)
        assert str(caught.value).startswith(f'metrics_exporter: cannot serve metrics on 127.0.0.1:{port}: ')


def test_an_empty_host_is_refused_at_start(ros_context):
    from train_fou.nodes import ParameterError
    with pytest.raises(ParameterError, match="foxglove_bridge: parameter host = '': expected an address"):
        _bridge(ros_context, host='')


def test_rclpy_shutdown_after_the_bridge_destroys_nothing_twice():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    bridge = _bridge(context)
    bridge.destroy_node()
    rclpy.shutdown(context=context)
