"""Another ROS system on the same domain: publishes power 100 on train/speed_command at 20 Hz until killed."""
import sys

import rclpy
from rclpy.node import Node

from train_fou import qos
from train_fou.executors import make_executor
from train_fou.msg import SpeedCommand


def main() -> int:
    rclpy.init()
    node = Node('intruder')
    publisher = node.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
    node.create_timer(0.05, lambda: publisher.publish(SpeedCommand(power=100, state=SpeedCommand.CRUISE,
                                                                     reason='not the train')))
    executor = make_executor()
    executor.add_node(node)
    print('publishing', flush=True)
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
