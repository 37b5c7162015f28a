"""detector_node: camera/image_raw -> signs/detections (+ signs/annotated, /diagnostics).

Plumbing over train_fou.vision.worker.InferenceWorker: the subscription takes
the serialized image and submits it (the worker views the pixels in place and
keeps only the newest frame); the worker's thread loads the backend, runs the
model and calls back here to publish. The node refuses to start without its
model or metadata (one error naming the path).
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from train_fou import qos
from train_fou.msg import SignDetection, SignDetectionArray
from train_fou.nodes.image_msgs import image_msg
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range, int_range
from train_fou.paths import default_model
from train_fou.vision.annotate import draw_detections
from train_fou.vision.backends import CHOICES
from train_fou.vision.detector import open_detector, resolve_model_paths
from train_fou.vision.errors import EngineLoadError
from train_fou.vision.worker import DECODERS, InferenceResult, InferenceWorker

TRANSPORTS = {'raw': ('camera/image_raw', Image), 'compressed': ('camera/image_raw/compressed', CompressedImage)}
#: How long start-up waits for the backend (a TensorRT engine can take a while to deserialize).
LOAD_TIMEOUT_S = 300.0


def source_header(source) -> Header:
    """The header of the source image for a message about it: `source` has sec, nanosec and frame_id
    (an InferenceResult, or the fields vision.cdr.parse_image read)."""
    return Header(stamp=Time(sec=source.sec, nanosec=source.nanosec), frame_id=source.frame_id)


class DetectorNode(CheckedParameters, Node):
    def __init__(self, **kwargs):
        self.worker: InferenceWorker | None = None  # what destroy_node needs, before anything can fail
        super().__init__('detector_node', **kwargs)
        with destroyed_on_failure(self):
            self._declare()
            self._start()

    def _declare(self) -> None:
        self.declare_parameter('model_path', '', described(
            'ONNX model or TensorRT engine; empty: share/train_fou/models/signs.onnx', read_only=True))
        self.declare_parameter('engine_path', '', described(
            'TensorRT engine; empty: <model>.engine when it exists', read_only=True))
        self.declare_parameter('metadata_path', '', described(
            'model metadata JSON; empty: <model>.json', read_only=True))
        self.declare_choice('backend', 'auto', CHOICES, 'inference backend')
        self.declare_choice('input_transport', 'raw', tuple(TRANSPORTS),
                            'raw (camera/image_raw) or compressed (camera/image_raw/compressed)')
        self.declare_parameter('refine', True, described(
            're-read speed-limit and stop detections with the refiner the model metadata names '
            '(false: the detector alone)', read_only=True))
        self.declare_parameter('intra_op_threads', 0, int_range(
            'ONNX Runtime CPU threads; 0: one per core', 0, 64, read_only=True))
        for name, text in (('conf_threshold', 'minimum class score'), ('iou_threshold', 'NMS IoU threshold')):
            value = self.declare_parameter(name, -1.0, float_range(f'{text}; -1: from the model metadata', -1, 1)).value
            if not (value == -1.0 or 0.0 <= value <= 1.0):
                raise self.parameter_error(name, value, 'a number from 0 to 1, or -1 (from the model metadata)')
        self.declare_parameter('max_detections', 100, int_range('detections kept per frame after NMS', 1, 1000))
        self.declare_parameter('diagnostics_period_s', 1.0, float_range(
            'period of /diagnostics', 0.1, 60, read_only=True))
        self.declare_parameter('warn_throttle_s', 5.0, float_range(
            'at most one bad-frame warning per this many seconds', 0, 3600, read_only=True))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _start(self) -> None:
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self._paths = paths = resolve_model_paths(value('model_path') or str(default_model()),
                                                  value('engine_path') or None, value('metadata_path') or None)
        conf, iou = value('conf_threshold'), value('iou_threshold')
        options = dict(engine_path=paths.engine, metadata_path=paths.metadata,
                       conf_threshold=None if conf < 0 else conf, iou_threshold=None if iou < 0 else iou,
                       intra_op_threads=value('intra_op_threads'), max_detections=value('max_detections'),
                       refine=value('refine'))
        model, backend, transport = paths.onnx or paths.engine, value('backend'), value('input_transport')
        self.worker = InferenceWorker(lambda: open_detector(model, backend, **options), DECODERS[transport],
                                      self._publish_detections, on_problem=self._warn,
                                      on_annotate=self._publish_annotated)
        if not self.worker.start(LOAD_TIMEOUT_S):
            raise EngineLoadError(f'detector_node: backend did not load within {LOAD_TIMEOUT_S:.0f} s')
        self._log_choice()

        self._detections_pub = self.create_publisher(SignDetectionArray, 'signs/detections', qos.RELIABLE)
        self._annotated_pub = self.create_publisher(Image, 'signs/annotated', qos.SENSOR)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        topic, msg_type = TRANSPORTS[transport]
        self.create_subscription(msg_type, topic, self.worker.submit, qos.NEWEST_FRAME, raw=True)
        self.create_timer(value('diagnostics_period_s'), self._publish_diagnostics)

    def _log_choice(self) -> None:
        choice, detector = self.worker.choice, self.worker.detector
        for note in choice.notes:
            if note.level == 'error':
                self.get_logger().error(f'{note.backend}: {note.message}')
        self.get_logger().info(f'backend {choice.reason}')
        if detector.refiner is not None:
            spec = detector.refiner.spec
            self.get_logger().info(f'refiner {spec.model.name} on {detector.refiner.backend.name} re-reads '
                                   f'{", ".join(spec.applies_to)}')

    # --- parameters ---------------------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name in ('conf_threshold', 'iou_threshold') and not (
                    param.value == -1.0 or 0.0 <= param.value <= 1.0):
                return SetParametersResult(successful=False, reason=f'{param.name} must be -1 or in [0, 1]')
        detector = self.worker.detector if self.worker is not None else None
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

    # --- the worker's callbacks (its thread) --------------------------------------------------
    def _warn(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=self.get_parameter('warn_throttle_s').value)

    def _publish_detections(self, result: InferenceResult) -> None:
        height, width = result.image.shape[:2]
        out = SignDetectionArray(header=source_header(result), image_width=width, image_height=height,
                                 backend=self.worker.detector.backend_name, preprocess_ms=result.preprocess_ms,
                                 inference_ms=result.inference_ms, postprocess_ms=result.postprocess_ms,
                                 frames_dropped=result.frames_dropped)
        out.detections = [SignDetection(class_id=d.class_id, label=d.label, score=d.score, x_min=d.x1, y_min=d.y1,
                                        width=d.x2 - d.x1, height=d.y2 - d.y1) for d in result.detections]
        self._detections_pub.publish(out)

    def _publish_annotated(self, result: InferenceResult) -> None:
        if self._annotated_pub.get_subscription_count() > 0:
            self._annotated_pub.publish(image_msg(draw_detections(result.image, result.detections),
                                                  source_header(result)))

    # --- timers -------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        worker = self.worker
        now = worker.clock()
        stats, counts = worker.stats.snapshot(now), worker.counters
        backend = worker.detector.backend_name
        period = self.get_parameter('diagnostics_period_s').value
        if stats['last_s'] is None or now - stats['last_s'] > max(2.0, 3 * period):
            level, message = 'warn', 'no frames processed recently'
        else:
            level, message = 'ok', f'{stats["fps"]:.1f} fps on {backend}'
        values = {'backend': backend, 'fps': stats['fps'], 'latency_p50_ms': stats['latency_p50_ms'],
                  'latency_p95_ms': stats['latency_p95_ms'], 'frames_processed': counts.processed,
                  'frames_received': counts.received, 'frames_dropped': counts.dropped,
                  'bad_frames': counts.bad_frames, 'inference_errors': counts.errors,
                  'last_problem': counts.last_problem, 'model': str(self._paths.onnx or self._paths.engine)}
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'detector_node: sign detector',
                                                  level, message, values))

    # --- teardown -----------------------------------------------------------------------------
    def on_shutdown(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def destroy_node(self):
        self.on_shutdown()
        return super().destroy_node()

    @property
    def frames_dropped(self) -> int:
        return self.worker.frames_dropped if self.worker is not None else 0
