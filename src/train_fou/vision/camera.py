"""Camera sources (V4L2, GStreamer, video file) over OpenCV, retry backoff, calibration files.

No ROS here: the camera node asks `open_source` for a capture, reads frames
and, when a source fails, waits `Backoff.next_delay()` before opening it again.
"""
from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass
from collections.abc import Callable

import cv2
import yaml

from train_fou.vision.errors import CalibrationError, CameraError


@dataclass(frozen=True)
class SourceConfig:
    kind: str  # v4l2, gstreamer, file
    device: str = '/dev/video0'
    pipeline: str = ''
    file_path: str = ''
    width: int = 640
    height: int = 480
    fps: float = 30.0
    pixel_format: str = 'MJPG'  # V4L2 FOURCC; empty: driver default
    sensor_id: int = 0  # nvarguscamerasrc sensor-id for the default Jetson pipeline


def jetson_csi_pipeline(cfg: SourceConfig) -> str:
    """The Jetson CSI camera through nvarguscamerasrc, scaled on the VIC, BGR into appsink."""
    fps = max(1, round(cfg.fps))
    return (f'nvarguscamerasrc sensor-id={cfg.sensor_id} ! '
            f'video/x-raw(memory:NVMM), width=1280, height=720, framerate={fps}/1 ! '
            f'nvvidconv ! video/x-raw, width={cfg.width}, height={cfg.height}, format=BGRx ! '
            'videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false')


def _gstreamer_enabled() -> bool:
    info = cv2.getBuildInformation()
    match = re.search(r'GStreamer:\s+(\S+)', info)
    return bool(match) and match.group(1).upper() != 'NO'


def v4l2_index(device: str) -> int | str:
    """'/dev/video2', '2' or a /dev/v4l/by-id/... link -> 2; OpenCV's V4L2 backend opens indices."""
    if device.isdigit():
        return int(device)
    match = re.fullmatch(r'/dev/video(\d+)', os.path.realpath(device))
    return int(match.group(1)) if match else device


def _quiet_opencv() -> None:
    """OpenCV logs its own warning on every failed open; the node reports one clear error instead."""
    logging = getattr(getattr(cv2, 'utils', None), 'logging', None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def _open_v4l2(cfg: SourceConfig):
    if not os.path.exists(cfg.device) and not cfg.device.isdigit():
        raise CameraError(f'V4L2 device {cfg.device} does not exist')
    cap = cv2.VideoCapture(v4l2_index(cfg.device), cv2.CAP_V4L2)
    if not cap.isOpened():
        raise CameraError(f'cannot open V4L2 device {cfg.device}')
    if cfg.pixel_format:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.pixel_format[:4].ljust(4)))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
    cap.set(cv2.CAP_PROP_FPS, cfg.fps)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
    return cap


def _open_gstreamer(cfg: SourceConfig):
    if not _gstreamer_enabled():
        raise CameraError('this OpenCV build has no GStreamer support (use the system OpenCV on the Jetson)')
    pipeline = cfg.pipeline or jetson_csi_pipeline(cfg)
    cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    if not cap.isOpened():
        raise CameraError(f'cannot start GStreamer pipeline `{pipeline}`')
    return cap


def _open_file(cfg: SourceConfig):
    path = pathlib.Path(cfg.file_path)
    if not path.is_file():
        raise CameraError(f'{path}: video file not found')
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CameraError(f'{path}: cannot decode video file')
    return cap


#: Source kind -> opener. Plugin table, not an if-chain.
SOURCES: dict[str, Callable[[SourceConfig], object]] = {
    'v4l2': _open_v4l2,
    'gstreamer': _open_gstreamer,
    'file': _open_file,
}


def open_source(cfg: SourceConfig):
    """An opened cv2.VideoCapture for `cfg`, or CameraError saying what failed."""
    try:
        opener = SOURCES[cfg.kind]
    except KeyError:
        raise CameraError(f'unknown camera source {cfg.kind!r}; choose one of {", ".join(SOURCES)}') from None
    _quiet_opencv()
    return opener(cfg)


def source_fps(cap, fallback: float) -> float:
    """The frame rate a video file declares, else `fallback`."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return fps if fps and 0 < fps <= 1000 else fallback


class Backoff:
    """Retry delays: initial, doubled after each failure, capped; reset() after a success."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 10.0, factor: float = 2.0):
        self.initial_s, self.max_s, self.factor = initial_s, max_s, factor
        self._next = initial_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.max_s, self._next * self.factor)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self._next = self.initial_s
        self.failures = 0


@dataclass(frozen=True)
class Calibration:
    """A camera_calibration / camera_info_manager YAML file's contents."""

    width: int
    height: int
    camera_name: str
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]  # 3x3 row-major
    r: tuple[float, ...]  # 3x3
    p: tuple[float, ...]  # 3x4


def _matrix(path, data, key, size, required=True):
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict) or 'data' not in value:
        raise CalibrationError(f'{path}: `{key}` must be a mapping with rows, cols and data')
    numbers = value['data']
    if not isinstance(numbers, list) or not all(isinstance(v, (int, float)) for v in numbers):
        raise CalibrationError(f'{path}: `{key}.data` must be a list of numbers')
    if size is not None and len(numbers) != size:
        raise CalibrationError(f'{path}: `{key}.data` must have {size} numbers, has {len(numbers)}')
    return tuple(float(v) for v in numbers)


def load_calibration(path: str | pathlib.Path) -> Calibration:
    """Read a ROS camera calibration YAML (as written by camera_calibration); errors name the file."""
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f'{path}: calibration file not found') from None
    except (OSError, yaml.YAMLError) as err:
        raise CalibrationError(f'{path}: cannot read calibration: {err}') from err
    if not isinstance(data, dict):
        raise CalibrationError(f'{path}: expected a mapping')
    width, height = data.get('image_width'), data.get('image_height')
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise CalibrationError(f'{path}: image_width and image_height must be positive integers')
    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    k = _matrix(path, data, 'camera_matrix', 9)
    p = _matrix(path, data, 'projection_matrix', 12, required=False) or (
        k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0)
    return Calibration(width, height, str(data.get('camera_name', '')),
                       str(data.get('distortion_model', 'plumb_bob')),
                       _matrix(path, data, 'distortion_coefficients', None, required=False) or (),
                       k, _matrix(path, data, 'rectification_matrix', 9, required=False) or identity, p)
