"""The refiner: crops from YOLO datasets -> tiny CNN -> ONNX + the detector's metadata.

The detector confuses 30 and 50 because it reads the frame at 416-512 px, and takes
red discs for stop signs; the refiner (train_fou.vision.refine) re-reads each
speed-limit and stop detection from the 640x480 source. Its training crops are
cut with the runtime's own `crop_square`, from three sources per image:

* every labelled speed limit, stop and danger sign, exactly and with box
  jitter (the detector's boxes are never exact);
* the detector's own speed-limit, stop and danger detections (score >= 0.05),
  labelled by the ground truth they overlap: that sign's class, or `other`
  when they overlap nothing (red-ringed distractors, red discs, other brands'
  white warning triangles, blank triangles, clutter) - the hard negatives the
  refiner must reject. A danger detection is only ever vetoed at runtime
  (`verifies`, `veto_p`: train_fou.vision.refine), never relabelled.

Training runs on the CPU in minutes (75 k parameters, 32x32 input), with
photometric augmentation on the fly; the export is a fixed 1x3x32x32 ONNX
graph ending in softmax, so every backend runs it unchanged.
"""
from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from train_fou.render.signs import CLASS_NAMES
from train_fou.vision.refine import crop_square
from training.dataset import label_path_for, read_labels, split_images
from training.evaluate import box_iou

NAMES = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger', 'other')
STOP_CLASS, DANGER_CLASS, OTHER = 2, 3, 4
#: detector class id -> refiner class id, for the classes the refiner re-reads
REFINED_CLASSES = {CLASS_NAMES.index(name): i for i, name in enumerate(NAMES[:DANGER_CLASS])}
#: detector class id -> refiner class id, for the classes it only checks (vetoes when sure: VETO_P)
VERIFIED_CLASSES = {CLASS_NAMES.index('danger'): DANGER_CLASS}
#: the classifier's crop classes: re-read and checked
CROP_CLASSES = {**REFINED_CLASSES, **VERIFIED_CLASSES}
INPUT_SIZE = 32
MARGIN = 0.15
#: a re-read sign this sure removes a weaker detection of another class on the same object (refine.py)
OVERRULE_P = 0.95
#: a danger detection is dropped only when the classifier is this sure it is not a sign (refine.py)
VETO_P = 0.9
#: a limit or stop box is dropped only when the classifier gives this much to `other` and `danger`
#: together; less sure, it is named the likeliest re-read class and scored detector x that
#: probability, so an unsure one stays below the controller's thresholds (refine.py). Dropping on
#: the likeliest output instead lost real speed limits that the classifier was unsure about (the
#: model card has both figures)
DROP_P = 0.95
#: a kept limit or stop box is also reported as each other re-read class the classifier gives at
#: least this probability (refine.py): an unsure 30/50 is published as both readings, which the
#: controller takes as an unreadable limit; neither can reach the shipped 0.5 thresholds unless it
#: is the likelier one. On the synthetic test splits the second readings count as the detections
#: they are (multi-label, as ultralytics' validator scores too): the model card has both figures
ALTERNATIVE_P = 0.05
#: size bands (source box height, px) reported by the evaluation
BANDS = ((0, 16), (16, 20), (20, 30), (30, 60), (60, 10000))


def _jitter(box, rng: np.random.Generator):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + rng.uniform(-0.1, 0.1) * w
    cy = (y1 + y2) / 2 + rng.uniform(-0.1, 0.1) * h
    w *= rng.uniform(0.85, 1.2)
    h *= rng.uniform(0.85, 1.2)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def collect_crops(roots: Sequence[pathlib.Path], split: str, detector=None, seed: int = 0,
                  jitters: int = 2, max_images: int | None = None):
    """Crops (N x S x S x 3 BGR uint8), labels (N,), source box heights (N,) of `split` in `roots`.

    `detector`: a train_fou Detector (without refiner) whose limit, stop and
    danger detections become extra crops; None uses the labels only.
    """
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    labels: list[int] = []
    heights: list[float] = []

    def add(image, box, label):
        crops.append(crop_square(image, box, INPUT_SIZE, MARGIN))
        labels.append(label)
        heights.append(float(box[3] - box[1]))

    for root in roots:
        images = split_images(pathlib.Path(root), split)[:max_images]
        for path in images:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            height, width = image.shape[:2]
            truth = read_labels(label_path_for(path), width, height)
            gt_boxes = np.array([b for _, b in truth], np.float64).reshape(-1, 4)
            gt_classes = [c for c, _ in truth]
            for cls, box in truth:
                if cls in CROP_CLASSES:
                    add(image, box, CROP_CLASSES[cls])
                    for _ in range(jitters):
                        add(image, _jitter(box, rng), CROP_CLASSES[cls])
            if detector is None:
                continue
            for det in detector.detect(image).detections:
                if det.class_id not in CROP_CLASSES:
                    continue
                box = (det.x1, det.y1, det.x2, det.y2)
                ious = box_iou([box], gt_boxes)[0]
                best = int(ious.argmax()) if ious.size else -1
                if best >= 0 and ious[best] >= 0.5:
                    add(image, box, CROP_CLASSES.get(gt_classes[best], OTHER))
                elif best < 0 or ious[best] < 0.3:
                    add(image, box, OTHER)  # a distractor or clutter the detector took for a sign
    if not crops:
        return (np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0))
    return np.stack(crops), np.asarray(labels, np.int64), np.asarray(heights)


