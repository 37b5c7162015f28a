"""A second look at red signs: a small classifier re-reads them at source resolution.

Why: the detector sees the frame letterboxed to its smaller input, where a
speed limit at reaction distance keeps digits only a few pixels tall
(docs/performance.md); the detector finds the sign but confuses 30 with 50, and
takes red discs and red-ringed distractors for signs. The refiner crops each
detection of a class it `applies_to` (the speed limits and stop) from the
*source* image (those classes' scores are first merged into one score per
anchor, `merge_group_scores`), scales the crop to a 32x32 square and lets a
tiny CNN name it: `speed_limit_30`, `speed_limit_50`, `stop`, or `other` (no
entry, no parking, a red disc on the wall). With `drop_p` a box is dropped only
when the classifier gives `other` and `danger` together at least that much, and
is otherwise named the likeliest re-read class, scored detector x its
probability: an unsure reading stays, ranked low, below the controller's
thresholds (dropping on the likeliest output lost real limits the classifier
was unsure of). With `alternative_p` the box is also reported as each other
re-read class given at least that probability: an unsure 30/50 is published
as both readings, each scored the same way, which the controller reads as an
unreadable limit (the lower one, SPEC section 5); since two readings of one box
cannot both reach 0.5, at the shipped thresholds only the likelier one can act.
Danger detections are never relabelled: missing the sign before the cliff is
the one error the train cannot afford. The classes in `verifies` (danger) are
only checked: such a detection is dropped when the classifier is at least
`veto_p` sure that it is not a sign (another brand's white warning triangle, a
blank triangle) and kept unchanged otherwise, so an unsure classifier never
removes a triangle. A red sign it recognises with probability >= `overrule_p`
removes a weaker danger detection on the same object (a 30 in front of a
yellow wall, which the detector also called danger).

The refiner is described by the detector's metadata file (``"refiner"``)::

    "refiner": {"model": "signs_refine.onnx",
                "names": ["speed_limit_30", "speed_limit_50", "stop", "danger", "other"],
                "applies_to": ["speed_limit_30", "speed_limit_50", "stop"], "input_size": 32, "margin": 0.15,
                "overrule_p": 0.95, "verifies": ["danger"], "veto_p": 0.9, "drop_p": 0.95,
                "alternative_p": 0.05}

`model` is relative to the metadata file; a name in `names` that is not a
detector class means "not a sign": the detection is dropped. The crop code is
shared with the training workspace, so training and inference cut the same
square. Pure NumPy/OpenCV; the backend is any `vision.backends` backend.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from train_fou.vision.errors import ModelMetadataError
from train_fou.vision.postprocess import _CLASS_OFFSET, Detection, _as_rows, nms

#: how much a re-read sign and another class's detection must overlap to be one object
OVERRULE_IOU = 0.5


@dataclass(frozen=True)
class RefinerSpec:
    """The `refiner` entry of a model's metadata."""

    model: pathlib.Path  # the classifier's ONNX file (absolute, resolved next to the metadata)
    names: tuple[str, ...]  # classifier outputs, in order
    applies_to: tuple[str, ...]  # detector labels whose detections are re-classified
    input_size: int = 32
    margin: float = 0.15  # context around the box, as a fraction of its longer side, each way
    #: a re-read sign at least this sure overrules a weaker detection of another class on the same
    #: object (IoU >= OVERRULE_IOU); None: never
    overrule_p: float | None = None
    #: detector labels whose detections are only checked: dropped when the classifier is at least
    #: `veto_p` sure they are not a sign, never relabelled
    verifies: tuple[str, ...] = ()
    veto_p: float | None = None
    #: a re-read detection is dropped only when the classifier gives at least this much probability
    #: to outputs that are not re-read classes (other, danger), and is otherwise named the likeliest
    #: re-read class; None: dropped whenever such an output is the likeliest one
    drop_p: float | None = None
    #: a kept re-read detection is also reported as each other re-read class the classifier gives at
    #: least this probability (scored detector x it): an unsure 30/50 is published as both readings;
    #: None: one reading only
    alternative_p: float | None = None


