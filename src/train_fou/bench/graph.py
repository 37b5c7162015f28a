"""The ROS graph of a bench run: the bench's node, the nodes under test, one spinning executor."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from train_fou import qos
from train_fou.bench.harness import Collector
from train_fou.executors import make_executor
from train_fou.msg import SignDetectionArray, SpeedCommand
from train_fou.nodes.detector_node import DetectorNode, source_header
from train_fou.nodes.runner import destroy_nodes, run_shutdown_hooks
from train_fou.vision.worker import decode_raw


class EchoNode(Node):
    """Answers each image with an empty SignDetectionArray of its header, at once, on the executor's thread.

    Subscribed and publishing as detector_node is (raw image subscription, the same QoS, the
    header read and the pixels viewed in place), but no letterbox, no model, no hand-off: its
    round trip is what any rclpy node in this process pays to take the image and answer, the
    DDS part of the detector node's overhead on this machine.
    """

    def __init__(self, context: Context, namespace: str):
        super().__init__('bench_echo', namespace=namespace, context=context)
        self._pub = self.create_publisher(SignDetectionArray, 'signs/detections', qos.RELIABLE)
        self.create_subscription(Image, 'camera/image_raw', self._on_image, qos.NEWEST_FRAME, raw=True)

    def _on_image(self, serialized: bytes) -> None:
        fields, image = decode_raw(serialized)
        height, width = image.shape[:2]
        self._pub.publish(SignDetectionArray(header=source_header(fields), image_width=width, image_height=height))


class BenchGraph:
    """One ROS context for a bench run; a context manager.

    The bench's node publishes camera/image_raw (ready bytes) and listens to
    signs/detections (raw) and train/speed_command; the nodes under test live in the same
    context (or, for the detector, in a process of its own); one executor of `executor`
    kind spins them all in a thread. A callback that raises is recorded in
    `callback_errors` and the run goes on. Leaving runs every node's shutdown hook while
    the executor still spins (the hub brakes), then destroys the nodes and the context.

    With `echo`, an EchoNode in `echo_namespace` (its own bench publisher there) answers the
    frames `publish_echo` sends, into the same `collector`.

    A peer detector (`start_peer`: the yolo_ros-style node, a process of its own) gets a
    namespace of its own, `peer_namespace`, and a second bench node there: its images and
    detections never meet the detector's, and its answers land in the same `collector`
    (stamps are unique per frame sent).
    """

    def __init__(self, executor: str):
        self.executor_kind = executor
        self.namespace = f'/train_fou_bench_{os.getpid()}'
        self.peer_namespace = f'{self.namespace}_peer'
        self.echo_namespace = f'{self.namespace}_echo'
        self._echo_pub = None
        self.peer_process: subprocess.Popen | None = None
        self.peer_info: dict = {}
        self._peer_pub = None
        self._peer_stderr = None
        self.collector = Collector()
        self.callback_errors: list[str] = []
        self.nodes: list = []
        self.node_process: subprocess.Popen | None = None
        self._pub = None
        self._executor = None
        self._spinner: threading.Thread | None = None
        self._stop = threading.Event()
        self._scratch = tempfile.TemporaryDirectory(prefix='train_fou_bench_')
        self.context = Context()
        rclpy.init(context=self.context, args=[])

    def __enter__(self) -> BenchGraph:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def start(self, detector_params: dict | None, own_process: bool, echo: bool = False) -> None:
        """The detector (None: none), the bench's node, the echo node (`echo`), and the spinning thread."""
        if detector_params is not None and own_process:
            self.node_process = self._start_node_process(detector_params)
        elif detector_params is not None:
            self.nodes.append(DetectorNode(context=self.context, namespace=self.namespace, parameter_overrides=[
                Parameter(name, value=value) for name, value in detector_params.items()]))
        bench, self._pub = self._bench_node(self.namespace)
        bench.create_subscription(SpeedCommand, 'train/speed_command', self.collector.on_command, qos.RELIABLE,
                                  raw=True)
        if echo:
            self.nodes.append(EchoNode(self.context, self.echo_namespace))
            _, self._echo_pub = self._bench_node(self.echo_namespace)
        self._executor = make_executor(self.executor_kind, context=self.context)
        for node in self.nodes:
            self._executor.add_node(node)
        self._spinner = threading.Thread(target=self._spin, name='bench_spin', daemon=True)
        self._spinner.start()

    def _bench_node(self, namespace: str):
        """(node, image publisher): the bench's side in `namespace`, its detections into `collector`."""
        bench = Node('bench', namespace=namespace, context=self.context)
        self.nodes.append(bench)
        publisher = bench.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
        bench.create_subscription(SignDetectionArray, 'signs/detections', self.collector.on_detections,
                                  qos.RELIABLE, raw=True)
        return bench, publisher

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception as err:  # a pipeline node's callback failed: report it, keep measuring
                self.callback_errors.append(f'{type(err).__name__}: {err}')

    def wait_for_detector(self) -> None:
        """Until the detector (and the echo node) subscribe to the images (10 s, 60 s for its own process)."""
        deadline = time.monotonic() + (60 if self.node_process else 10)
        while (self._pub.get_subscription_count() == 0 or (
                self._echo_pub is not None and self._echo_pub.get_subscription_count() == 0)) \
                and time.monotonic() < deadline:
            if self.node_process is not None and self.node_process.poll() is not None:
                raise RuntimeError(f'detector_node process exited with {self.node_process.returncode}: '
                                   f'{self.node_process.communicate()[1].strip()[-500:]}')
            time.sleep(0.01)

    def publish(self, data: bytes) -> None:
        self._pub.publish(data)

    def publish_echo(self, data: bytes) -> None:
        self._echo_pub.publish(data)

    def publish_peer(self, data: bytes) -> None:
        self._peer_pub.publish(data)

    @property
    def detector_node(self):
        """The DetectorNode in this process (None: none, or it runs in its own process)."""
        return next((n for n in self.nodes if isinstance(n, DetectorNode)), None)

    def start_peer(self, command: list[str], env: dict[str, str], probe, timeout_s: float = 300.0) -> None:
        """Start the peer (`command`, in `peer_namespace`) and wait until it has answered one frame.

        Call after `start`. The peer prints one JSON line with READY_KEY once its model is
        loaded; that line is kept in `peer_info`. Then `probe(stamp_ns)` (a serialized image)
        is sent until one is answered: a matched subscription on this side does not yet mean
        that the peer's reader and writer have matched this side (best effort, volatile).
        Raises RuntimeError with the end of its stderr when it exits or does not answer within
        `timeout_s`.
        """
        from train_fou.bench.yolo_ros_style import READY_KEY
        bench, self._peer_pub = self._bench_node(self.peer_namespace)
        self._executor.add_node(bench)
        self._peer_stderr = open(pathlib.Path(self._scratch.name) / 'peer.stderr', 'w+')  # noqa: SIM115
        self.peer_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._peer_stderr, text=True,
                                             env=env)
        ready = threading.Event()

        def read_stdout(stream) -> None:  # to its end, so that the peer never blocks on a full pipe
            for line in stream:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                if isinstance(info, dict) and info.get(READY_KEY) and not ready.is_set():
                    self.peer_info = info
                    ready.set()
        threading.Thread(target=read_stdout, args=(self.peer_process.stdout,), name='bench_peer_stdout',
                         daemon=True).start()
        deadline = time.monotonic() + timeout_s

        def failed(why: str) -> RuntimeError:
            self._peer_stderr.seek(0)
            lines = [line for line in self._peer_stderr.read().strip().splitlines() if line.strip()]
            return RuntimeError(f'{why}: {lines[-1].strip() if lines else "no output"}')
        while not ready.wait(0.2):
            if self.peer_process.poll() is not None:
                raise failed(f'the peer exited with {self.peer_process.returncode}')
            if time.monotonic() > deadline:
                raise failed(f'the peer was not ready within {timeout_s:.0f} s')
        while self._peer_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise failed('the peer did not subscribe to its images')
            time.sleep(0.01)
        while True:
            key = time.time_ns()
            self._peer_pub.publish(probe(key))
            if self.collector.wait_for(key, 1.0) is not None:
                return
            if self.peer_process.poll() is not None:
                raise failed(f'the peer exited with {self.peer_process.returncode}')
            if time.monotonic() > deadline:
                raise failed(f'the peer answered no frame within {timeout_s:.0f} s')

    def adopt(self, nodes) -> None:
        """Nodes made in this context: torn down with the graph (not spun yet)."""
        self.nodes.extend(nodes)

    def spin_also(self, nodes) -> None:
        for node in nodes:
            self._executor.add_node(node)

    def close(self) -> None:
        if self.node_process is not None:
            _stop_process(self.node_process)
        if self.peer_process is not None:
            self.peer_process.terminate()  # its stdout is read by bench_peer_stdout to the end
            try:
                self.peer_process.wait(15)
            except subprocess.TimeoutExpired:
                self.peer_process.kill()
                self.peer_process.wait()
            self._peer_stderr.close()
        self._scratch.cleanup()
        run_shutdown_hooks(self.nodes)  # while the executor still spins: the hub brakes and publishes its state
        self._stop.set()
        if self._spinner is not None:
            self._spinner.join(5)
        if self._executor is not None:
            self._executor.shutdown()
        destroy_nodes(self.nodes, hooks=False)  # no callback may run on a node being destroyed
        rclpy.shutdown(context=self.context)

    def _start_node_process(self, params: dict) -> subprocess.Popen:
        """detector_node as `train-fou run` in its own process (its own interpreter and GIL)."""
        path = pathlib.Path(self._scratch.name) / 'detector_node.yaml'
        path.write_text(json.dumps({'detector_node': {'ros__parameters': params}}))  # JSON is YAML
        return subprocess.Popen([sys.executable, '-m', 'train_fou.cli', 'run', '--nodes', 'detector_node',
                                 '--namespace', self.namespace, '--params', str(path),
                                 '--executor', self.executor_kind],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