def build_network():
    """3x32x32 RGB -> one logit per class; three conv blocks keep the digits' layout for the classifier head."""
    import torch.nn as nn  # noqa: PLC0415

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(64 * (INPUT_SIZE // 8) ** 2, len(NAMES)))


def _to_tensor(crops: np.ndarray):
    import torch  # noqa: PLC0415
    x = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float() / 255.0
    return x


def _augment(x, gen):
    """Photometric jitter per sample: brightness, contrast, colour cast, blur, noise."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415
    n = x.shape[0]
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
    brightness = torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2, generator=gen)
    cast = torch.empty(n, 3, 1, 1).uniform_(0.85, 1.15, generator=gen)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness) * cast
    blur = torch.rand(n, generator=gen) < 0.3
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16.0).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode='replicate'), kernel, groups=3)
    small = torch.rand(n, generator=gen) < 0.25  # resolution loss: a farther, smaller sign
    if small.any():
        x[small] = F.interpolate(F.interpolate(x[small], size=INPUT_SIZE // 2, mode='area'),
                                 size=INPUT_SIZE, mode='bilinear', align_corners=False)
    x = x + torch.randn(x.shape, generator=gen) * torch.empty(n, 1, 1, 1).uniform_(0, 0.04, generator=gen)
    return x.clamp_(0.0, 1.0)


def train_classifier(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                     epochs: int = 20, batch: int = 128, lr: float = 3e-3, seed: int = 0,
                     log=print):
    """Train the network with AdamW + cosine LR and class-balanced loss; returns (model, history)."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_network()
    x_all, y_all = _to_tensor(train_x), torch.from_numpy(train_y)
    xv, yv = _to_tensor(val_x), torch.from_numpy(val_y)
    counts = torch.bincount(y_all, minlength=len(NAMES)).float().clamp(min=1)
    weights = counts.sum() / (len(NAMES) * counts)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, (len(x_all) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    history = []
    best_state, best_acc = None, -1.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb = _augment(x_all[idx].clone(), gen)
            loss = F.cross_entropy(model(xb), y_all[idx], weight=weights, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(model, xv, yv)
        history.append({'epoch': epoch + 1, 'loss': total / len(x_all), 'val_accuracy': acc,
                        'seconds': time.perf_counter() - t0})
        log(json.dumps(history[-1]))
        if acc >= best_acc:
            best_acc, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def predict(model, x) -> np.ndarray:
    import torch  # noqa: PLC0415
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)]).numpy()


def accuracy(model, x, y) -> float:
    return float((predict(model, x) == y.numpy()).mean()) if len(y) else float('nan')


def confusion_by_band(truth: np.ndarray, pred: np.ndarray, heights: np.ndarray) -> dict:
    """Accuracy per size band (signs only) and the confusion matrix (rows true, columns predicted)."""
    report = {'accuracy': float((truth == pred).mean()) if len(truth) else None, 'crops': int(len(truth)),
              'confusion_true_rows': np.bincount(truth * len(NAMES) + pred, minlength=len(NAMES) ** 2)
              .reshape(len(NAMES), len(NAMES)).tolist(), 'bands': []}
    for lo, hi in BANDS:
        sel = (heights >= lo) & (heights < hi) & (truth != OTHER)
        report['bands'].append({'height_px': [lo, hi], 'sign_crops': int(sel.sum()),
                                'sign_accuracy': float((truth[sel] == pred[sel]).mean()) if sel.any() else None})
    return report


def export(model, onnx_path: pathlib.Path, opset: int = 17) -> None:
    """Fixed 1x3x32x32 input `images` -> `probs` 1xC (softmax in the graph)."""
    import torch  # noqa: PLC0415

    class WithSoftmax(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, images):
            return torch.softmax(self.net(images), dim=1)

    wrapped = WithSoftmax(model).eval()
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapped, (dummy,), str(onnx_path), input_names=['images'], output_names=['probs'],
                      opset_version=opset, dynamo=False)


