"""Errors of train_fou.vision: one base class, converted at the boundary with a clear message."""
from __future__ import annotations

from train_fou.errors import TrainFouError


class VisionError(TrainFouError):
    """Base class of every error raised by train_fou.vision."""


class ModelNotFoundError(VisionError, FileNotFoundError):
    """A model, engine or metadata file that does not exist (the message names the path)."""


class ModelMetadataError(VisionError):
    """A model metadata file (models/<name>.json) that is unreadable or invalid."""


class BackendUnavailableError(VisionError):
    """An inference backend that cannot run here (library missing, no GPU, ...)."""


class EngineLoadError(VisionError):
    """A model or engine file that the backend cannot load (wrong TensorRT, wrong GPU, corrupt)."""


class ImageDecodeError(VisionError):
    """An image (raw buffer or JPEG) that cannot be turned into a BGR array."""


class BagError(VisionError):
    """A bag that is missing, corrupt, or holds no image topic."""


class BagNotFoundError(BagError, FileNotFoundError):
    """A bag path that does not exist."""


class CalibrationError(VisionError):
    """A camera calibration YAML that is missing or invalid."""


class CameraError(VisionError):
    """A camera source that cannot be opened or stopped delivering frames."""
