"""A second process for DDS round-trip tests: republish every interface on `<topic>_echo`.

Prints `ready` once its subscriptions and publishers exist, then echoes until
SIGTERM/SIGINT.
"""
import signal
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from train_fou.msg import HubState, SignDetection, SignDetectionArray, SpeedCommand
from train_fou.qos import RELIABLE

TOPICS = {
    'echo/sign_detection': SignDetection,
    'echo/sign_detections': SignDetectionArray,
    'echo/speed_command': SpeedCommand,
    'echo/hub_state': HubState,
}


def main() -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('interface_echo')
    try:
        for topic, msg_type in TOPICS.items():
            publisher = node.create_publisher(msg_type, topic + '_back', RELIABLE)
            node.create_subscription(msg_type, topic, publisher.publish, RELIABLE)
        print('ready', flush=True)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
