"""Post-processing of YOLOv8 detection outputs: confidence filter, class-aware NMS,
boxes mapped back from the letterboxed network input to source-image pixels.

The YOLOv8 export has one output of shape 1x(4+nc)xN: rows cx, cy, w, h in
network-input pixels, then one score row per class (no objectness).
"""
from __future__ import annotations

from typing import NamedTuple
from collections.abc import Sequence

import numpy as np

from train_fou.vision.preprocess import LetterboxInfo

#: Candidates kept before NMS, and detections after it (ultralytics' defaults).
MAX_CANDIDATES = 30000
MAX_DETECTIONS = 300
#: Offset between classes so that one NMS pass never suppresses across classes.
_CLASS_OFFSET = 16384.0


class Detection(NamedTuple):
    """One detection, box corners in source-image pixels (clipped to the image)."""

    class_id: int
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ''

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int = MAX_DETECTIONS) -> np.ndarray:
    """Greedy non-maximum suppression; boxes Nx4 (x1, y1, x2, y2). Returns kept indices, best first."""
    order = np.argsort(-scores, kind='stable')
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def unletterbox(boxes_xyxy: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """Map Nx4 boxes from network-input pixels to source pixels, clipped to the image (new array)."""
    out = np.empty_like(boxes_xyxy, dtype=np.float32)
    out[:, 0::2] = (boxes_xyxy[:, 0::2] - info.pad_x) / info.scale
    out[:, 1::2] = (boxes_xyxy[:, 1::2] - info.pad_y) / info.scale
    np.clip(out[:, 0::2], 0, info.src_width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, info.src_height, out=out[:, 1::2])
    return out


def _as_rows(output: np.ndarray, num_classes: int) -> np.ndarray:
    """The (4+nc) x N view of an output given as 1x(4+nc)xN, (4+nc)xN or 1xNx(4+nc)."""
    array = np.asarray(output)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise ValueError(f'expected batch size 1, got output shape {array.shape}')
        array = array[0]
    rows = 4 + num_classes
    if array.ndim != 2 or rows not in array.shape:
        raise ValueError(f'output shape {np.shape(output)} does not fit YOLOv8 with {num_classes} '
                         f'classes: expected 1x{rows}xN')
    return array if array.shape[0] == rows else array.T


def decode_yolov8(output: np.ndarray, info: LetterboxInfo, conf_threshold: float, iou_threshold: float,
                  num_classes: int, names: Sequence[str] = (), max_detections: int = MAX_DETECTIONS,
                  ) -> list[Detection]:
    """YOLOv8 output (1x(4+nc)xN) -> detections in source pixels, best score first.

    Confidence filter on the best class score of each anchor, class-aware NMS,
    boxes unletterboxed and clipped to the source image; boxes that collapse to
    zero area after clipping are dropped. `names` fills Detection.label.
    """
    rows = _as_rows(output, num_classes)
    best = rows[4:].max(axis=0)  # a contiguous reduction; argmax only on the few survivors
    candidates = np.flatnonzero(best >= conf_threshold)
    if candidates.size == 0:
        return []
    if candidates.size > MAX_CANDIDATES:
        candidates = candidates[np.argsort(-best[candidates])[:MAX_CANDIDATES]]
    kept = rows[:, candidates].astype(np.float32)  # (4+nc) x k, small
    classes = kept[4:].argmax(axis=0)
    scores = best[candidates].astype(np.float32)
    cx, cy, half_w, half_h = kept[0], kept[1], kept[2] / 2, kept[3] / 2
    boxes = np.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), axis=1)
    shifted = boxes + (classes.astype(np.float32) * _CLASS_OFFSET)[:, None]
    keep = nms(shifted, scores, iou_threshold, max_detections)
    source = unletterbox(boxes[keep], info)
    result = []
    for (x1, y1, x2, y2), score, cls in zip(source.tolist(), scores[keep].tolist(), classes[keep].tolist()):
        if x2 <= x1 or y2 <= y1:
            continue
        label = names[cls] if cls < len(names) else str(cls)
        result.append(Detection(int(cls), float(score), x1, y1, x2, y2, label))
    return result
