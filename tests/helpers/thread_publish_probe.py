"""Child process for test_runner: publish from a worker thread to a subscription in this process.

That is how the camera, bag player, detector and hub nodes publish (from their
own threads) while the executor spins. `python thread_publish_probe.py KIND HOW`
with HOW one of spin_until (the project's loop), spin (executor.spin()) and
rclpy.spin. Run in a child so a deadlock (rclpy 9.1's EventsExecutor has one
when it waits without a timeout) fails the test by timeout instead of hanging
it: the stuck publisher holds the GIL, so nothing in the process could time it
out. Prints one JSON line: messages published and received, the slowest
publish call, and how often a 50 Hz timer ran.
"""
import json
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from std_msgs.msg import String

from train_fou.executors import make_executor, spin_until
from train_fou.qos import RELIABLE, SENSOR

COUNT = 100


def spin_node(node, executor) -> None:
    """rclpy.spin(node, executor) until the context shuts down (which it reports by raising)."""
    try:
        rclpy.spin(node, executor)
    except ExternalShutdownException:
        pass


def main(kind: str, how: str) -> None:
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
    ticks = []
    listener.create_timer(0.02, lambda: ticks.append(time.monotonic()))
    executor = make_executor(kind, context=context)
    executor.add_node(publisher_node)
    stop = threading.Event()
    if how == 'spin_until':
        executor.add_node(listener)
        spinner = threading.Thread(target=spin_until, args=(executor, stop, 0.1), daemon=True)
    elif how == 'spin':
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
    elif how == 'rclpy.spin':
        spinner = threading.Thread(target=spin_node, args=(listener, executor), daemon=True)
    else:
        raise SystemExit(f'unknown way to spin: {how}')
    spinner.start()
    time.sleep(0.3)  # discovery inside the process
    slowest = 0.0
    for i in range(COUNT):
        for publisher in publishers.values():
            start = time.monotonic()
            publisher.publish(String(data=str(i)))
            slowest = max(slowest, time.monotonic() - start)
        time.sleep(0.005)
    deadline = time.monotonic() + 5.0
    while received['reliable'] < COUNT and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({'published': COUNT, 'received': received, 'slowest_publish_s': slowest,
                      'timer_ticks': len(ticks)}), flush=True)
    stop.set()
    executor.shutdown()
    rclpy.shutdown(context=context)  # ends rclpy.spin
    spinner.join(5)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
