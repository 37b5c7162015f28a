"""mAP50 / mAP50-95 per class and a confusion matrix, for any ONNX model on any YOLO dataset split.

Detections come from the project's own detector code path (train_fou.vision:
the same letterbox, backend and decode_yolov8 as the detector node), so the
numbers describe what the robot runs, not what ultralytics' validator sees.
Metrics follow COCO: greedy matching of score-sorted detections to the
best-overlapping unmatched ground truth of the same class, average precision
by 101-point interpolation of the precision envelope, mAP50-95 over IoU
thresholds 0.50:0.05:0.95. Pure numpy (plus OpenCV to read images): runs in
the runtime venv, no torch.
"""
from __future__ import annotations

import json
import pathlib
from typing import NamedTuple
from collections.abc import Iterable, Sequence

import numpy as np

from train_fou.errors import TrainFouError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


class EvaluationError(TrainFouError, RuntimeError):
    """A model or dataset that cannot be evaluated (the message says which and why)."""


class Pred(NamedTuple):
    class_id: int
    score: float
    box: tuple[float, float, float, float]


class Truth(NamedTuple):
    class_id: int
    box: tuple[float, float, float, float]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of Nx4 and Mx4 boxes (x1, y1, x2, y2)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def average_precision(tp: np.ndarray, scores: np.ndarray, n_truth: int) -> float:
    """COCO 101-point AP of one class at one IoU threshold; NaN when the class has no ground truth."""
    if n_truth == 0:
        return float('nan')
    tp = np.asarray(tp)
    keep = tp >= 0                      # -1: ignored detections
    tp, scores = tp[keep], np.asarray(scores)[keep]
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind='stable')
    tp = np.asarray(tp, np.float64)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - tp)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side='left')
    sampled = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(sampled.mean())


def match_image(preds: Sequence[Pred], truths: Sequence[Truth], min_height_px: float = 0.0) -> np.ndarray:
    """len(preds) x len(IOU_THRESHOLDS): 1 true positive, 0 false positive, -1 ignored, per IoU threshold.

    Ground truth lower than `min_height_px` is ignored (COCO's area ranges):
    a detection that matches only such a box, or that is itself that low and
    matches nothing, counts neither way.
    """
    tp = np.zeros((len(preds), len(IOU_THRESHOLDS)), np.int8)
    low_pred = np.array([p.box[3] - p.box[1] < min_height_px for p in preds], bool)
    if not preds:
        return tp
    if not truths:
        tp[low_pred] = -1
        return tp
    ignore = np.array([t.box[3] - t.box[1] < min_height_px for t in truths], bool)
    iou = box_iou([p.box for p in preds], [t.box for t in truths])
    same = np.array([[p.class_id == t.class_id for t in truths] for p in preds])
    iou = np.where(same, iou, 0.0)
    order = np.argsort(-np.array([p.score for p in preds]), kind='stable')
    for k, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(truths), bool)
        for i in order:
            cand = np.where(taken | ignore, -1.0, iou[i])
            j = int(cand.argmax())
            if cand[j] >= thr:
                taken[j] = True
                tp[i, k] = 1
            elif (ignore.any() and np.where(ignore, iou[i], -1.0).max() >= thr) or low_pred[i]:
                tp[i, k] = -1
    return tp


def compute_metrics(images: Iterable[tuple[Sequence[Pred], Sequence[Truth]]], names: Sequence[str],
                    min_height_px: float = 0.0) -> dict:
    """Per-class AP50 / AP50-95 and counts over (predictions, ground truth) pairs, one pair per image.

    With `min_height_px`, boxes lower than that are ignored (see match_image).
    """
    nc = len(names)
    scores: list[list[float]] = [[] for _ in range(nc)]
    tps: list[list[np.ndarray]] = [[] for _ in range(nc)]
    n_truth = np.zeros(nc, int)
    for preds, truths in images:
        for t in truths:
            n_truth[t.class_id] += t.box[3] - t.box[1] >= min_height_px
        tp = match_image(preds, truths, min_height_px)
        for p, row in zip(preds, tp):
            scores[p.class_id].append(p.score)
            tps[p.class_id].append(row)
    per_class = {}
    for c, name in enumerate(names):
        tp = np.array(tps[c], np.int8).reshape(-1, len(IOU_THRESHOLDS))
        aps = [average_precision(tp[:, k], scores[c], int(n_truth[c])) for k in range(len(IOU_THRESHOLDS))]
        per_class[name] = {'instances': int(n_truth[c]), 'detections': len(scores[c]),
                           'mAP50': aps[0], 'mAP50-95': float(np.mean(aps)) if n_truth[c] else float('nan')}
    present = [v for v in per_class.values() if v['instances']]
    return {
        'per_class': per_class,
        'mAP50': float(np.mean([v['mAP50'] for v in present])) if present else float('nan'),
        'mAP50-95': float(np.mean([v['mAP50-95'] for v in present])) if present else float('nan'),
    }


