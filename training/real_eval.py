"""The detector on real labelled photos: a Label Studio export as it is, through the node's code path.

`python -m training eval-real MODEL --export EXPORT.json --images DIR` reads the export unchanged
(full JSON or JSON-MIN; image URLs resolved by file name in DIR, since an export names the
storage it was labelled from), runs every photo through `train_fou.vision.open_detector` (the
detector node's letterbox, backend, decoding and refiner) and reports:

- AP50 per label class and mAP50 over the label classes (training/evaluate.py's matching and
  101-point AP, score threshold 0.001);
- precision and recall at the speed controller's `min_score` per sign (what makes the train act)
  and at the model's deployed score threshold (what the detector node publishes);
- `report.json` and a contact sheet of every photo with its ground truth and detections.

The labels may be coarser than the model's classes (one `SpeedLimit` label for 30 and 50): a class
map sends each model class to a label class or to None. Predictions of a model class the labels do
not cover (STOP, when stop signs were not labelled) are dropped before matching: they are neither
true nor false positives. Predictions of model classes that share a label class are merged by NMS
within it, so a sign read as both 30 and 50 counts once.

Photos: the labels fit the picture as a viewer shows it, so the EXIF orientation is applied to the
pixels (PIL's `exif_transpose`, as browsers and Label Studio show it) before anything else, and
the size the export was labelled at must be the size that shows. Pure functions plus the one
`evaluate_real` that reads files and runs the model; no torch.
"""
from __future__ import annotations

import json
import pathlib
from typing import NamedTuple
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from training.dataset import (
    Box, DatasetError, find_image, labelstudio_annotated, labelstudio_box, labelstudio_label, labelstudio_rectangles,
    labelstudio_tasks,
)
from training.evaluate import EvaluationError, Pred, Truth, compute_metrics, finite_or_none, match_image

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CONTROLLER_CONFIG = ROOT / 'config' / 'speed_controller.yaml'

#: The project's model classes -> the labels of its real photos (`../shared/real_dev`): one label for
#: both speed limits, stop signs not labelled.
DEFAULT_CLASS_MAP: dict[str, str | None] = {
    'speed_limit_30': 'SpeedLimit', 'speed_limit_50': 'SpeedLimit', 'danger': 'DangerAhead', 'stop': None,
}

EXIF_ORIENTATION = 0x0112
#: IoU at which a detection matches a label for precision and recall (AP50's).
MATCH_IOU = 0.5


class Photo(NamedTuple):
    """One labelled photo: its file, its size as shown (after EXIF orientation) and its labelled boxes."""

    path: pathlib.Path
    width: int
    height: int
    orientation: int
    boxes: tuple[tuple[str, Box], ...]   # (label, (x1, y1, x2, y2) pixels of the shown image)


# --- reading the export and the photos

def shown_size(path: pathlib.Path) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) of an image as a viewer shows it, without decoding the pixels.

    Orientations 5 to 8 turn the picture by a quarter: width and height swap.
    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f'{path}: not a readable image: {err}') from err
    return (height, width, orientation) if orientation in (5, 6, 7, 8) else (width, height, orientation)


