"""`make train-smoke`: the whole chain on tiny datasets, in the training venv, in well under a minute.

synthetic data + simulator-view frames + a learnable set (below) -> the ImageNet backbone loaded and
verified -> ultralytics training (a few epochs, 160 px) -> ONNX + metadata (model contract checked) ->
the ONNX model gives the PyTorch model's outputs -> it detects the learnable set's test signs (mAP50 of
at least MIN_LEARNED_MAP50) and the same network untrained does not -> speed-limit refiner (crops, 1
epoch, ONNX, attached to the metadata) -> INT8 quantisation (the detector's `auto` runs it; it finds the
FP32 model's detections again) -> evaluation through train_fou.vision (detector + refiner) ->
Label Studio export of the test split -> import -> evaluation on the imported copy. Everything goes to
training/runs/smoke-chain/ (ignored by git); models/ is never touched. Exit 0 when every stage worked.

The learnable set is what makes this a test of learning: a few large, canonically drawn signs on
plain backgrounds, no camera effects (`generate_learnable`). Any training that works learns it in a
few epochs; an export of an untrained or wrongly trained network does not detect it. The synth and
simview sets are far too hard for a short run: on them the smoke only checks that every stage works.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys
import time

import numpy as np
import yaml

from train_fou.errors import TrainFouError
from training import config as config_mod
from training.dataset import label_path_for, read_labels, split_images
from training.offline import RUNS_DIR

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTRACT_NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']

#: The learnable set: one sign per image, canonically drawn (one look per class), face height in
#: LEARN_FACE_PX of a LEARN_SIZE px square on one plain colour, saved as near-lossless JPEG.
LEARN_COUNTS = {'train': 48, 'val': 8, 'test': 16}
LEARN_SIZE = 160
LEARN_FACE_PX = (56, 96)
LEARN_KINDS = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger_railway')   # class 0..3, in order
LEARN_SEED = 7
#: mAP50 (the detector alone, through train_fou.vision) the trained export must reach on the learnable
#: test split. The training is reproducible (the head's initialisation is seeded, _check_same_start):
#: on 2 CPU cores it reaches 1.0 with seed 0 on every run, 0.988 to 1.0 with seeds 1 to 4; the
#: untrained network (the ImageNet backbone, neck and head as initialised) 0.0, and the smoke checks
#: on every run that it stays below the bar.
MIN_LEARNED_MAP50 = 0.5
#: test images on which the ONNX export must reproduce the PyTorch model's raw outputs
AGREEMENT_IMAGES = 4
#: largest difference allowed there: class scores (0..1) and box coordinates (input pixels)
MAX_SCORE_DIFF = 1e-3
MAX_BOX_DIFF_PX = 0.05
#: INT8 (training/export.py: quantize_int8) of the export, calibrated on the whole learnable train
#: split: the largest mAP50 loss on the learnable test split, and the share of the FP32 detections
#: (score at least INT8_MATCH_SCORE) the INT8 model must find again (same class, IoU at least
#: INT8_MATCH_IOU). The smoke's briefly trained network is far less sure of itself than a real model,
#: so its INT8 copy depends on the calibration images: with 32 of the 48, one training (head seed 2)
#: lost 0.16, 0.07 or 0.01 by which 32; with all 48, 0.08 (seeds 0, 1, 3, 4: no loss).
INT8_CALIB_IMAGES = LEARN_COUNTS['train']
MAX_INT8_MAP50_LOSS = 0.1
INT8_MATCH_SCORE = 0.5
INT8_MATCH_IOU = 0.7
MIN_INT8_MATCHED = 0.9


class SmokeError(TrainFouError, RuntimeError):
    """A stage of the chain produced something that breaks the model contract."""


def _labelstudio_export(data: pathlib.Path, split: str, out: pathlib.Path) -> pathlib.Path:
    """A Label Studio JSON export (rectangles in percent) of a YOLO split, as a user's tool would write it."""
    import cv2  # noqa: PLC0415
    tasks = []
    for n, image in enumerate(split_images(data, split)):
        h, w = cv2.imread(str(image)).shape[:2]
        results = [{'type': 'rectanglelabels', 'original_width': w, 'original_height': h,
                    'value': {'x': x1 / w * 100, 'y': y1 / h * 100, 'width': (x2 - x1) / w * 100,
                              'height': (y2 - y1) / h * 100, 'rotation': 0,
                              'rectanglelabels': [f'my {CONTRACT_NAMES[c]}']}}
                   for c, (x1, y1, x2, y2) in read_labels(label_path_for(image), w, h)]
        tasks.append({'id': n, 'data': {'image': f'/data/upload/1/0a1b2c3d-{image.name}'},
                      'annotations': [{'result': results}]})
    out.write_text(json.dumps(tasks))
    return out


