"""The bench's fair peer: a detector node shaped like mgonzs13/yolo_ros, ultralytics predict in the callback.

What it keeps of yolo_ros' `YoloNode.image_cb`: a deserialized sensor_msgs/Image
subscription (best effort, keep last 1), the image viewed as cv_bridge's
`imgmsg_to_cv2` does (the message's bytes reshaped, no copy), `YOLO(model).predict`
called inside the subscription callback (the executor waits on the inference;
frames replaced meanwhile are dropped by DDS, uncounted), the results turned into a
detections message with the image's header and published. What it leaves out, so
that the peer is yolo_ros at its best: the BGR -> RGB `cvtColor` before predict
(ultralytics takes BGR arrays, so yolo_ros hands it swapped channels, and pays for
the conversion), the lifecycle transitions, and reading every box with tensor
indexing (here one `.tolist()` per result). It uses the project's message, QoS,
executor kind and Fast DDS profile, so that the node and the peer differ only in
how they run the model.

Run as `python -m train_fou.bench.yolo_ros_style` by an interpreter that has
ultralytics, which is the training venv's: it has ultralytics and torch but no
rclpy. The bench passes the runtime venv's packages in the environment
(`peer_environment`) and `use_runtime_packages` makes them importable here
(see there why that is done at run time and not by installing). This module
imports only the standard library at load time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import signal
import sys
import threading

#: The runtime venv's site-packages, given to the peer by the bench.
RUNTIME_SITE_ENV = 'TRAIN_FOU_RUNTIME_SITE'
#: Printed once on stdout (one JSON line) when the model is loaded, warmed and subscribed.
READY_KEY = 'ready'


def runtime_site() -> pathlib.Path:
    """site-packages of this (runtime) interpreter's install space: where train_fou.msg was generated."""
    spec = importlib.util.find_spec('train_fou.msg')
    if spec is None or spec.origin is None:
        raise ImportError('train_fou.msg is not importable here: build the package (make setup)')
    return pathlib.Path(spec.origin).parents[2]  # site-packages/train_fou/msg/__init__.py