def read_photo(path: pathlib.Path) -> np.ndarray:
    """BGR uint8 pixels of an image as a viewer shows it (EXIF orientation applied), as the detector takes them."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: PLC0415
    try:
        with Image.open(path) as im:
            rgb = ImageOps.exif_transpose(im).convert('RGB')
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f'{path}: not a readable image: {err}') from err
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def read_export(export: pathlib.Path, images_dir: pathlib.Path) -> tuple[list[Photo], int]:
    """(labelled photos, tasks skipped) of a Label Studio export; boxes in pixels of the shown images.

    Tasks without an annotation that was not cancelled are skipped (nobody labelled them: their
    photos say nothing). Each rectangle's `original_width/height`, where the export has it, must
    equal the photo's shown size: a photo turned by EXIF but labelled unturned (or another file of
    the same name) would otherwise be judged against boxes that do not fit it.
    """
    export, images_dir = pathlib.Path(export), pathlib.Path(images_dir)
    photos, skipped = [], 0
    for n, task in enumerate(labelstudio_tasks(export)):
        if not labelstudio_annotated(task):
            skipped += 1
            continue
        ref, rects = labelstudio_rectangles(task)
        if not ref:
            raise DatasetError(f'{export}: task {n} names no image')
        path = find_image(ref, images_dir)
        width, height, orientation = shown_size(path)
        where = f'{export}: task {n} ({path.name})'
        boxes = []
        for r in rects:
            label = labelstudio_label(r, where)
            size = (r.get('original_width'), r.get('original_height'))
            if None not in size and (int(size[0]), int(size[1])) != (width, height):
                turned = f' (EXIF orientation {orientation} applied)' if orientation != 1 else ''
                raise DatasetError(f'{where}: labelled on a {size[0]}x{size[1]} image, but the file shows '
                                   f'{width}x{height}{turned}: the boxes would not fit it')
            boxes.append((label, labelstudio_box(r, width, height, where)))
        photos.append(Photo(path, width, height, orientation, tuple(boxes)))
    if not photos:
        raise DatasetError(f'{export}: no labelled task ({skipped} without an annotation)')
    return photos, skipped


# --- classes

def resolve_class_map(model_names: Sequence[str], mapping: Mapping[str, str | None],
                      labels: Collection[str]) -> dict[str, str | None]:
    """Every model class -> its label class, or None (ignored: dropped before matching).

    A model class the mapping does not name keeps its name if the export uses that name as a label,
    and is ignored otherwise. A mapping entry for a class the model does not have is an error:
    it is a typo, and would leave the class it meant silently ignored.
    """
    unknown = [k for k in mapping if k not in model_names]
    if unknown:
        raise EvaluationError(f'class map names {", ".join(map(repr, unknown))}, not a class of the model '
                              f'({", ".join(model_names)})')
    return {name: mapping[name] if name in mapping else (name if name in labels else None) for name in model_names}


def label_classes(class_map: Mapping[str, str | None]) -> list[str]:
    """The label classes evaluated: the map's targets, in the order of the model classes that reach them."""
    return list(dict.fromkeys(v for v in class_map.values() if v is not None))


def to_label_classes(preds: Sequence[Pred], model_to_label: Sequence[int | None], iou_threshold: float,
                     min_scores: Sequence[float] | None = None) -> list[Pred]:
    """Model-class predictions -> label-class predictions, best first.

    Predictions of ignored classes (None), and with `min_scores` those below their model class's
    threshold, are dropped first; what is left is merged by NMS within each label class
    (a 30 and a 50 on one sign become one SpeedLimit, with the higher score).
    """
    from train_fou.vision.postprocess import nms  # noqa: PLC0415
    kept = [Pred(model_to_label[p.class_id], p.score, p.box) for p in preds
            if model_to_label[p.class_id] is not None
            and (min_scores is None or p.score >= min_scores[p.class_id])]
    if not kept:
        return []
    # one NMS pass that never suppresses across label classes: each class in its own region of the plane
    offset = 1.0 + max(max(abs(v) for v in p.box) for p in kept)
    boxes = np.array([[v + p.class_id * 2 * offset for v in p.box] for p in kept], np.float64)
    keep = nms(boxes, np.array([p.score for p in kept], np.float64), iou_threshold, max_keep=len(kept))
    return [kept[i] for i in keep]


def truths_for(photo: Photo, labels: Sequence[str]) -> list[Truth]:
    """The photo's boxes of the evaluated label classes (others are not judged)."""
    return [Truth(labels.index(label), box) for label, box in photo.boxes if label in labels]


def precision_recall(images: Sequence[tuple[Sequence[Pred], Sequence[Truth]]], labels: Sequence[str]) -> dict:
    """Per label class: true/false positives, misses, precision and recall at IoU 0.5.

    The predictions are those that pass an operating point's thresholds. Precision is None
    without predictions, recall None without ground truth.
    """
    tp, fp, n_truth = np.zeros(len(labels), int), np.zeros(len(labels), int), np.zeros(len(labels), int)
    for preds, truths in images:
        for t in truths:
            n_truth[t.class_id] += 1
        hits = match_image(preds, truths)[:, 0] if preds else np.zeros(0, np.int8)
        for p, hit in zip(preds, hits):
            tp[p.class_id] += hit == 1
            fp[p.class_id] += hit == 0
    return {name: {'tp': int(tp[c]), 'fp': int(fp[c]), 'fn': int(n_truth[c] - tp[c]),
                   'precision': float(tp[c] / (tp[c] + fp[c])) if tp[c] + fp[c] else None,
                   'recall': float(tp[c] / n_truth[c]) if n_truth[c] else None}
            for c, name in enumerate(labels)}


# --- the speed controller's thresholds