def generate_learnable(root: pathlib.Path, counts=LEARN_COUNTS, seed: int = LEARN_SEED) -> pathlib.Path:
    """A YOLO dataset a few epochs learn: one large canonical sign per image on a plain background."""
    import cv2  # noqa: PLC0415

    from train_fou.render.scene import paste_rgba  # noqa: PLC0415
    from train_fou.render.signs import KIND_CLASS, render_sign  # noqa: PLC0415
    from training.dataset import SPLITS, write_data_yaml, write_labels  # noqa: PLC0415

    for split_id, split in enumerate(SPLITS):
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        for i in range(counts[split]):
            rng = np.random.default_rng([seed, split_id, i])
            kind = LEARN_KINDS[i % len(LEARN_KINDS)]
            rgb = np.empty((LEARN_SIZE, LEARN_SIZE, 3), np.uint8)
            rgb[:] = rng.integers(30, 226, 3)
            sprite, (fx1, fy1, fx2, fy2) = render_sign(kind, int(rng.integers(*LEARN_FACE_PX)), None, pole=False)
            x = int(rng.integers(0, LEARN_SIZE - sprite.shape[1] + 1))
            y = int(rng.integers(0, LEARN_SIZE - sprite.shape[0] + 1))
            paste_rgba(rgb, sprite, x, y)
            name = f'{split}_{i:03d}'
            cv2.imwrite(str(root / 'images' / split / f'{name}.jpg'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                        [int(cv2.IMWRITE_JPEG_QUALITY), 98])
            write_labels(root / 'labels' / split / f'{name}.txt',
                         [(KIND_CLASS[kind], (x + fx1, y + fy1, x + fx2, y + fy2))], LEARN_SIZE, LEARN_SIZE)
    write_data_yaml(root, CONTRACT_NAMES, extra={'learnable': {'seed': seed, 'counts': dict(counts)}})
    return root


def _check_agreement(weights: pathlib.Path, onnx_path: pathlib.Path, data: pathlib.Path) -> float:
    """The ONNX model's raw outputs equal the PyTorch model's on the same input tensors; the largest
    score difference. SmokeError beyond MAX_SCORE_DIFF / MAX_BOX_DIFF_PX."""
    import cv2  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from ultralytics import YOLO  # noqa: PLC0415

    from train_fou.vision.detector import open_detector  # noqa: PLC0415

    network = YOLO(str(weights)).model.float().eval()
    detector, _ = open_detector(onnx_path, backend='onnxruntime-cpu', refine=False)
    worst_score = worst_box = 0.0
    try:
        for image in split_images(data, 'test')[:AGREEMENT_IMAGES]:
            tensor, _info = detector.preprocess(cv2.imread(str(image)))
            exported = np.asarray(detector.backend.infer(tensor), np.float32)
            with torch.no_grad():
                output = network(torch.from_numpy(np.ascontiguousarray(tensor)))
            reference = (output[0] if isinstance(output, (list, tuple)) else output).numpy()
            if reference.shape != exported.shape:
                raise SmokeError(f'{onnx_path}: output shape {exported.shape}, PyTorch {reference.shape}')
            worst_box = max(worst_box, float(np.abs(reference[:, :4] - exported[:, :4]).max()))
            worst_score = max(worst_score, float(np.abs(reference[:, 4:] - exported[:, 4:]).max()))
    finally:
        detector.close()
    if worst_score > MAX_SCORE_DIFF or worst_box > MAX_BOX_DIFF_PX:
        raise SmokeError(f'{onnx_path} disagrees with {weights.name}: scores differ by up to {worst_score:.2g} '
                         f'(allowed {MAX_SCORE_DIFF:g}), boxes by {worst_box:.2g} px (allowed {MAX_BOX_DIFF_PX:g})')
    return worst_score


def _learned_map50(onnx_path: pathlib.Path, data: pathlib.Path) -> float:
    """mAP50 of the detector alone (no refiner) on the learnable test split, as the node would run it."""
    from training.evaluate import evaluate_model  # noqa: PLC0415
    return float(evaluate_model(onnx_path, data, 'test', refine=False)['mAP50'] or 0.0)


def _check_int8(onnx_path: pathlib.Path, data: pathlib.Path, learned: float) -> dict:
    """Quantise the export; `auto` must then run the INT8 model beside it, which must find the FP32
    model's detections again and keep its mAP50 on the learnable set. SmokeError otherwise."""
    import cv2  # noqa: PLC0415

    from train_fou.vision.detector import open_detector  # noqa: PLC0415
    from training.evaluate import box_iou  # noqa: PLC0415
    from training.export import Int8Options, quantize_int8  # noqa: PLC0415
    int8_path, int8_json, quantization = quantize_int8(
        onnx_path, Int8Options(calib=(data,), split='train', count=INT8_CALIB_IMAGES), command='make train-smoke')
    meta = json.loads(int8_json.read_text())
    fp32_meta = json.loads(onnx_path.with_suffix('.json').read_text())
    if meta.get('precision') != 'int8' or meta.get('refiner') != fp32_meta.get('refiner'):
        raise SmokeError(f'{int8_json}: precision {meta.get("precision")!r}, refiner {meta.get("refiner")!r} '
                         f'(expected int8 and the FP32 metadata\'s refiner)')
    int8, choice = open_detector(onnx_path, backend='auto', refine=False)
    fp32, _ = open_detector(onnx_path, backend='onnxruntime-cpu', refine=False)
    confident = matched = 0
    try:
        if choice.model != int8_path or int8.precision != 'int8':
            raise SmokeError(f'backend auto beside {int8_path.name} ran {choice.reason}')
        for image in split_images(data, 'test'):
            bgr = cv2.imread(str(image))
            found = int8.detect(bgr).detections
            for d in fp32.detect(bgr).detections:
                if d.score < INT8_MATCH_SCORE:
                    continue
                confident += 1
                matched += any(e.class_id == d.class_id and box_iou(
                    [d.x1, d.y1, d.x2, d.y2], [e.x1, e.y1, e.x2, e.y2])[0, 0] >= INT8_MATCH_IOU for e in found)
    finally:
        int8.close()
        fp32.close()
    share = matched / confident if confident else 1.0
    if share < MIN_INT8_MATCHED:
        raise SmokeError(f'{int8_path}: finds {matched} of the FP32 model\'s {confident} detections '
                         f'(score >= {INT8_MATCH_SCORE}, same class, IoU >= {INT8_MATCH_IOU})')
    int8_map = _learned_map50(int8_path, data)
    if int8_map < learned - MAX_INT8_MAP50_LOSS:
        raise SmokeError(f'{int8_path}: mAP50 {int8_map:.3f} on the learnable set, FP32 {learned:.3f} '
                         f'(at most {MAX_INT8_MAP50_LOSS} lower allowed)')
    return {'int8_mAP50': round(int8_map, 3), 'int8_matched': f'{matched}/{confident}',
            'int8_max_score_diff': quantization['agreement']['max_score_diff']}


def _untrained_export(init: pathlib.Path, out_dir: pathlib.Path, size: tuple[int, int], cfg) -> pathlib.Path:
    """The training's starting point (ImageNet backbone, untrained neck and head) exported like the model."""
    import torch  # noqa: PLC0415

    from training.export import export_onnx  # noqa: PLC0415
    checkpoint = torch.load(init, map_location='cpu', weights_only=False)
    checkpoint['model'].names = dict(enumerate(CONTRACT_NAMES))
    named = out_dir / 'untrained.pt'
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, named)
    return export_onnx(named, out_dir, 'untrained', size, cfg['opset'], 'untrained', {'config': 'untrained'})[0]