def parse_refiner(data: Any, path: str | pathlib.Path, detector_names: Sequence[str]) -> RefinerSpec:
    """Validate a metadata `refiner` mapping; errors name the file and the field."""
    path = pathlib.Path(path)

    def bad(message: str) -> ModelMetadataError:
        return ModelMetadataError(f'{path}: `refiner.{message}')

    if not isinstance(data, Mapping):
        raise ModelMetadataError(f'{path}: `refiner` must be an object, got {type(data).__name__}')
    model = data.get('model')
    if not isinstance(model, str) or not model:
        raise bad(f'model` must be the classifier file name, got {model!r}')
    names = data.get('names')
    if (not isinstance(names, (list, tuple)) or len(names) < 2
            or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise bad(f'names` must be at least two distinct labels, got {names!r}')
    applies_to = data.get('applies_to')
    if (not isinstance(applies_to, (list, tuple)) or not applies_to
            or not all(isinstance(n, str) and n in detector_names for n in applies_to)):
        raise bad(f'applies_to` must list detector classes ({", ".join(detector_names)}), got {applies_to!r}')
    size = data.get('input_size', 32)
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 512:
        raise bad(f'input_size` must be an integer in [8, 512], got {size!r}')
    margin = data.get('margin', 0.15)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin <= 1.0:
        raise bad(f'margin` must be a number in [0, 1], got {margin!r}')
    overrule = data.get('overrule_p')
    if overrule is not None and (isinstance(overrule, bool) or not isinstance(overrule, (int, float))
                                 or not 0.5 < overrule <= 1.0):
        raise bad(f'overrule_p` must be null or a number in (0.5, 1], got {overrule!r}')
    verifies = data.get('verifies', [])
    if (not isinstance(verifies, (list, tuple))
            or not all(isinstance(n, str) and n in detector_names and n not in applies_to for n in verifies)):
        raise bad(f'verifies` must list detector classes not in applies_to, got {verifies!r}')
    veto = data.get('veto_p')
    if verifies and (veto is None or isinstance(veto, bool) or not isinstance(veto, (int, float))
                     or not 0.5 < veto <= 1.0):
        raise bad(f'veto_p` must be a number in (0.5, 1] when `verifies` is set, got {veto!r}')
    if verifies and all(n in detector_names for n in names):
        raise bad(f'names` must hold a "not a sign" label for `verifies` to veto, got {names!r}')
    drop = data.get('drop_p')
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0.5 < drop <= 1.0):
        raise bad(f'drop_p` must be null or a number in (0.5, 1], got {drop!r}')
    alternative = data.get('alternative_p')
    if alternative is not None and (isinstance(alternative, bool) or not isinstance(alternative, (int, float))
                                    or not 0.0 < alternative <= 0.5):
        raise bad(f'alternative_p` must be null or a number in (0, 0.5], got {alternative!r}')
    return RefinerSpec(path.parent / model, tuple(names), tuple(applies_to), int(size), float(margin),
                       None if overrule is None else float(overrule), tuple(verifies),
                       float(veto) if verifies else None, None if drop is None else float(drop),
                       None if alternative is None else float(alternative))


def merge_group_scores(output: np.ndarray, group: Sequence[int], num_classes: int) -> np.ndarray:
    """YOLOv8 output with the scores of the classes in `group` merged into the first one (a new array).

    YOLOv8's class scores are independent sigmoids: a detector unsure between 30
    and 50 gives ~0.45 to both, and each alone stays under the policy's 0.5.
    For the detector the question becomes "one of the refined signs or not", so
    the group's scores are combined per anchor by noisy-OR, 1 - prod(1 - s),
    into the first class of the group, the others zeroed; the refiner then
    names the class. Returned as (4+nc) x N.
    """
    rows = _as_rows(output, num_classes)
    merged = np.array(rows, dtype=np.float32)  # small: (4+nc) x N floats
    first, rest = 4 + group[0], [4 + g for g in group[1:]]
    miss = 1.0 - merged[first]
    for r in rest:
        miss *= 1.0 - merged[r]
        merged[r] = 0.0
    merged[first] = 1.0 - miss
    return merged


def crop_square(image_bgr: np.ndarray, box: Sequence[float], size: int, margin: float) -> np.ndarray:
    """The size x size BGR crop centred on `box` (x1, y1, x2, y2), its longer side plus `margin`.

    Parts outside the image are filled by replicating the border, so a sign at
    the frame's edge keeps its shape. Shrinking uses area interpolation (what a
    smaller camera would see), enlarging is linear.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    n = max(int(round(side)), 1)
    height, width = image_bgr.shape[:2]
    sx1, sy1 = max(left, 0), max(top, 0)
    sx2, sy2 = min(left + n, width), min(top + n, height)
    if sx2 <= sx1 or sy2 <= sy1:  # entirely outside: nothing to read
        return np.zeros((size, size, 3), np.uint8)
    patch = image_bgr[sy1:sy2, sx1:sx2]
    if patch.shape[:2] == (1, 1):  # one pixel: OpenCV 4.5 (JetPack 6's apt cv2) rejects a 1x1x3 image
        return np.broadcast_to(patch, (size, size, patch.shape[2])).copy()
    if (sx1, sy1, sx2, sy2) != (left, top, left + n, top + n):
        patch = cv2.copyMakeBorder(patch, sy1 - top, top + n - sy2, sx1 - left, left + n - sx2,
                                   cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crops_to_tensor(crops: Sequence[np.ndarray]) -> np.ndarray:
    """BGR uint8 crops -> Nx3xSxS float32 RGB in 0..1 (the classifier's input)."""
    batch = np.stack(crops)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1.0 / 255.0)


def _iou(a: Detection, b: Detection) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


