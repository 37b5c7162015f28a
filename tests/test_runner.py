"""The composition runner starts nodes with their parameters and stops cleanly on signals."""
import pathlib
import signal
import subprocess
import sys

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from conftest import wait_until
from train_fou.qos import RELIABLE

TESTS_DIR = pathlib.Path(__file__).parent


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_runner_applies_parameters_and_calls_on_shutdown_on_signal(tmp_path, ros_context, signum):
    marker = tmp_path / 'shutdown.txt'
    process = subprocess.Popen(
        [sys.executable, '-m', 'helpers.probe_node', 'bonjour', str(marker)], cwd=TESTS_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node = rclpy.create_node('runner_probe_listener', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    greetings = []
    node.create_subscription(String, 'probe/greeting', lambda m: greetings.append(m.data), RELIABLE)
    try:
        assert process.stdout.readline().strip() == 'started', process.stderr.read()
        assert wait_until(lambda: greetings, 15.0, spin=lambda s: executor.spin_once(timeout_sec=s))
        assert greetings[-1] == 'bonjour'
        process.send_signal(signum)
        assert process.wait(timeout=15) == 0, process.stderr.read()
        assert marker.read_text() == 'on_shutdown called\n'
    finally:
        if process.poll() is None:
            process.kill()
        executor.shutdown()
        node.destroy_node()