def _check_same_start(first: pathlib.Path, second: pathlib.Path) -> None:
    """Two checkpoints init_checkpoint built must hold the same weights: the smoke's training (and
    its INT8 check) is then reproducible. Unseeded, the head's initialisation differed on every run
    and so did the result (learnable mAP50 0.76 to 1.0; the INT8 check failed on the weak runs)."""
    import torch  # noqa: PLC0415
    a, b = (torch.load(p, map_location='cpu', weights_only=False)['model'].state_dict() for p in (first, second))
    differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
    if differ or a.keys() != b.keys():
        raise SmokeError(f'{first} and {second} start from different weights ({len(differ)} tensors differ, '
                         f'first {differ[:3]}): the training is not reproducible')


def _check_backbone(out: pathlib.Path) -> None:
    """The ImageNet MobileNetV2 weights load into the detector's backbone, and only trained ones pass."""
    import torch  # noqa: PLC0415
    import torchvision  # noqa: PLC0415

    from training.backbone import BackboneError, init_checkpoint, read_state, torchvision_block, verify_loaded  # noqa: PLC0415
    init_checkpoint(ROOT / 'training' / 'models' / 'mnv2_yolov8p.yaml', out, log=lambda line: None)
    block = torchvision_block(torch.load(out, map_location='cpu', weights_only=False)['model'])
    state = read_state()
    verify_loaded(block.m, state)
    fresh = torchvision.models.mobilenet_v2(weights=None).features[:18]
    try:
        verify_loaded(fresh, state)
    except BackboneError:
        return
    raise SmokeError('verify_loaded accepted a randomly initialised MobileNetV2: it checks nothing')


