"""A probe node for runner tests: publishes its parameter, records on_shutdown in a file.

Run as a script it patches NODE_CLASSES with itself and calls run_composition,
the code path behind `train-fou run` and the per-node launchers.
"""
import pathlib
import sys

from rclpy.node import Node
from std_msgs.msg import String

from train_fou.qos import RELIABLE


class ProbeNode(Node):
    def __init__(self, **kwargs):
        super().__init__('probe_node', **kwargs)
        self.declare_parameter('greeting', 'unset')
        self.declare_parameter('marker_file', '')
        self._publisher = self.create_publisher(String, 'probe/greeting', RELIABLE)
        self.create_timer(0.05, self._tick)

    def _tick(self):
        self._publisher.publish(String(data=self.get_parameter('greeting').value))

    def on_shutdown(self):
        marker = self.get_parameter('marker_file').value
        if marker:
            pathlib.Path(marker).write_text('on_shutdown called\n')


def main(argv):
    from train_fou import nodes
    from train_fou.nodes.runner import run_composition

    nodes.NODE_CLASSES['probe_node'] = 'helpers.probe_node:ProbeNode'
    params = {'probe_node': {'greeting': argv[1], 'marker_file': argv[2]}}
    return run_composition(['probe_node'], params=params,
                           on_started=lambda started: print('started', flush=True))


if __name__ == '__main__':
    sys.exit(main(sys.argv))
