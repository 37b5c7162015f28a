"""camera_node: V4L2, GStreamer (Jetson CSI via nvarguscamerasrc) or a looping video file.

Publishes camera/image_raw (bgr8, stamped at capture), optionally
camera/image_raw/compressed (JPEG) and camera/camera_info (from a calibration
YAML). A camera that never opens or disappears gives one error line per outage,
ERROR on /diagnostics, and retries with a growing delay; the node stays up.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from train_fou import qos
from train_fou.nodes.image_msgs import compressed_msg, image_msg
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import described, destroyed_on_failure, diagnostics, float_range, int_range
from train_fou.vision.camera import (SOURCES, Backoff, CameraError, SourceConfig, load_calibration, open_source,
                                     source_fps)
from train_fou.vision.images import encode_jpeg


def camera_info_msg(cal, header: Header) -> CameraInfo:
    return CameraInfo(header=header, width=cal.width, height=cal.height, distortion_model=cal.distortion_model,
                      d=list(cal.d), k=list(cal.k), r=list(cal.r), p=list(cal.p))


class CameraNode(CheckedParameters, Node):
    def __init__(self, **kwargs):
        # what on_shutdown needs, before anything can fail
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__('camera_node', **kwargs)
        with destroyed_on_failure(self):
            self._setup()

    def _setup(self) -> None:
        ro = dict(read_only=True)
        declare = self.declare_parameter
        self.declare_choice('source', 'v4l2', SOURCES, 'camera source')
        declare('device', '/dev/video0', described('V4L2 device path or index', **ro))
        declare('pipeline', '', described(
            'GStreamer pipeline ending in appsink; empty: the Jetson CSI camera (nvarguscamerasrc)', **ro))
        declare('sensor_id', 0, int_range('CSI sensor of the default pipeline', 0, 7, **ro))
        declare('file_path', '', described('video file for source=file', **ro))
        declare('width', 640, int_range('pixels', 16, 8192, **ro))
        declare('height', 480, int_range('pixels', 16, 8192, **ro))
        declare('fps', 30.0, float_range('frames per second (files: when they do not say)', 0.1, 240, **ro))
        declare('pixel_format', 'MJPG', described('V4L2 FOURCC (MJPG, YUYV); empty: default', **ro))
        declare('loop', True, described('source=file: start over at the end'))
        declare('frame_id', 'camera', described('header.frame_id of every message'))
        declare('publish_compressed', False, described('also publish camera/image_raw/compressed (JPEG)', **ro))
        declare('jpeg_quality', 80, int_range('JPEG quality', 1, 100))
        declare('calibration_file', '', described(
            'camera_calibration YAML; publishes camera/camera_info when given', **ro))
        declare('retry_initial_s', 0.5, float_range('first retry delay', 0.01, 60, **ro))
        declare('retry_max_s', 10.0, float_range('longest retry delay', 0.01, 600, **ro))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        value = self.get_parameter
        kind = value('source').value
        self._config = SourceConfig(kind=kind, device=str(value('device').value), pipeline=value('pipeline').value,
                                    file_path=value('file_path').value, width=value('width').value,
                                    height=value('height').value, fps=value('fps').value,
                                    pixel_format=value('pixel_format').value, sensor_id=value('sensor_id').value)
        cal_file = value('calibration_file').value
        self._calibration = load_calibration(cal_file) if cal_file else None
        self._image_pub = self.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
        self._compressed_pub = (self.create_publisher(CompressedImage, 'camera/image_raw/compressed', qos.SENSOR)
                                if value('publish_compressed').value else None)
        self._info_pub = (self.create_publisher(CameraInfo, 'camera/camera_info', qos.SENSOR)
                          if self._calibration else None)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self._backoff = Backoff(value('retry_initial_s').value, value('retry_max_s').value)
        self.frames = 0
        self.error = ''
        self.state = 'starting'
        self.create_timer(1.0, self._publish_diagnostics)
        self._thread = threading.Thread(target=self._capture_loop, name='camera_capture', daemon=True)
        self._thread.start()

    def _on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'frame_id' and not isinstance(param.value, str):
                return SetParametersResult(successful=False, reason='frame_id must be a string')
        return SetParametersResult(successful=True)

    def _fail(self, message: str) -> None:
        if message != self.error:  # one line per outage (or per new kind of failure), not per retry
            self.get_logger().error(f'{message}; retrying with backoff up to {self._backoff.max_s:.0f} s')
        self.error, self.state = message, 'error'

    def _capture_loop(self) -> None:
        cap = None
        period = None
        next_due = 0.0
        while not self._stop.is_set():
            if cap is None:
                try:
                    cap = open_source(self._config)
                except CameraError as err:
                    self._fail(str(err))
                    self._stop.wait(self._backoff.next_delay())
                    continue
                if self.error:
                    self.get_logger().info(f'camera is back after {self._backoff.failures} retries')
                self._backoff.reset()
                self.error, self.state = '', 'streaming'
                period = 1.0 / source_fps(cap, self._config.fps) if self._config.kind == 'file' else None
                next_due = time.monotonic()
            ok, frame = cap.read()
            if not ok or frame is None:
                if self._config.kind == 'file' and self.frames > 0 and self.get_parameter('loop').value:
                    cap.release()
                    cap = None  # reopen: rewinding is unreliable for some containers
                    self._backoff.reset()
                    continue
                cap.release()
                cap = None
                if self._config.kind == 'file' and self.frames > 0:
                    self.state = 'finished'
                    self.get_logger().info('end of the video file')
                    return
                self._fail(f'{self._describe()} stopped delivering frames')
                self._stop.wait(self._backoff.next_delay())
                continue
            self._publish(frame)
            if period is not None:
                next_due += period
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        if cap is not None:
            cap.release()

    def _describe(self) -> str:
        cfg = self._config
        return {'v4l2': f'V4L2 device {cfg.device}', 'gstreamer': 'GStreamer pipeline',
                'file': f'video file {cfg.file_path}'}[cfg.kind]

    def _publish(self, frame) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.get_parameter('frame_id').value)
        self._image_pub.publish(image_msg(frame, header))
        if self._compressed_pub is not None:
            self._compressed_pub.publish(compressed_msg(encode_jpeg(frame, self.get_parameter('jpeg_quality').value),
                                                        header))
        if self._info_pub is not None:
            self._info_pub.publish(camera_info_msg(self._calibration, header))
        self.frames += 1

    def _publish_diagnostics(self) -> None:
        level = {'error': 'error', 'starting': 'warn'}.get(self.state, 'ok')
        message = self.error if self.state == 'error' else self.state
        values = {'source': self._config.kind, 'target': self._describe(), 'frames': self.frames,
                  'retries': self._backoff.failures}
        self._diagnostics_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'camera_node: camera',
                                                  level, message, values))

    def on_shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def destroy_node(self):
        self.on_shutdown()
        return super().destroy_node()
