"""Sign detection without ROS: pre-processing, backends, post-processing, drawing.

Shared by the detector node, the CLI and the training workspace's evaluation::

    from train_fou.vision import letterbox, decode_yolov8, load_metadata
    tensor, info = letterbox(image_bgr, meta.imgsz)          # 1x3xHxW float32 RGB 0..1
    detections = decode_yolov8(output, info, 0.25, 0.45, meta.num_classes, meta.names)

Boxes come back in source-image pixels, clipped to the image.
"""
from train_fou.vision.errors import (BackendUnavailableError, BagError, EngineLoadError, ImageDecodeError,
                                     ModelMetadataError, ModelNotFoundError, VisionError)
from train_fou.vision.preprocess import Letterboxer, LetterboxInfo, letterbox
from train_fou.vision.metadata import ModelMetadata, load_metadata, metadata_path_for, parse_metadata
from train_fou.vision.postprocess import Detection, decode_yolov8, nms, unletterbox

__all__ = [
    'BackendUnavailableError', 'BagError', 'Detection', 'EngineLoadError', 'ImageDecodeError',
    'Letterboxer', 'LetterboxInfo', 'ModelMetadata', 'ModelMetadataError', 'ModelNotFoundError',
    'VisionError', 'decode_yolov8', 'letterbox', 'load_metadata', 'metadata_path_for', 'nms',
    'parse_metadata', 'unletterbox',
]