def _flatten(params: Mapping, prefix: str = '') -> dict:
    """ROS parameter YAML nesting -> dotted names (`signs: {danger: {min_score: x}}` -> signs.danger.min_score)."""
    flat = {}
    for key, value in params.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def controller_min_scores(controller_config: pathlib.Path = DEFAULT_CONTROLLER_CONFIG) -> dict[str, float]:
    """min_score per model class as the speed controller starts with `controller_config`.

    As the node does: its `policy_file` parameter (empty: policy.yaml beside it, the package's
    config/policy.yaml), then any `signs.<class>.min_score` parameter in the file on top. Classes
    the policy does not know, or lets do nothing (action `ignore`), never make the train act and
    are absent.
    """
    from train_fou.policy import Action, PolicyConfigError, load_policy  # noqa: PLC0415
    from train_fou.yamlio import read_yaml  # noqa: PLC0415
    controller_config = pathlib.Path(controller_config)
    data = read_yaml(controller_config, 'speed controller parameters', EvaluationError) or {}
    flat: dict = {}
    for node in ('/**', 'speed_controller', '/speed_controller'):
        section = data.get(node) if isinstance(data, Mapping) else None
        if isinstance(section, Mapping) and isinstance(section.get('ros__parameters'), Mapping):
            flat.update(_flatten(section['ros__parameters']))
    policy_file = flat.get('policy_file') or controller_config.parent / 'policy.yaml'
    try:
        policy = load_policy(policy_file)
    except PolicyConfigError as err:
        raise EvaluationError(f'speed controller policy: {err}') from err
    scores = {label: rule.min_score for label, rule in policy.signs.items() if rule.action != Action.IGNORE}
    for name, value in flat.items():
        label, _, field = name.removeprefix('signs.').rpartition('.')
        if name.startswith('signs.') and field == 'min_score' and label in scores:
            scores[label] = float(value)
    return scores


# --- the run

def score_photos(preds: Sequence[Sequence[Pred]], photos: Sequence[Photo], names: Sequence[str],
                 class_map: Mapping[str, str | None], min_scores: Mapping[str, float], conf_threshold: float,
                 nms_iou: float) -> dict:
    """The metrics of model-class predictions (one list per photo, scored low for AP) against the labels.

    `class_map` covers every model class (resolve_class_map); `min_scores` is the controller's
    threshold per model class (a class without one never acts); `conf_threshold` the deployed one.
    """
    labels = label_classes(class_map)
    model_to_label = [labels.index(class_map[n]) if class_map[n] is not None else None for n in names]
    truths = [truths_for(p, labels) for p in photos]
    ap = compute_metrics([(to_label_classes(r, model_to_label, nms_iou), t) for r, t in zip(preds, truths)], labels)
    points = {}
    for point, mins in (('controller', [min_scores.get(n, float('inf')) for n in names]),
                        ('deployed', [conf_threshold] * len(names))):
        pairs = [(to_label_classes(r, model_to_label, nms_iou, mins), t) for r, t in zip(preds, truths)]
        points[point] = {'all': precision_recall(pairs, labels), 'ap': compute_metrics(pairs, labels),
                         'per_photo': [precision_recall([pair], labels) for pair in pairs]}
    per_class = {}
    for name, v in ap['per_class'].items():
        sources = [n for n in names if class_map[n] == name]
        per_class[name] = {
            'instances': v['instances'], 'detections': v['detections'], 'AP50': v['mAP50'], 'AP50-95': v['mAP50-95'],
            'model_classes': sources,
            'controller': {'min_score': {n: min_scores.get(n) for n in sources}, **points['controller']['all'][name]},
            'deployed': {'conf_threshold': conf_threshold, **points['deployed']['all'][name],
                         'AP50': points['deployed']['ap']['per_class'][name]['mAP50']},
        }
    unevaluated: dict[str, int] = {}
    for p in photos:
        for label, _ in p.boxes:
            if label not in labels:
                unevaluated[label] = unevaluated.get(label, 0) + 1
    return {
        'class_map': dict(class_map), 'ignored_model_classes': [n for n in names if class_map[n] is None],
        'unevaluated_labels': unevaluated, 'conf_threshold': conf_threshold, 'nms_iou': nms_iou,
        'match_iou': MATCH_IOU,
        'per_class': per_class, 'mAP50': ap['mAP50'], 'mAP50-95': ap['mAP50-95'],
        # AP of the detections the node publishes (score >= conf_threshold) alone: lower, since AP
        # then stops at the recall that threshold reaches
        'mAP50_deployed': points['deployed']['ap']['mAP50'],
        'per_photo': [
            {'image': p.path.name, 'size': [p.width, p.height], 'exif_orientation': p.orientation,
             'controller': {k: {f: v[f] for f in ('tp', 'fp', 'fn')} for k, v in pr.items()}}
            for p, pr in zip(photos, points['controller']['per_photo'])],
    }