def main() -> int:
    from training.dataset import import_labelstudio  # noqa: PLC0415
    from training.evaluate import evaluate_model  # noqa: PLC0415
    from training.export import export_onnx  # noqa: PLC0415
    from training.train import prepare_data, train  # noqa: PLC0415

    start = time.monotonic()
    work = RUNS_DIR / 'smoke-chain'
    if work.exists():
        shutil.rmtree(work)
    cfg = config_mod.load(ROOT / 'training' / 'configs' / 'smoke.yaml')
    stages = {}

    t = time.monotonic()
    learnable = generate_learnable(work / 'data' / 'learnable')
    cfg['data']['real'] = [*(cfg['data'].get('real') or []), str(learnable)]   # a YOLO set like real photos
    data_yaml, data_hash = prepare_data(cfg, work / 'data')
    stages['data_s'] = round(time.monotonic() - t, 1)
    trains_on = yaml.safe_load(data_yaml.read_text())['train']
    if len(trains_on) != 3 or not all(pathlib.Path(d).is_dir() and any(pathlib.Path(d).iterdir()) for d in trains_on):
        raise SmokeError(f'data.yaml should train on the synth, simview and learnable sets, got {trains_on}')

    t = time.monotonic()
    _check_backbone(work / 'backbone_init.pt')
    stages['backbone_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    best, _ = train(cfg, data_yaml, run_name='smoke-chain-train')
    stages['train_s'] = round(time.monotonic() - t, 1)
    _check_same_start(work / 'backbone_init.pt', RUNS_DIR / 'smoke-chain-train' / 'init.pt')

    t = time.monotonic()
    size = config_mod.export_size(cfg)
    onnx_path, json_path = export_onnx(best, work / 'models', 'signs', size, cfg['opset'], data_hash,
                                       {'config': cfg, 'command': 'make train-smoke'})
    meta = json.loads(json_path.read_text())
    expected = {'format': 'yolov8', 'names': CONTRACT_NAMES, 'imgsz': list(size), 'input_name': 'images',
                'opset': cfg['opset'], 'data_hash': data_hash}
    wrong = {k: meta.get(k) for k, v in expected.items() if meta.get(k) != v}
    if wrong:
        raise SmokeError(f'{json_path}: fields {wrong} differ from the model contract {expected}')
    stages['export_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    score_diff = _check_agreement(best, onnx_path, learnable)
    learned = _learned_map50(onnx_path, learnable)
    untrained = _learned_map50(_untrained_export(RUNS_DIR / 'smoke-chain-train' / 'init.pt', work / 'untrained',
                                                 size, cfg), learnable)
    if untrained >= MIN_LEARNED_MAP50:
        raise SmokeError(f'the untrained network reaches mAP50 {untrained:.3f} on the learnable set, the bar is '
                         f'{MIN_LEARNED_MAP50}: the bar proves nothing')
    if learned < MIN_LEARNED_MAP50:
        raise SmokeError(f'{onnx_path}: mAP50 {learned:.3f} on the learnable set (large signs on plain '
                         f'backgrounds), below {MIN_LEARNED_MAP50}: the training learnt nothing '
                         f'(untrained: {untrained:.3f})')
    stages['learned_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    from training.refiner import run as train_refiner  # noqa: PLC0415
    refiner_onnx = work / 'models' / 'signs_refine.onnx'
    train_refiner([work / 'data' / 'synth'], onnx_path, refiner_onnx, json_path, epochs=1, seed=0,
                  log=lambda line: None)
    from train_fou.vision.metadata import load_metadata  # noqa: PLC0415
    refiner = load_metadata(json_path).refiner  # the evaluation below then runs it
    if refiner is None or refiner.model != refiner_onnx:
        raise SmokeError(f'{json_path}: the refiner {refiner_onnx} was not attached')
    stages['refiner_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    int8 = _check_int8(onnx_path, learnable, learned)
    stages['int8_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    report = evaluate_model(onnx_path, work / 'data' / 'synth', 'test', out_dir=work / 'eval')
    if set(report['per_class']) != set(CONTRACT_NAMES) or not (work / 'eval' / 'confusion_matrix.png').is_file():
        raise SmokeError(f'evaluation report incomplete: {sorted(report["per_class"])}')
    if report['refiner'] != refiner_onnx.name:
        raise SmokeError(f'the evaluation ran without the refiner {refiner_onnx.name}: {report["refiner"]!r}')
    export = _labelstudio_export(work / 'data' / 'synth', 'test', work / 'labelstudio.json')
    mapping = {f'my {n}': n for n in CONTRACT_NAMES}
    import_labelstudio(export, work / 'data' / 'synth' / 'images' / 'test', work / 'imported', mapping,
                       CONTRACT_NAMES, val_fraction=0.0, test_fraction=1.0)
    imported = evaluate_model(onnx_path, work / 'imported', 'test')
    if imported['per_class'] != report['per_class']:
        raise SmokeError('the Label Studio round trip changed the evaluation: '
                         f'{imported["per_class"]} != {report["per_class"]}')
    stages['evaluate_s'] = round(time.monotonic() - t, 1)

    print(json.dumps({'ok': True, 'onnx': str(onnx_path), 'learnable_mAP50': round(learned, 3),
                      'untrained_mAP50': round(untrained, 3), 'onnx_vs_pytorch_max_score_diff': score_diff,
                      **int8, 'mAP50': report['mAP50'], **stages,
                      'total_s': round(time.monotonic() - start, 1)}))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (SmokeError, config_mod.ConfigError) as err:
        print(f'train-smoke failed: {err}', file=sys.stderr)
        sys.exit(1)
