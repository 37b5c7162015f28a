"""`make train-smoke`: the whole chain on a tiny dataset, in the training venv, in a few minutes.

synthetic data + simulator-view frames -> the ImageNet backbone loaded and verified -> ultralytics training (1 epoch, 160 px) -> ONNX + metadata (model
contract checked) -> speed-limit refiner (crops, 1 epoch, ONNX, attached to the
metadata) -> evaluation through train_fou.vision (detector + refiner) -> Label Studio export of
the test split -> import -> evaluation on the imported copy. Everything goes to
training/runs/smoke-chain/ (ignored by git); models/ is never touched. Exit 0 when
every stage worked; the model itself is useless and its mAP is not checked.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys
import time

import yaml

from train_fou.errors import TrainFouError
from training import config as config_mod
from training.dataset import label_path_for, read_labels, split_images
from training.offline import RUNS_DIR

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTRACT_NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']


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
    data_yaml, data_hash = prepare_data(cfg, work / 'data')
    stages['data_s'] = round(time.monotonic() - t, 1)
    trains_on = yaml.safe_load(data_yaml.read_text())['train']
    if len(trains_on) != 2 or not all(pathlib.Path(d).is_dir() and any(pathlib.Path(d).iterdir()) for d in trains_on):
        raise SmokeError(f'data.yaml should train on the synth and simview sets, got {trains_on}')

    t = time.monotonic()
    _check_backbone(work / 'backbone_init.pt')
    stages['backbone_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    best, _ = train(cfg, data_yaml, run_name='smoke-chain-train')
    stages['train_s'] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    size = config_mod.export_size(cfg)
    onnx_path, json_path = export_onnx(best, work / 'models', 'signs', size, cfg['opset'], data_hash,
                                       {'config': cfg, 'command': 'make train-smoke'})
    meta = json.loads(json_path.read_text())
    expected = {'format': 'yolov8', 'names': CONTRACT_NAMES, 'imgsz': [size] * 2, 'input_name': 'images',
                'opset': cfg['opset'], 'data_hash': data_hash}
    wrong = {k: meta.get(k) for k, v in expected.items() if meta.get(k) != v}
    if wrong:
        raise SmokeError(f'{json_path}: fields {wrong} differ from the model contract {expected}')
    stages['export_s'] = round(time.monotonic() - t, 1)

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

    print(json.dumps({'ok': True, 'onnx': str(onnx_path), 'mAP50': report['mAP50'], **stages,
                      'total_s': round(time.monotonic() - start, 1)}))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (SmokeError, config_mod.ConfigError) as err:
        print(f'train-smoke failed: {err}', file=sys.stderr)
        sys.exit(1)