def confusion_matrix(images: Iterable[tuple[Sequence[Pred], Sequence[Truth]]], nc: int,
                     conf_threshold: float = 0.25, iou_threshold: float = 0.5) -> np.ndarray:
    """(nc+1) x (nc+1) counts, rows = predicted class (last: missed), columns = true class (last: background).

    Detections below conf_threshold are ignored; each detection is matched to the
    unmatched ground truth it overlaps most (any class) with IoU >= iou_threshold.
    """
    m = np.zeros((nc + 1, nc + 1), int)
    for preds, truths in images:
        preds = sorted((p for p in preds if p.score >= conf_threshold), key=lambda p: -p.score)
        taken = np.zeros(len(truths), bool)
        iou = box_iou([p.box for p in preds], [t.box for t in truths]) if preds and truths else None
        for i, p in enumerate(preds):
            if iou is not None:
                cand = np.where(taken, -1.0, iou[i])
                j = int(cand.argmax())
                if cand[j] >= iou_threshold:
                    taken[j] = True
                    m[p.class_id, truths[j].class_id] += 1
                    continue
            m[p.class_id, nc] += 1
        for j, t in enumerate(truths):
            if not taken[j]:
                m[nc, t.class_id] += 1
    return m


def save_confusion_png(matrix: np.ndarray, names: Sequence[str], path: pathlib.Path, title: str = '') -> None:
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    labels = list(names) + ['background']
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
    norm = matrix / np.maximum(matrix.sum(axis=0, keepdims=True), 1)
    ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha='center', va='center',
                    color='white' if norm[i, j] > 0.5 else 'black', fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha='right')
    ax.set_yticks(range(len(labels)), [*names, 'missed'])
    ax.set_xlabel('true class')
    ax.set_ylabel('predicted class')
    ax.set_title(title or 'confusion matrix (counts; colour = share of the true class)', fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def evaluate_model(model: pathlib.Path, data: pathlib.Path, split: str = 'test', out_dir: pathlib.Path | None = None,
                   conf_threshold: float = 0.001, backend: str = 'onnxruntime-cpu',
                   max_images: int | None = None, refine: bool = True) -> dict:
    """Run the model through train_fou.vision on a YOLO split; report metrics (and files under out_dir).

    `refine`: use the speed-limit refiner the metadata names, as the node does (False: the detector alone).
    """
    import cv2  # noqa: PLC0415
    from training.dataset import label_path_for, read_labels, split_images  # noqa: PLC0415
    from train_fou.vision.detector import open_detector  # noqa: PLC0415
    from train_fou.vision.errors import VisionError  # noqa: PLC0415

    images = split_images(data, split)[:max_images]
    if not images:
        raise EvaluationError(f'{data}: no images in images/{split}')
    try:
        detector, choice = open_detector(model, backend=backend, conf_threshold=conf_threshold, refine=refine)
    except VisionError as err:
        raise EvaluationError(f'cannot open {model}: {err}') from err
    names = list(detector.metadata.names)
    pairs = []
    timings = []
    try:
        for path in images:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise EvaluationError(f'{path}: unreadable image')
            h, w = bgr.shape[:2]
            truths = [Truth(c, b) for c, b in read_labels(label_path_for(path), w, h)]
            bad = [t.class_id for t in truths if not 0 <= t.class_id < len(names)]
            if bad:
                raise EvaluationError(f'{label_path_for(path)}: class ids {bad} outside the model\'s {len(names)}')
            result = detector.detect(bgr)
            timings.append((result.preprocess_ms, result.inference_ms, result.postprocess_ms))
            preds = [Pred(d.class_id, d.score, (d.x1, d.y1, d.x2, d.y2)) for d in result.detections]
            pairs.append((preds, truths))
    finally:
        detector.close()
    report = compute_metrics(pairs, names)
    report['signs_at_least_20px'] = {
        'about': 'the same, ignoring boxes under 20 px tall (smaller than a sign at reaction distance)',
        **compute_metrics(pairs, names, min_height_px=20.0)}
    deploy_conf = detector.metadata.conf_threshold
    matrix = confusion_matrix(pairs, len(names), conf_threshold=deploy_conf)
    t = np.array(timings)
    report.update({
        'model': str(model), 'data': str(data), 'split': split, 'images': len(images),
        'backend': choice.backend.name, 'model_precision': detector.precision,
        'refiner': detector.refiner.spec.model.name if detector.refiner is not None else None,
        'nms_iou': detector.iou_threshold, 'score_threshold': conf_threshold,
        'confusion_matrix': {'conf_threshold': deploy_conf, 'iou_threshold': 0.5, 'rows': 'predicted (+missed)',
                             'columns': 'true (+background)', 'counts': matrix.tolist()},
        'latency_ms_p50': {'preprocess': float(np.median(t[:, 0])), 'inference': float(np.median(t[:, 1])),
                           'postprocess': float(np.median(t[:, 2]))},
    })
    report = finite_or_none(report)
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_confusion_png(matrix, names, out_dir / 'confusion_matrix.png',
                           f'{pathlib.Path(model).name} on {split} ({len(images)} images), conf {deploy_conf}, IoU 0.5')
        (out_dir / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
        report['files'] = [str(out_dir / 'report.json'), str(out_dir / 'confusion_matrix.png')]
    return report


def finite_or_none(value):
    """NaN (a class without ground truth) and infinities -> None, in nested dicts and lists, so
    reports are strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def _fmt(v) -> str:
    return '-' if v is None else f'{v:.3f}'


def format_table(report: dict) -> str:
    """Markdown table of the per-class numbers (for the model card)."""
    lines = ['| class | instances | mAP50 | mAP50-95 |', '|---|---:|---:|---:|']
    for name, v in report['per_class'].items():
        lines.append(f'| {name} | {v["instances"]} | {_fmt(v["mAP50"])} | {_fmt(v["mAP50-95"])} |')
    lines.append(f'| **all** | {sum(v["instances"] for v in report["per_class"].values())} | '
                 f'**{_fmt(report["mAP50"])}** | **{_fmt(report["mAP50-95"])}** |')
    return '\n'.join(lines)