def evaluate_real(model: pathlib.Path, export: pathlib.Path, images_dir: pathlib.Path,
                  out_dir: pathlib.Path | None = None, class_map: Mapping[str, str | None] | None = None,
                  refine: bool = True, conf_threshold: float = 0.001,
                  controller_config: pathlib.Path = DEFAULT_CONTROLLER_CONFIG,
                  backend: str = 'onnxruntime-cpu') -> dict:
    """Run `model` on the export's photos; the report (and report.json + detections.jpg under out_dir).

    `class_map`: model class -> label class or None (default DEFAULT_CLASS_MAP). `refine`: the
    refiner the metadata names, as the node runs it (False: the detector alone). AP uses
    `conf_threshold`; the two operating points use the controller's min_score per model class and
    the metadata's conf_threshold. The controller's proximity gate (min_height_frac) is not applied:
    it decides when a seen sign acts, not whether it was seen.
    """
    from train_fou.vision.detector import open_detector  # noqa: PLC0415
    from train_fou.vision.errors import VisionError  # noqa: PLC0415

    photos, skipped = read_export(export, images_dir)
    min_scores = controller_min_scores(controller_config)
    try:
        detector, choice = open_detector(model, backend=backend, conf_threshold=conf_threshold, refine=refine)
    except VisionError as err:
        raise EvaluationError(f'cannot open {model}: {err}') from err
    try:
        names = list(detector.metadata.names)
        cmap = resolve_class_map(names, DEFAULT_CLASS_MAP if class_map is None else class_map,
                                 {label for p in photos for label, _ in p.boxes})
        preds = []
        for photo in photos:
            bgr = read_photo(photo.path)
            if bgr.shape[:2] != (photo.height, photo.width):
                raise EvaluationError(f'{photo.path}: decoded as {bgr.shape[1]}x{bgr.shape[0]}, '
                                      f'expected {photo.width}x{photo.height}')
            preds.append([Pred(d.class_id, d.score, (d.x1, d.y1, d.x2, d.y2)) for d in detector.detect(bgr).detections])
        deployed_conf = detector.metadata.conf_threshold
        nms_iou = detector.iou_threshold
        refiner = detector.refiner.spec.model.name if detector.refiner is not None else None
        precision = detector.precision
    finally:
        detector.close()
    report = {
        'model': str(model), 'export': str(export), 'images': str(images_dir), 'photos': len(photos),
        'skipped_tasks': skipped, 'backend': choice.backend.name, 'model_precision': precision, 'refiner': refiner,
        'score_threshold': conf_threshold, 'controller_config': str(controller_config),
        **score_photos(preds, photos, names, cmap, min_scores, deployed_conf, nms_iou),
    }
    report = finite_or_none(report)
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        sheet = write_contact_sheet(out_dir / 'detections.jpg', photos, preds, names, cmap, min_scores, deployed_conf)
        (out_dir / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
        report['files'] = [str(out_dir / 'report.json'), str(sheet)]
    return report


# --- the picture

GROUND_TRUTH_BGR = (0, 200, 0)
IGNORED_BGR = (160, 160, 160)


def draw_photo(bgr: np.ndarray, photo: Photo, preds: Sequence[Pred], names: Sequence[str],
               class_map: Mapping[str, str | None], min_scores: Mapping[str, float],
               conf_threshold: float) -> np.ndarray:
    """The photo with its labels (green, captioned below) and the detections at the controller's min_score.

    Detections are coloured by label class, captioned with the model class and score; model
    classes the labels do not cover are grey (shown at the controller's threshold, or the
    deployed one when the controller has none for them), since they show what a sign was taken for.
    """
    import cv2  # noqa: PLC0415
    from train_fou.vision.annotate import PALETTE  # noqa: PLC0415
    labels = label_classes(class_map)
    canvas = bgr.copy()
    thick = max(1, round(min(canvas.shape[:2]) / 320))
    font = 0.35 * thick

    def box(b, colour, caption, width, below):
        p1, p2 = (int(round(b[0])), int(round(b[1]))), (int(round(b[2])), int(round(b[3])))
        cv2.rectangle(canvas, p1, p2, colour, width, cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        above = p1[1] - th - base >= 0 and (not below or p2[1] + th + 2 > canvas.shape[0])
        y = p1[1] - 2 if above else p2[1] + th + 2
        cv2.rectangle(canvas, (p1[0], y - th - base), (p1[0] + tw, y + base // 2), colour, cv2.FILLED)
        cv2.putText(canvas, caption, (p1[0], y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1,
                    cv2.LINE_AA)

    for label, b in photo.boxes:
        box(b, GROUND_TRUTH_BGR, label, thick + 1, below=True)
    for p in sorted(preds, key=lambda p: p.score):
        target = class_map[names[p.class_id]]
        if p.score < min_scores.get(names[p.class_id], conf_threshold):
            continue
        colour = IGNORED_BGR if target is None else PALETTE[labels.index(target) % len(PALETTE)]
        box(p.box, colour, f'{names[p.class_id]} {p.score:.2f}', thick, below=False)
    return canvas


def write_contact_sheet(path: pathlib.Path, photos: Sequence[Photo], preds: Sequence[Sequence[Pred]],
                        names: Sequence[str], class_map: Mapping[str, str | None], min_scores: Mapping[str, float],
                        conf_threshold: float, columns: int = 4, tile_width: int = 640) -> pathlib.Path:
    """One JPEG of every photo (drawn by draw_photo, scaled to tile_width at most), its file name above it."""
    import cv2  # noqa: PLC0415
    tiles = []
    for photo, p in zip(photos, preds):
        drawn = draw_photo(read_photo(photo.path), photo, p, names, class_map, min_scores, conf_threshold)
        scale = min(1.0, tile_width / drawn.shape[1])
        drawn = cv2.resize(drawn, (round(drawn.shape[1] * scale), round(drawn.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA) if scale < 1 else drawn
        title = np.full((22, drawn.shape[1], 3), 255, np.uint8)
        cv2.putText(title, photo.path.name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.vstack([title, drawn]))
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (cell_h + 4), min(columns, len(tiles)) * (cell_w + 4), 3), 64, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = (i // columns) * (cell_h + 4), (i % columns) * (cell_w + 4)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise EvaluationError(f'{path}: cannot write the contact sheet')
    return path


# --- the printed table

def _num(v, digits: int = 3) -> str:
    return '-' if v is None else f'{v:.{digits}f}'


def format_real_table(report: dict) -> str:
    """A short table: per label class instances, AP50 and precision/recall at the controller's min_score."""
    lines = ['| class | instances | AP50 | controller min_score | precision | recall |',
             '|---|---:|---:|---:|---:|---:|']
    for name, v in report['per_class'].items():
        c = v['controller']
        mins = sorted({s for s in c['min_score'].values() if s is not None})
        lines.append(f'| {name} | {v["instances"]} | {_num(v["AP50"])} | {"/".join(f"{s:g}" for s in mins) or "-"} | '
                     f'{_num(c["precision"])} ({c["tp"]}/{c["tp"] + c["fp"]}) | '
                     f'{_num(c["recall"])} ({c["tp"]}/{c["tp"] + c["fn"]}) |')
    lines.append(f'| **mAP50** | {sum(v["instances"] for v in report["per_class"].values())} | '
                 f'**{_num(report["mAP50"])}** | | | |')
    lines.append(f'mAP50 of the detections the node publishes alone (score >= {report["conf_threshold"]}): '
                 f'{_num(report["mAP50_deployed"])}')
    precision = f'{report["model_precision"]}, ' if report.get('model_precision') else ''
    notes = [f'{report["model"]} ({precision}{"refiner " + report["refiner"] if report["refiner"] else "no refiner"}) '
             f'on {report["photos"]} photos of {report["export"]}']
    if report['ignored_model_classes']:
        notes.append('model classes the labels do not cover (dropped before matching): '
                     + ', '.join(report['ignored_model_classes']))
    if report['unevaluated_labels']:
        notes.append('labels no model class maps to (not evaluated): '
                     + ', '.join(f'{k} ({n})' for k, n in sorted(report['unevaluated_labels'].items())))
    if report['skipped_tasks']:
        notes.append(f'{report["skipped_tasks"]} tasks without an annotation skipped')
    return '\n'.join([notes[0], *lines, *notes[1:]])