def peer_environment(environ: dict[str, str], site: pathlib.Path, prefix: pathlib.Path) -> dict[str, str]:
    """`environ` plus what another interpreter needs to load this install space's rclpy and messages.

    LD_LIBRARY_PATH gets `prefix`/lib and the wheels' ros_*.libs folders: the dynamic
    loader reads it only when a process starts, which is why the runtime venv's
    interpreter re-executes itself with it (ros_wheels_bootstrapper); the training
    venv's has no bootstrapper. AMENT_PREFIX_PATH names `prefix`, so the share
    directory (config/fastdds.xml) and the ament index are found.
    """
    env = dict(environ)
    libs = [str(prefix / 'lib')] + sorted(str(p) for p in site.glob('ros_*.libs') if p.is_dir())
    env['LD_LIBRARY_PATH'] = os.pathsep.join(libs + [p for p in environ.get('LD_LIBRARY_PATH', '').split(os.pathsep)
                                                     if p and p not in libs])
    ament = [p for p in environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(ament if str(prefix) in ament else [str(prefix)] + ament)
    env[RUNTIME_SITE_ENV] = str(site)
    return env


def use_runtime_packages(site: str | os.PathLike) -> None:
    """Make the runtime venv's rclpy, message packages and train_fou.msg importable here.

    `site` goes to the *end* of sys.path: this interpreter's own packages (NumPy, OpenCV,
    torch, ultralytics) keep precedence, and only what it lacks (rclpy, the ROS message
    packages) comes from the runtime venv. train_fou itself is already imported from the
    training venv's .pth (the source tree, src/train_fou), which never holds `msg`
    (DEVELOPERS.md: the generated msg package and its type-support libraries exist only
    in the install space). So the install space's train_fou folder is appended to
    `train_fou.__path__`: train_fou.* is looked up in the source tree first and in the
    install space second, where train_fou.msg is found. The source files are the
    install space's too (a symlink install), so nothing is imported twice in two versions.
    """
    site = pathlib.Path(site)
    if str(site) not in sys.path:
        sys.path.append(str(site))
    import train_fou
    installed = str(site / 'train_fou')
    if importlib.util.find_spec('train_fou.msg') is None and installed not in train_fou.__path__:
        train_fou.__path__.append(installed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m train_fou.bench.yolo_ros_style',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('model', help='model file that ultralytics.YOLO opens (task detect)')
    parser.add_argument('--imgsz', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'), required=True)
    parser.add_argument('--conf', type=float, required=True, help='score threshold')
    parser.add_argument('--iou', type=float, required=True, help='NMS IoU threshold')
    parser.add_argument('--max-det', type=int, default=300)
    parser.add_argument('--names', default='', help='JSON list of class labels (default: the model\'s)')
    parser.add_argument('--namespace', required=True)
    parser.add_argument('--executor', default=None, help='executor kind (train_fou.executors)')
    parser.add_argument('--frame-size', type=int, nargs=2, metavar=('WIDTH', 'HEIGHT'), default=(640, 480),
                        help='size of the warm-up frame')
    return parser


def to_bgr(msg):
    """sensor_msgs/Image (bgr8) -> HxWx3 uint8 view of its data, as cv_bridge.imgmsg_to_cv2 makes it."""
    import numpy as np
    if msg.encoding != 'bgr8':
        raise ValueError(f'expected a bgr8 image, got {msg.encoding!r}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if msg.step == msg.width * 3:
        return data.reshape(msg.height, msg.width, 3)
    return np.lib.stride_tricks.as_strided(data, (msg.height, msg.width, 3), (msg.step, 3, 1))


class Peer:
    """YOLO(model).predict inside the image callback; the node is made by `attach`."""

    def __init__(self, model, imgsz, conf: float, iou: float, max_det: int, names):
        self.model, self.imgsz, self.conf, self.iou, self.max_det = model, tuple(imgsz), conf, iou, max_det
        self.names = list(names) if names else [model.names[i] for i in sorted(model.names)]
        self.backend = ''
        self._pub = None

    def predict(self, image):
        return self.model.predict(source=image, verbose=False, stream=False, conf=self.conf, iou=self.iou,
                                  imgsz=self.imgsz, max_det=self.max_det, device='cpu')[0].cpu()

    def attach(self, node, qos, msg_types) -> None:
        image_type, self._array_type, self._detection_type = msg_types
        self._pub = node.create_publisher(self._array_type, 'signs/detections', qos.RELIABLE)
        node.create_subscription(image_type, 'camera/image_raw', self.image_cb, qos.NEWEST_FRAME)

    def image_cb(self, msg) -> None:
        image = to_bgr(msg)
        result = self.predict(image)
        out = self._array_type(header=msg.header, image_width=msg.width, image_height=msg.height,
                               backend=self.backend, preprocess_ms=float(result.speed.get('preprocess') or 0.0),
                               inference_ms=float(result.speed.get('inference') or 0.0),
                               postprocess_ms=float(result.speed.get('postprocess') or 0.0))
        boxes = result.boxes
        if boxes is not None and len(boxes):
            make = self._detection_type
            out.detections = [
                make(class_id=int(c), label=self.names[int(c)] if int(c) < len(self.names) else str(int(c)),
                     score=float(s), x_min=x1, y_min=y1, width=x2 - x1, height=y2 - y1)
                for (x1, y1, x2, y2), s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())]
        self._pub.publish(out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    site = os.environ.get(RUNTIME_SITE_ENV)
    if site:
        use_runtime_packages(site)
    import numpy as np
    import ultralytics
    from ultralytics import YOLO

    model = YOLO(args.model, task='detect')
    peer = Peer(model, args.imgsz, args.conf, args.iou, args.max_det, json.loads(args.names) if args.names else ())
    peer.backend = f'ultralytics {ultralytics.__version__}'
    width, height = args.frame_size
    peer.predict(np.zeros((height, width, 3), np.uint8))  # the first predict builds ultralytics' predictor

    from train_fou.dds import use_project_transport
    use_project_transport()
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Image

    from train_fou import qos
    from train_fou.executors import make_executor
    from train_fou.msg import SignDetection, SignDetectionArray

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    context = Context()
    rclpy.init(context=context, args=[])
    node = executor = None
    try:
        node = rclpy.create_node('yolo_ros_style', namespace=args.namespace, context=context)
        peer.attach(node, qos, (Image, SignDetectionArray, SignDetection))
        executor = make_executor(args.executor, context=context)
        executor.add_node(node)
        print(json.dumps({READY_KEY: True, 'ultralytics': ultralytics.__version__, 'python': sys.executable}),
              flush=True)
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    return 0


if __name__ == '__main__':
    sys.exit(main())
