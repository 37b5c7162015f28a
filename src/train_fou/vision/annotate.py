"""Draw detections on a BGR image (signs/annotated, reports)."""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from train_fou.vision.postprocess import Detection

#: BGR colour per class index, cycled.
PALETTE = ((0, 0, 255), (0, 165, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0))


def draw_detections(image_bgr: np.ndarray, detections: Iterable[Detection], copy: bool = True) -> np.ndarray:
    """Boxes and `label score` captions on the image (a copy unless copy=False)."""
    canvas = image_bgr.copy() if copy or not image_bgr.flags.writeable else image_bgr
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    for det in detections:
        colour = PALETTE[det.class_id % len(PALETTE)]
        p1 = (int(round(det.x1)), int(round(det.y1)))
        p2 = (int(round(det.x2)), int(round(det.y2)))
        cv2.rectangle(canvas, p1, p2, colour, thickness, cv2.LINE_AA)
        caption = f'{det.label or det.class_id} {det.score:.2f}'
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, thickness)
        y = p1[1] - 2 if p1[1] - th - base >= 0 else p1[1] + th + 2
        cv2.rectangle(canvas, (p1[0], y - th - base), (p1[0] + tw, y + base // 2), colour, cv2.FILLED)
        cv2.putText(canvas, caption, (p1[0], y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
