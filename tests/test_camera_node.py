"""camera_node with a video file (the only camera here) and with cameras that are not there."""
import re
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from train_fou.nodes.camera_node import CameraNode
from train_fou.vision.camera import Backoff, jetson_csi_pipeline, load_calibration, SourceConfig
from train_fou.vision.errors import CalibrationError

from helpers.waiting import wait_until

BEST_EFFORT = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)

CALIBRATION = """\
image_width: 64
image_height: 48
camera_name: train_cam
camera_matrix: {rows: 3, cols: 3, data: [50, 0, 32, 0, 50, 24, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.05, 0, 0, 0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [50, 0, 32, 0, 0, 50, 24, 0, 0, 0, 1, 0]}
"""


def write_video(path, frames=6, fps=20.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    return path


class Rig:
    def __init__(self, context, **params):
        self.node = Node('camera_test', context=context)
        self.images, self.compressed, self.infos, self.diagnostics = [], [], [], []
        self.node.create_subscription(Image, 'camera/image_raw', self.images.append, BEST_EFFORT)
        self.node.create_subscription(CompressedImage, 'camera/image_raw/compressed', self.compressed.append,
                                      BEST_EFFORT)
        self.node.create_subscription(CameraInfo, 'camera/camera_info', self.infos.append, BEST_EFFORT)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.camera = CameraNode(context=context, parameter_overrides=overrides)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.camera)
        self.executor.add_node(self.node)

    def spin(self, step_s):
        self.executor.spin_once(timeout_sec=step_s)

    def statuses(self):
        return [s for d in self.diagnostics for s in d.status]

    def close(self):
        self.executor.shutdown()
        self.camera.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def rigs(ros_context):
    made = []
    yield lambda **p: made.append(Rig(ros_context, **p)) or made[-1]
    for rig in made:
        rig.close()


def test_file_source_publishes_raw_compressed_and_camera_info_with_capture_stamps(tmp_path, rigs):
    video = write_video(tmp_path / 'v.avi', frames=6, fps=20.0)
    cal = tmp_path / 'cal.yaml'
    cal.write_text(CALIBRATION)
    before = time.time()
    rig = rigs(source='file', file_path=str(video), frame_id='front_cam', publish_compressed=True,
               calibration_file=str(cal), loop=True)
    assert wait_until(lambda: len(rig.images) >= 8 and rig.compressed and rig.infos, 20, rig.spin)
    image = rig.images[-1]
    assert (image.width, image.height, image.encoding, image.header.frame_id) == (64, 48, 'bgr8', 'front_cam')
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in rig.images]
    assert stamps == sorted(stamps) and stamps[0] >= before - 1
    # Paced at the file's 20 fps: 8 frames take at least ~7 periods, looping past the 6-frame end.
    assert stamps[7] - stamps[0] >= 7 / 20 * 0.8
    assert rig.compressed[0].format == 'jpeg'
    assert list(rig.infos[0].k)[:3] == [50.0, 0.0, 32.0] and rig.infos[0].header.frame_id == 'front_cam'


def test_a_missing_camera_reports_error_retries_and_recovers_when_it_appears(tmp_path, rigs):
    video = tmp_path / 'late.avi'
    rig = rigs(source='file', file_path=str(video), retry_initial_s=0.05, retry_max_s=0.2)

    def error_reported():
        return any(s.level == DiagnosticStatus.ERROR and 'late.avi: video file not found' in s.message
                   for s in rig.statuses())
    assert wait_until(error_reported, 10, rig.spin)
    assert wait_until(lambda: rig.camera._backoff.failures >= 3, 10, rig.spin)
    write_video(tmp_path / 'tmp.avi').rename(video)  # the camera appears
    assert wait_until(lambda: rig.images, 10, rig.spin)
    assert rig.camera.error == '' and rig.camera.state == 'streaming'


def test_a_v4l2_device_that_does_not_exist_is_an_error_not_a_crash(rigs):
    rig = rigs(source='v4l2', device='/dev/video97', retry_initial_s=0.05, retry_max_s=0.1)

    def error_reported():
        return any(s.level == DiagnosticStatus.ERROR and '/dev/video97' in s.message for s in rig.statuses())
    assert wait_until(error_reported, 10, rig.spin)
    assert rig.camera.context.ok() and rig.camera._thread.is_alive()


