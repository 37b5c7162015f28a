"""Every interface of SPEC §3 crosses a process boundary over real DDS unchanged."""
import subprocess
import sys

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Header

from helpers.waiting import wait_until
from train_fou.msg import HubState, SignDetection, SignDetectionArray, SpeedCommand
from train_fou.qos import RELIABLE

HEADER = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id='train_camera')


def sample_detection(index: int = 0) -> SignDetection:
    return SignDetection(class_id=3, label='danger', score=0.875 - index * 0.125,
                         x_min=12.5 + index, y_min=30.0, width=22.0, height=41.5)


SAMPLES = {
    'echo/sign_detection': sample_detection(),
    'echo/sign_detections': SignDetectionArray(
        header=HEADER, detections=[sample_detection(0), sample_detection(1)],
        image_width=640, image_height=480, backend='onnxruntime-cpu',
        preprocess_ms=1.5, inference_ms=21.25, postprocess_ms=0.5, frames_dropped=7),
    'echo/speed_command': SpeedCommand(
        header=HEADER, source_stamp=Time(sec=1700000000, nanosec=5), power=-30, brake=True,
        state=SpeedCommand.DANGER_LATCHED, reason='danger sign confirmed (2/3 frames)'),
    'echo/hub_state': HubState(
        header=HEADER, connected=True, name='Train Base', address='90:84:2B:00:00:01',
        hub_kind=HubState.HUB_KIND_CITY, battery_percent=87, rssi=-61, applied_power=-100,
        command_latency_ms=4.25, backend='sim', last_error='écrit: ok'),
}


def test_state_constants_match_the_spec():
    assert (SpeedCommand.CRUISE, SpeedCommand.LIMIT, SpeedCommand.STOP_HOLD,
            SpeedCommand.DANGER_LATCHED, SpeedCommand.FAILSAFE) == (0, 1, 2, 3, 4)
    assert (HubState.HUB_KIND_CITY, HubState.HUB_KIND_TECHNIC) == (0x41, 0x80)


@pytest.fixture
def echo_process():
    process = subprocess.Popen([sys.executable, '-m', 'helpers.echo_process'],
                               cwd=str(__import__('pathlib').Path(__file__).parent),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.strip() == 'ready', process.stderr.read()
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_every_interface_round_trips_between_two_processes(echo_process, ros_context):
    node = rclpy.create_node('interface_probe', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    received = {}
    publishers = {}
    for topic, msg in SAMPLES.items():
        publishers[topic] = node.create_publisher(type(msg), topic, RELIABLE)
        node.create_subscription(type(msg), topic + '_back',
                                 lambda m, t=topic: received.setdefault(t, m), RELIABLE)

    def spin(step_s):
        executor.spin_once(timeout_sec=step_s)

    def publish_missing():
        for topic, msg in SAMPLES.items():
            if topic not in received:
                publishers[topic].publish(msg)
        return len(received) == len(SAMPLES)

    try:
        # Re-publish until echoed: discovery between processes takes a moment.
        assert wait_until(publish_missing, timeout_s=20.0, spin=spin, step_s=0.1), \
            f'no echo for {sorted(set(SAMPLES) - set(received))}'
        for topic, msg in SAMPLES.items():
            assert received[topic] == msg, topic
    finally:
        executor.shutdown()
        node.destroy_node()