class Refiner:
    """Re-classifies the detector's detections of the `applies_to` classes with the crop classifier."""

    def __init__(self, backend, spec: RefinerSpec, detector_names: Sequence[str], iou_threshold: float = 0.45):
        if backend.input_hw is not None and tuple(backend.input_hw) != (spec.input_size, spec.input_size):
            raise ModelMetadataError(
                f'{spec.model}: classifier input is {backend.input_hw[0]}x{backend.input_hw[1]} but the '
                f'metadata says input_size {spec.input_size}')
        self.backend = backend
        self.spec = spec
        self.iou_threshold = iou_threshold
        self._applies = frozenset(spec.applies_to)
        self._verifies = frozenset(spec.verifies)
        index = {name: i for i, name in enumerate(detector_names)}
        #: detector class ids whose scores are merged before decoding (see merge_group_scores)
        self.group = tuple(index[name] for name in spec.applies_to)
        # classifier output -> detector class id for the re-read classes, None: not one of them (dropped)
        self._class_of = [index[name] if name in self._applies else None for name in spec.names]
        #: classifier outputs that mean "not a sign" (only these veto a verified detection)
        self._not_a_sign = np.array([name not in index for name in spec.names])
        #: classifier outputs that are re-read classes (a re-read detection is named one of these)
        self._rereads = np.array([c is not None for c in self._class_of])

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, N x len(names), one backend call per crop (fixed batch 1 models)."""
        tensor = crops_to_tensor(crops)
        out = np.empty((len(crops), len(self.spec.names)), np.float32)
        for i in range(len(crops)):
            out[i] = np.asarray(self.backend.infer(tensor[i:i + 1]), np.float32).reshape(-1)
        return out

    def refine(self, image_bgr: np.ndarray, detections: list[Detection]) -> list[Detection]:
        """Detections with the refined classes' labels decided by the classifier, best score first.

        A re-read detection keeps its box and gets score = detector score x the
        probability of the class it is named. Without `drop_p` it is dropped when
        the likeliest output is not a re-read class (`other`, or a triangle for a
        limit box); with it, only when those outputs together reach `drop_p`, and
        it is named the likeliest re-read class. `alternative_p` adds the other
        readings (module docstring). Boxes that now share a class go through NMS
        again (the detector may have reported one sign as both 30 and 50). With
        `overrule_p`, a sign the classifier is that sure of also removes a
        lower-scored detection of another class on the same object; a danger
        triangle itself is never relabelled. A detection of a `verifies` class is
        dropped only when the classifier names a not-a-sign output with p >=
        `veto_p`, and kept as it was otherwise.
        """
        chosen = [i for i, d in enumerate(detections) if d.label in self._applies]
        checked = [i for i, d in enumerate(detections) if d.label in self._verifies]
        if not chosen and not checked:
            return detections
        crops = [crop_square(image_bgr, detections[i][2:6], self.spec.input_size, self.spec.margin)
                 for i in chosen + checked]
        probs = self.classify(crops)
        vetoed = {i for i, p in zip(checked, probs[len(chosen):])
                  if self._not_a_sign[int(p.argmax())] and p.max() >= self.spec.veto_p}
        kept = [d for i, d in enumerate(detections) if d.label not in self._applies and i not in vetoed]
        refined: list[Detection] = []
        sure: list[Detection] = []  # re-read with p >= overrule_p
        for i, p in zip(chosen, probs):
            if self.spec.drop_p is None:
                k = int(p.argmax())
                if self._class_of[k] is None:
                    continue
            else:
                if float(p[~self._rereads].sum()) >= self.spec.drop_p:
                    continue
                k = int(np.where(self._rereads, p, -1.0).argmax())
            class_id = self._class_of[k]
            d = detections[i]
            refined.append(d._replace(class_id=class_id, label=self.spec.names[k], score=float(d.score * p[k])))
            if self.spec.overrule_p is not None and p[k] >= self.spec.overrule_p:
                sure.append(refined[-1])
            if self.spec.alternative_p is not None:
                refined.extend(d._replace(class_id=self._class_of[j], label=self.spec.names[j],
                                          score=float(d.score * p[j]))
                               for j in np.flatnonzero(self._rereads) if j != k and p[j] >= self.spec.alternative_p)
        if len(refined) > 1:
            boxes = np.array([d[2:6] for d in refined], np.float32)
            boxes += np.array([d.class_id for d in refined], np.float32)[:, None] * _CLASS_OFFSET  # class-aware
            scores = np.array([d.score for d in refined], np.float32)
            refined = [refined[i] for i in nms(boxes, scores, self.iou_threshold)]
        if sure and kept:
            kept = [d for d in kept if not any(s.score > d.score and _iou(s, d) >= OVERRULE_IOU for s in sure)]
        return sorted(kept + refined, key=lambda d: -d.score)

    def close(self) -> None:
        self.backend.close()
