"""detector_node: camera/image_raw -> signs/detections (+ signs/annotated, /diagnostics).

The subscription takes the serialized image, views its pixels in place and
drops the frame into a one-place mailbox; a dedicated inference thread loads
the backend (and so owns the CUDA context), takes the newest frame, letterboxes
it into its one reusable tensor, runs the model and publishes. Frames replaced
before inference are counted, never queued, and cost no letterbox.

The letterbox runs on the inference thread, not in the callback: right after a
callback the executor thread still has its own Python work to do (it rebuilds
its wait set), and on a small CPU that work then competed with the model's
thread pool; on the inference thread the letterbox overlaps it instead.
Measured with the bench's frames, two nodes interleaved in one process on a
shared 2-core machine: image in -> detections out 0.25-0.6 ms faster (median
of paired differences). On the events executor, which has no Python work after
a callback, letterboxing in the callback instead gained nothing either (bench
overhead +2.25-2.28 ms against +2.19-2.30 ms), so it stays here, where frames
that are replaced before inference cost no letterbox. The node refuses to start without its model or
metadata (one error naming the path).
"""
from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from train_fou import qos
from train_fou.msg import SignDetection, SignDetectionArray
from train_fou.nodes.image_msgs import diagnostics, image_msg
from train_fou.nodes.parameters import CheckedParameters
from train_fou.paths import default_model
from train_fou.vision.annotate import draw_detections
from train_fou.vision.backends import CHOICES
from train_fou.vision.cdr import parse_compressed, parse_image
from train_fou.vision.detector import open_detector, resolve_model_paths
from train_fou.vision.errors import EngineLoadError, ImageDecodeError
from train_fou.vision.frames import NewestSlot, RollingStats
from train_fou.vision.images import decode_jpeg, image_from_raw
from train_fou.vision.preprocess import Letterboxer, LetterboxInfo

TRANSPORTS = {'raw': ('camera/image_raw', Image), 'compressed': ('camera/image_raw/compressed', CompressedImage)}


def _decode_raw(data):
    fields = parse_image(data)
    return fields, image_from_raw(fields.encoding, fields.height, fields.width, fields.step, fields.data)


def _decode_compressed(data):
    fields = parse_compressed(data)
    return fields, decode_jpeg(fields.data)


class PendingFrame(NamedTuple):
    """A decoded frame waiting for the model; the inference thread letterboxes it."""

    header: Header
    image: np.ndarray  # BGR (a view into the serialized message for bgr8)
    received: float  # perf_counter() when the message arrived
    preprocess_ms: float  # decode, then + letterbox once `tensor` is set
    tensor: np.ndarray | None = None  # the network input (the inference thread's reused tensor)
    info: LetterboxInfo | None = None


#: transport -> serialized message -> (fields with header, BGR image). The pixels are
#: viewed in place: deserializing a 640x480 Image into Python would cost ~0.5 ms.
DECODERS = {'raw': _decode_raw, 'compressed': _decode_compressed}
#: How long start-up waits for the backend (a TensorRT engine can take a while to deserialize).
LOAD_TIMEOUT_S = 300.0


def _float_range(lo, hi):
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]