#: OpenCV's build information as the pip wheel (no GStreamer) and the Jetson's system OpenCV print it
BUILD_WITHOUT_GSTREAMER = 'Video I/O:\n    DC1394:                      NO\n    GStreamer:                   NO\n'
BUILD_WITH_GSTREAMER = 'Video I/O:\n    GStreamer:                   YES (1.20.3)\n    v4l/v4l2:  YES\n'
HAVE_GSTREAMER = bool(re.search(r'GStreamer:\s+YES', cv2.getBuildInformation()))


def test_gstreamer_without_gstreamer_support_says_so(rigs, monkeypatch):
    """Wherever the test runs (the OpenCV here has no GStreamer, the Jetson's has): an OpenCV without it."""
    monkeypatch.setattr(cv2, 'getBuildInformation', lambda: BUILD_WITHOUT_GSTREAMER)
    rig = rigs(source='gstreamer', retry_initial_s=0.05)
    assert wait_until(lambda: 'no GStreamer support' in rig.camera.error, 10, rig.spin)


class _Capture:
    """cv2.VideoCapture as far as open_source uses it: remembers how it was opened."""
    opened: list = []
    starts = True

    def __init__(self, *args):
        _Capture.opened.append(args)

    def isOpened(self):
        return _Capture.starts


@pytest.mark.parametrize('starts', [True, False])
def test_gstreamer_with_support_opens_the_jetson_pipeline_or_names_it(monkeypatch, starts):
    """An OpenCV with GStreamer (the Jetson's): the CSI pipeline goes to the GStreamer backend; one that
    does not start is an error naming it."""
    from train_fou.vision.camera import open_source
    from train_fou.vision.errors import CameraError
    monkeypatch.setattr(cv2, 'getBuildInformation', lambda: BUILD_WITH_GSTREAMER)
    monkeypatch.setattr(cv2, 'VideoCapture', _Capture)
    monkeypatch.setattr(_Capture, 'opened', [])
    monkeypatch.setattr(_Capture, 'starts', starts)
    cfg = SourceConfig('gstreamer', width=640, height=480, fps=30)
    if starts:
        assert isinstance(open_source(cfg), _Capture)
    else:
        with pytest.raises(CameraError, match=r'cannot start GStreamer pipeline `nvarguscamerasrc sensor-id=0 !'):
            open_source(cfg)
    assert _Capture.opened == [(jetson_csi_pipeline(cfg), cv2.CAP_GSTREAMER)]


@pytest.mark.skipif(not HAVE_GSTREAMER, reason='this OpenCV has no GStreamer (the Jetson\'s system OpenCV has)')
def test_a_gstreamer_pipeline_publishes_frames_where_opencv_has_gstreamer(rigs):
    pipeline = ('videotestsrc num-buffers=300 ! video/x-raw, width=64, height=48, framerate=30/1 ! '
                'videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false')
    rig = rigs(source='gstreamer', pipeline=pipeline, retry_initial_s=0.05)
    assert wait_until(lambda: len(rig.images) >= 3, 20, rig.spin)
    assert (rig.images[-1].width, rig.images[-1].height, rig.images[-1].encoding) == (64, 48, 'bgr8')


def test_v4l2_devices_are_opened_by_index():
    from train_fou.vision.camera import v4l2_index
    assert v4l2_index('/dev/video3') == 3 and v4l2_index('0') == 0
    assert v4l2_index('/nonexistent/cam') == '/nonexistent/cam'


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_default_jetson_pipeline_uses_nvarguscamerasrc_at_the_configured_size():
    pipeline = jetson_csi_pipeline(SourceConfig('gstreamer', width=640, height=480, fps=30))
    assert pipeline.startswith('nvarguscamerasrc sensor-id=0 !') and 'width=640, height=480' in pipeline
    assert pipeline.endswith('appsink drop=true max-buffers=1 sync=false')


def test_calibration_errors_name_the_file(tmp_path):
    path = tmp_path / 'cal.yaml'
    path.write_text(CALIBRATION.replace('[50, 0, 32, 0, 50, 24, 0, 0, 1]', '[1, 2]'))
    with pytest.raises(CalibrationError, match=f'{path}: `camera_matrix.data` must have 9 numbers, has 2'):
        load_calibration(path)
    with pytest.raises(CalibrationError, match='nope.yaml: calibration file not found'):
        load_calibration(tmp_path / 'nope.yaml')