class RefinerMismatchError(RuntimeError):
    """A refiner ONNX whose outputs are not this workspace's NAMES (trained by an older version)."""


def output_classes(onnx_path: pathlib.Path) -> int | None:
    """The classifier's number of outputs (the last dimension of its only output), None if not static."""
    import onnx  # noqa: PLC0415
    dims = onnx.load(str(onnx_path), load_external_data=False).graph.output[0].type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField('dim_value') else None


def attach_to_detector(metadata_path: pathlib.Path, onnx_path: pathlib.Path) -> None:
    """Name the refiner in the detector's metadata JSON (the runtime reads it from there).

    Refuses a classifier whose outputs are not NAMES: a refiner trained before the danger class
    was added has four outputs and must be retrained, not renamed.
    """
    outputs = output_classes(pathlib.Path(onnx_path))
    if outputs != len(NAMES):
        raise RefinerMismatchError(
            f'{onnx_path}: the classifier has {outputs} outputs, this refiner names {len(NAMES)} '
            f'({", ".join(NAMES)}): retrain it with `python -m training refiner`')
    data = json.loads(metadata_path.read_text())
    data['refiner'] = {'model': onnx_path.name, 'names': list(NAMES),
                       'applies_to': [CLASS_NAMES[c] for c in REFINED_CLASSES],
                       'input_size': INPUT_SIZE, 'margin': MARGIN, 'overrule_p': OVERRULE_P,
                       'verifies': [CLASS_NAMES[c] for c in VERIFIED_CLASSES], 'veto_p': VETO_P,
                       'drop_p': DROP_P, 'alternative_p': ALTERNATIVE_P}
    metadata_path.write_text(json.dumps(data, indent=2) + '\n')


def run(data: Iterable[pathlib.Path], detector_model: pathlib.Path | None, out: pathlib.Path,
        attach: pathlib.Path | None, epochs: int, seed: int, max_images: int | None = None,
        test_data: pathlib.Path | None = None, log=print) -> dict:
    """Collect crops, train, evaluate on the test split, export; returns the report (also <out>.json)."""
    from train_fou.vision.detector import open_detector  # noqa: PLC0415
    roots = [pathlib.Path(d) for d in data]
    detector = None
    if detector_model is not None:
        detector, _ = open_detector(detector_model, backend='onnxruntime-cpu', conf_threshold=0.05, refine=False)
    try:
        t0 = time.perf_counter()
        train = collect_crops(roots, 'train', detector, seed, max_images=max_images)
        val = collect_crops(roots, 'val', detector, seed + 1, max_images=max_images)
        test_roots = [pathlib.Path(test_data)] if test_data else roots
        test = collect_crops(test_roots, 'test', detector, seed + 2, jitters=0, max_images=max_images)
        log(json.dumps({'crops': {'train': len(train[1]), 'val': len(val[1]), 'test': len(test[1])},
                        'per_class_train': np.bincount(train[1], minlength=len(NAMES)).tolist(),
                        'seconds': round(time.perf_counter() - t0, 1)}))
    finally:
        if detector is not None:
            detector.close()
    if len(train[1]) == 0 or len(val[1]) == 0:
        raise RuntimeError(f'no training crops found in {", ".join(map(str, roots))}')
    model, history = train_classifier(train[0], train[1], val[0], val[1], epochs=epochs, seed=seed, log=log)
    report = {'names': list(NAMES), 'input_size': INPUT_SIZE, 'margin': MARGIN, 'epochs': epochs,
              'seed': seed, 'data': [str(r) for r in roots], 'detector': str(detector_model),
              'history': history}
    if len(test[1]):
        report['test'] = confusion_by_band(test[1], predict(model, _to_tensor(test[0])), test[2])
    out = pathlib.Path(out)
    export(model, out)
    if attach is not None:
        attach_to_detector(pathlib.Path(attach), out)
    out.with_suffix('.json').write_text(json.dumps(report, indent=2) + '\n')
    return report