class DetectorNode(CheckedParameters, Node):
    def __init__(self, **kwargs):
        # what destroy_node needs, before anything can fail
        self._slot: NewestSlot = NewestSlot()
        self._thread = threading.Thread(target=self._inference_loop, name='detector_inference', daemon=True)
        super().__init__('detector_node', **kwargs)
        try:
            self._declare()
            self._start()
        except BaseException:
            self.destroy_node()  # refuse to start: the caller reports the error (one line naming the path)
            raise

    def _declare(self) -> None:
        read_only = dict(read_only=True)
        self.declare_parameter('model_path', '', ParameterDescriptor(
            description='ONNX model or TensorRT engine; empty: share/train_fou/models/signs.onnx', **read_only))
        self.declare_parameter('engine_path', '', ParameterDescriptor(
            description='TensorRT engine; empty: <model>.engine when it exists', **read_only))
        self.declare_parameter('metadata_path', '', ParameterDescriptor(
            description='model metadata JSON; empty: <model>.json', **read_only))
        self.declare_choice('backend', 'auto', CHOICES, 'inference backend')
        self.declare_choice('input_transport', 'raw', tuple(TRANSPORTS),
                            'raw (camera/image_raw) or compressed (camera/image_raw/compressed)')
        self.declare_parameter('refine', True, ParameterDescriptor(
            description='re-read speed-limit and stop detections with the refiner the model metadata names '
                        '(false: the detector alone)', **read_only))
        self.declare_parameter('intra_op_threads', 0, ParameterDescriptor(
            description='ONNX Runtime CPU threads; 0: one per core',
            integer_range=[IntegerRange(from_value=0, to_value=64, step=1)], **read_only))
        for name, text in (('conf_threshold', 'minimum class score'), ('iou_threshold', 'NMS IoU threshold')):
            value = self.declare_parameter(name, -1.0, ParameterDescriptor(
                description=f'{text}; -1: from the model metadata', floating_point_range=_float_range(-1, 1))).value
            if not (value == -1.0 or 0.0 <= value <= 1.0):
                raise self.parameter_error(name, value, 'a number from 0 to 1, or -1 (from the model metadata)')
        self.declare_parameter('max_detections', 100, ParameterDescriptor(
            description='detections kept per frame after NMS',
            integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)]))
        self.declare_parameter('diagnostics_period_s', 1.0, ParameterDescriptor(
            description='period of /diagnostics', floating_point_range=_float_range(0.1, 60), **read_only))
        self.declare_parameter('warn_throttle_s', 5.0, ParameterDescriptor(
            description='at most one bad-frame warning per this many seconds',
            floating_point_range=_float_range(0, 3600), **read_only))
        self._problems_lock = threading.Lock()  # counters are bumped by the callback and the inference thread
        self._detector = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _start(self) -> None:
        model = self.get_parameter('model_path').value or str(default_model())
        self._paths = resolve_model_paths(model, self.get_parameter('engine_path').value or None,
                                          self.get_parameter('metadata_path').value or None)
        self._stats = RollingStats()
        self._bad_frames = 0
        self._errors = 0
        self._last_problem = ''
        self._backend_name = ''
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._thread.start()
        if not self._ready.wait(LOAD_TIMEOUT_S):
            raise EngineLoadError(f'detector_node: backend did not load within {LOAD_TIMEOUT_S:.0f} s')
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error

        self._detections_pub = self.create_publisher(SignDetectionArray, 'signs/detections', qos.RELIABLE)
        self._annotated_pub = self.create_publisher(Image, 'signs/annotated', qos.SENSOR)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        transport = self.get_parameter('input_transport').value
        topic, msg_type = TRANSPORTS[transport]
        self._decode = DECODERS[transport]
        self.create_subscription(msg_type, topic, self._on_image, qos.NEWEST_FRAME, raw=True)
        self.create_timer(self.get_parameter('diagnostics_period_s').value, self._publish_diagnostics)

    # --- parameters ---------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name in ('conf_threshold', 'iou_threshold') and not (
                    param.value == -1.0 or 0.0 <= param.value <= 1.0):
                return SetParametersResult(successful=False, reason=f'{param.name} must be -1 or in [0, 1]')
        detector = self._detector
        if detector is not None:  # thresholds apply from the next frame on
            meta = detector.metadata
            for param in params:
                if param.name == 'conf_threshold':
                    detector.conf_threshold = meta.conf_threshold if param.value < 0 else param.value
                elif param.name == 'iou_threshold':
                    detector.iou_threshold = meta.iou_threshold if param.value < 0 else param.value
                elif param.name == 'max_detections':
                    detector.max_detections = param.value
        return SetParametersResult(successful=True)

    # --- callbacks ----------------------------------------------------------------------------
    def _on_image(self, serialized: bytes) -> None:
        """View the pixels in place and queue the newest frame (the inference thread letterboxes it)."""
        received = time.perf_counter()
        try:
            fields, image = self._decode(serialized)
        except ImageDecodeError as err:
            self._problem('_bad_frames', f'skipping a malformed image: {err}')
            return
        except Exception as err:  # never let a frame take the executor down
            self._problem('_errors', f'cannot read an image message: {err}')
            return
        header = Header(stamp=Time(sec=fields.sec, nanosec=fields.nanosec), frame_id=fields.frame_id)
        self._slot.put(PendingFrame(header, image, received, (time.perf_counter() - received) * 1e3))
        time.sleep(0)  # hand the GIL to the inference thread now, not after the executor's next wait

    def _letterbox(self, boxer: Letterboxer, frame: PendingFrame) -> PendingFrame | None:
        """The frame with its network input (in `boxer`'s reused tensor), or None when it cannot be."""
        started = time.perf_counter()
        try:
            tensor, info = boxer(frame.image)
        except Exception as err:
            self._problem('_bad_frames', f'skipping an image that cannot be letterboxed: {err}')
            return None
        return frame._replace(tensor=tensor, info=info,
                              preprocess_ms=frame.preprocess_ms + (time.perf_counter() - started) * 1e3)

    def _inference_loop(self) -> None:
        try:
            conf = self.get_parameter('conf_threshold').value
            iou = self.get_parameter('iou_threshold').value
            detector, choice = open_detector(
                self._paths.onnx or self._paths.engine, self.get_parameter('backend').value,
                engine_path=self._paths.engine, metadata_path=self._paths.metadata,
                conf_threshold=None if conf < 0 else conf, iou_threshold=None if iou < 0 else iou,
                intra_op_threads=self.get_parameter('intra_op_threads').value,
                max_detections=self.get_parameter('max_detections').value,
                refine=self.get_parameter('refine').value)
        except BaseException as err:
            self._load_error = err
            self._ready.set()
            return
        for note in choice.notes:
            if note.level == 'error':
                self.get_logger().error(f'{note.backend}: {note.message}')
        self.get_logger().info(f'backend {choice.reason}')
        if detector.refiner is not None:
            spec = detector.refiner.spec
            self.get_logger().info(f'refiner {spec.model.name} on {detector.refiner.backend.name} re-reads '
                                   f'{", ".join(spec.applies_to)}')
        boxer = Letterboxer(detector.metadata.imgsz)  # this thread's: one tensor, reused every frame
        self._detector, self._backend_name = detector, detector.backend_name
        self._ready.set()
        try:
            while True:
                frame = self._slot.take(timeout_s=0.5)
                if frame is None:
                    if self._slot.closed:
                        return
                    continue
                frame = self._letterbox(boxer, frame)
                if frame is not None:
                    self._process(frame)
        finally:
            detector.close()

    def _problem(self, counter: str, message: str) -> None:
        with self._problems_lock:
            setattr(self, counter, getattr(self, counter) + 1)
        self._last_problem = message
        self.get_logger().warning(message, throttle_duration_sec=self.get_parameter('warn_throttle_s').value)

    def _process(self, frame: PendingFrame) -> None:
        try:
            detections, inference_ms, postprocess_ms = self._detector.infer(frame.tensor, frame.info, frame.image)
        except Exception as err:  # a model/backend fault: log (throttled), skip the frame, keep serving
            self._problem('_errors', f'inference failed: {err}')
            return
        image = frame.image
        out = SignDetectionArray(header=frame.header, image_width=image.shape[1], image_height=image.shape[0],
                                 backend=self._backend_name, preprocess_ms=frame.preprocess_ms,
                                 inference_ms=inference_ms, postprocess_ms=postprocess_ms,
                                 frames_dropped=self._slot.dropped)
        out.detections = [SignDetection(class_id=d.class_id, label=d.label, score=d.score, x_min=d.x1, y_min=d.y1,
                                        width=d.x2 - d.x1, height=d.y2 - d.y1) for d in detections]
        self._detections_pub.publish(out)
        done = time.perf_counter()
        self._stats.add(done, (done - frame.received) * 1e3)
        if self._annotated_pub.get_subscription_count() > 0:
            self._annotated_pub.publish(image_msg(draw_detections(image, detections), frame.header))

    def _publish_diagnostics(self) -> None:
        now = time.perf_counter()
        stats = self._stats.snapshot(now)
        period = self.get_parameter('diagnostics_period_s').value
        if stats['last_s'] is None or now - stats['last_s'] > max(2.0, 3 * period):
            level, message = 'warn', 'no frames processed recently'
        else:
            level, message = 'ok', f'{stats["fps"]:.1f} fps on {self._backend_name}'
        values = {'backend': self._backend_name, 'fps': stats['fps'], 'latency_p50_ms': stats['latency_p50_ms'],
                  'latency_p95_ms': stats['latency_p95_ms'], 'frames_processed': self._stats.count,
                  'frames_received': self._slot.received, 'frames_dropped': self._slot.dropped,
                  'bad_frames': self._bad_frames, 'inference_errors': self._errors,
                  'last_problem': self._last_problem, 'model': str(self._paths.onnx or self._paths.engine)}
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'detector_node: sign detector',
                                                  level, message, values))

    # --- teardown -----------------------------------------------------------------------------
    def stop_inference(self, timeout_s: float = 10.0) -> None:
        self._slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def on_shutdown(self) -> None:
        self.stop_inference()

    def destroy_node(self):
        self.stop_inference()
        return super().destroy_node()

    @property
    def frames_dropped(self) -> int:
        return self._slot.dropped
