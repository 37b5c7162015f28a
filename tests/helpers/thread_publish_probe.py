"""Child process for test_runner: publish from a worker thread to a subscription in this process.

That is how the camera, bag player, detector and hub nodes publish (from their
own threads) while the runner spins. Run in a child so a deadlock (rclpy 9.1's
EventsExecutor.spin() has one) fails the test by timeout instead of hanging it:
the stuck publisher holds the GIL, so nothing in the process could time it out.
Prints one JSON line: messages published, received, and the slowest publish call.
"""
import json
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from std_msgs.msg import String

from train_fou.executors import make_executor, spin_until
from train_fou.qos import RELIABLE, SENSOR

COUNT = 200


def main(kind: str) -> None:
    context = Context()
    rclpy.init(context=context)
    publisher_node = rclpy.create_node('thread_publisher', context=context)
    listener = rclpy.create_node('same_process_listener', context=context)
    received = {'reliable': 0, 'sensor': 0}
    publishers = {}
    for name, qos in (('reliable', RELIABLE), ('sensor', SENSOR)):
        publishers[name] = publisher_node.create_publisher(String, f'probe_{name}', qos)
        listener.create_subscription(String, f'probe_{name}',
                                     lambda _m, name=name: received.__setitem__(name, received[name] + 1), qos)
    executor = make_executor(kind, context=context)
    executor.add_node(publisher_node)
    executor.add_node(listener)
    stop = threading.Event()
    spinner = threading.Thread(target=spin_until, args=(executor, stop, 0.1), daemon=True)
    spinner.start()
    time.sleep(0.3)  # discovery inside the process
    slowest = 0.0
    for i in range(COUNT):
        for publisher in publishers.values():
            start = time.monotonic()
            publisher.publish(String(data=str(i)))
            slowest = max(slowest, time.monotonic() - start)
        time.sleep(0.002)
    deadline = time.monotonic() + 5.0
    while received['reliable'] < COUNT and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    spinner.join(5)
    print(json.dumps({'published': COUNT, 'received': received, 'slowest_publish_s': slowest}), flush=True)
    executor.shutdown()
    rclpy.shutdown(context=context)


if __name__ == '__main__':
    main(sys.argv[1])
