"""`python -m training COMMAND ...`: the training workspace's command line (the only place that prints).

Commands:
  synth               generate a synthetic YOLO dataset (+ preview grid)
  simview             render a YOLO dataset from the simulator's train camera (+ preview grid)
  import-yolo         copy a YOLO dataset with its classes mapped onto the model classes
  import-labelstudio  convert a Label Studio JSON export (rectangles in percent)
  train               config -> data -> ultralytics training -> models/<name>.onnx + .json -> evaluation
  export              weights (.pt) -> models/<name>.onnx + .json (--int8: also the INT8 model)
  quantize            FP32 ONNX -> <stem>.int8.onnx + .json beside it (static INT8 for the CPU)
  evaluate            mAP50 / mAP50-95 per class of an ONNX model on a YOLO split (+ confusion matrix PNG)
  eval-real           AP50 per label class and precision/recall at the controller's thresholds on real
                      photos of a Label Studio export (+ contact sheet)
  refiner             train the speed-limit crop classifier -> models/signs_refine.onnx (--attach: name
                      it in a detector's metadata)
  engine              ONNX -> TensorRT engine (FP16 / INT8 / FP32), on the target GPU (the Jetson)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import time

from training import config as config_mod
from training.dataset import DatasetError, load_mapping

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cmd_synth(args) -> int:
    from training.synth import SynthConfig, generate_dataset, preview_grid  # noqa: PLC0415
    counts = {'train': args.train, 'val': args.val, 'test': args.test}
    start = time.monotonic()
    cfg = SynthConfig(photo_p=0.0) if args.no_photos else SynthConfig()
    labels = generate_dataset(args.out, counts, seed=args.seed, cfg=cfg, workers=args.workers)
    png = preview_grid(args.out, pathlib.Path(args.out) / 'preview.png')
    print(json.dumps({'out': str(args.out), 'images': counts, 'labels': labels, 'preview': str(png),
                      'seconds': round(time.monotonic() - start, 1)}))
    return 0


def _cmd_simview(args) -> int:
    from training.simview import generate_simview  # noqa: PLC0415
    from training.synth import preview_grid  # noqa: PLC0415
    counts = {'train': args.train, 'val': args.val, 'test': args.test}
    start = time.monotonic()
    labels = generate_simview(args.out, counts, seed=args.seed, scenario_path=args.scenario, workers=args.workers)
    png = preview_grid(args.out, pathlib.Path(args.out) / 'preview.png')
    print(json.dumps({'out': str(args.out), 'images': counts, 'labels': labels, 'preview': str(png),
                      'seconds': round(time.monotonic() - start, 1)}))
    return 0


def _names():
    from train_fou.render.signs import CLASS_NAMES  # noqa: PLC0415
    return list(CLASS_NAMES)


def _cmd_import_yolo(args) -> int:
    from training.dataset import import_yolo  # noqa: PLC0415
    counts = import_yolo(args.src, args.out, load_mapping(args.map), _names(), args.val_fraction, args.test_fraction)
    print(json.dumps({'out': str(args.out), 'images': counts}))
    return 0


def _cmd_import_labelstudio(args) -> int:
    from training.dataset import import_labelstudio  # noqa: PLC0415
    counts = import_labelstudio(args.export, args.images, args.out, load_mapping(args.map), _names(),
                                args.val_fraction, args.test_fraction)
    print(json.dumps({'out': str(args.out), 'images': counts}))
    return 0


def _cmd_train(args) -> int:
    from training.export import copy_weights, export_onnx  # noqa: PLC0415
    from training.train import DATASETS_DIR, prepare_data, train  # noqa: PLC0415
    cfg = config_mod.load(args.config)
    workdir = pathlib.Path(args.workdir) if args.workdir else DATASETS_DIR / cfg['name']
    t0 = time.monotonic()
    data_yaml, data_hash = prepare_data(cfg, workdir, workers=args.gen_workers)
    gen_s = time.monotonic() - t0
    print(f'data ready in {gen_s:.0f} s: {data_yaml} (hash {data_hash[:12]})', flush=True)
    best, train_s = train(cfg, data_yaml, device=args.device, resume=args.resume)
    out_dir = pathlib.Path(args.out_dir)
    name = args.model_name or cfg['name']
    copy_weights(best, pathlib.Path(__file__).resolve().parent / 'runs' / cfg['name'] / f'{name}.pt',
                 {'config': cfg, 'data_hash': data_hash})
    training = {
        'config': cfg, 'config_file': str(pathlib.Path(args.config)),
        'command': ' '.join(['python -m training'] + sys.argv[1:]),
        'train_seconds': round(train_s), 'data_seconds': round(gen_s),
        'weights': str(best.relative_to(ROOT)) if best.is_relative_to(ROOT) else str(best),
        **_versions(),
    }
    onnx_path, json_path = export_onnx(best, out_dir, name, config_mod.export_size(cfg), cfg['opset'], data_hash,
                                       training, cfg['conf_threshold'], cfg['iou_threshold'])
    print(f'exported {onnx_path} and {json_path}', flush=True)
    if not args.no_eval:
        data_dir = workdir / 'synth' if cfg['data'].get('synth') else pathlib.Path(cfg['data']['real'][0])
        return _evaluate(onnx_path, data_dir,
                         'test', out_dir / f'{name}_eval' if args.eval_dir is None else pathlib.Path(args.eval_dir))
    return 0


def _versions() -> dict:
    import torch  # noqa: PLC0415
    import ultralytics  # noqa: PLC0415
    return {'ultralytics': ultralytics.__version__, 'torch': torch.__version__}


def _cmd_export(args) -> int:
    from training.export import ExportError, export_onnx  # noqa: PLC0415
    from training.dataset import dataset_hash_many  # noqa: PLC0415
    cfg = config_mod.load(args.config)
    if args.refiner is not None and (not args.refiner.is_file()
                                     or args.refiner.resolve().parent != pathlib.Path(args.out_dir).resolve()):
        raise ExportError(f'--refiner {args.refiner} must be an existing ONNX file in --out-dir '
                         f'{args.out_dir} (the metadata names it by file name)')
    if args.int8 != bool(args.calib):
        raise ExportError('--int8 and --calib DATA go together: the INT8 model is calibrated on DATA\'s images')
    if args.imgsz is not None:
        cfg = config_mod.validate({**cfg, 'export_imgsz': args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz},
                                  '--imgsz')
    # the same roots in the same order as training used: the hash then equals the trained-on data's
    data_hash = dataset_hash_many(args.data) if args.data else 'unknown'
    training = {'config': cfg, 'config_file': str(args.config), 'weights': str(args.weights),
                'command': ' '.join(['python -m training'] + sys.argv[1:]), **_versions()}
    onnx_path, json_path = export_onnx(pathlib.Path(args.weights), pathlib.Path(args.out_dir),
                                       args.model_name or cfg['name'], config_mod.export_size(cfg), cfg['opset'],
                                       data_hash, training, cfg['conf_threshold'], cfg['iou_threshold'])
    if args.refiner is not None:
        from training.refiner import attach_to_detector  # noqa: PLC0415
        attach_to_detector(json_path, args.refiner)
    result = {'onnx': str(onnx_path), 'metadata': str(json_path)}
    if args.int8:
        result['int8'] = _quantize(onnx_path, args, pathlib.Path(args.out_dir))
    print(json.dumps(result))
    return 0


def _quantize(onnx_path: pathlib.Path, args, out_dir: pathlib.Path | None) -> dict:
    from training.export import Int8Options, quantize_int8  # noqa: PLC0415
    options = Int8Options(calib=tuple(args.calib), split=args.calib_split, count=args.calib_count,
                          seed=args.calib_seed, method=args.calib_method, activations=args.activations,
                          exclude=args.float_nodes, reduce_range=args.reduce_range)
    with contextlib.redirect_stdout(sys.stderr):  # onnxruntime's calibrators print progress; stdout is JSON
        int8, meta, quantization = quantize_int8(onnx_path, options, out_dir,
                                                 command=' '.join(['python -m training'] + sys.argv[1:]))
    return {'onnx': str(int8), 'metadata': str(meta), 'calibration': quantization['calibration'],
            'agreement': quantization['agreement']}


def _cmd_quantize(args) -> int:
    print(json.dumps(_quantize(args.model, args, args.out_dir)))
    return 0


def _add_int8_arguments(s, what: str) -> None:
    from training.export import INT8_ACTIVATIONS, INT8_EXCLUDE, INT8_METHODS, Int8Options  # noqa: PLC0415
    d = Int8Options(calib=())
    s.add_argument('--calib', type=pathlib.Path, action='append', required=what == 'quantize',
                   help='YOLO dataset root whose images calibrate (repeat for several; the synthetic set)')
    s.add_argument('--calib-split', choices=('train', 'val'), default=d.split,
                   help='split the calibration images come from (default: %(default)s)')
    s.add_argument('--calib-count', type=int, default=d.count, help='calibration images (default: %(default)s)')
    s.add_argument('--calib-seed', type=int, default=d.seed, help='which images are drawn (default: %(default)s)')
    s.add_argument('--calib-method', choices=INT8_METHODS, default=d.method, help='default: %(default)s')
    s.add_argument('--activations', choices=INT8_ACTIVATIONS, default=d.activations, help='default: %(default)s')
    s.add_argument('--float-nodes', choices=INT8_EXCLUDE, default=d.exclude,
                   help='what stays float: decode = the box decode, sigmoid and concatenations after the last '
                        'learned convolutions, head = those convolutions too (default: %(default)s)')
    s.add_argument('--reduce-range', action='store_true', help='7-bit weights (CPUs without VNNI)')


def _evaluate(model: pathlib.Path, data: pathlib.Path, split: str, out: pathlib.Path | None,
              conf: float = 0.001, max_images: int | None = None, refine: bool = True) -> int:
    from training.evaluate import evaluate_model  # noqa: PLC0415
    report = evaluate_model(model, data, split, out_dir=out, conf_threshold=conf, max_images=max_images,
                            refine=refine)
    print(json.dumps(report))
    return 0


def _cmd_evaluate(args) -> int:
    return _evaluate(pathlib.Path(args.model), pathlib.Path(args.data), args.split,
                     pathlib.Path(args.out) if args.out else None, args.conf, args.max_images, not args.no_refine)


def _cmd_eval_real(args) -> int:
    from training.real_eval import DEFAULT_CLASS_MAP, evaluate_real, format_real_table  # noqa: PLC0415
    report = evaluate_real(args.model, args.export, args.images, out_dir=args.out,
                           class_map=DEFAULT_CLASS_MAP if args.map is None else load_mapping(args.map),
                           refine=not args.no_refine, conf_threshold=args.conf, controller_config=args.controller)
    print(format_real_table(report))
    print('report: ' + ', '.join(report['files']))
    return 0


def _cmd_engine(args) -> int:
    from training.engine import EngineOptions, build_engine  # noqa: PLC0415
    opts = EngineOptions(onnx=pathlib.Path(args.onnx), out=pathlib.Path(args.out) if args.out else None,
                         precision=args.precision, calib_images=pathlib.Path(args.calib) if args.calib else None,
                         calib_count=args.calib_count, workspace_mib=args.workspace_mib)
    result = build_engine(opts)
    print(json.dumps(result))
    return 0


def _cmd_refiner(args) -> int:
    from training.refiner import run  # noqa: PLC0415
    report = run(args.data, args.detector, args.out, args.attach, args.epochs, args.seed, args.max_images,
                 args.test_data, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({'onnx': str(args.out), 'test': report.get('test')}))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m training', description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)

    s = sub.add_parser('synth', help='generate a synthetic YOLO dataset')
    s.add_argument('out', type=pathlib.Path)
    s.add_argument('--train', type=int, default=200)
    s.add_argument('--val', type=int, default=40)
    s.add_argument('--test', type=int, default=40)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--workers', type=int, default=1)
    s.add_argument('--no-photos', action='store_true',
                   help='procedural backgrounds only (without the photo packages: training/backgrounds.py)')
    s.set_defaults(func=_cmd_synth)

    s = sub.add_parser('simview', help="render a YOLO dataset from the simulator's train camera")
    s.add_argument('out', type=pathlib.Path)
    s.add_argument('--train', type=int, default=600)
    s.add_argument('--val', type=int, default=60)
    s.add_argument('--test', type=int, default=120)
    s.add_argument('--seed', type=int, default=1000,
                   help='world seed; keep it apart from the campaign seeds the model is judged with (1)')
    s.add_argument('--scenario', type=pathlib.Path, help='scenario YAML (default: config/scenarios/default.yaml)')
    s.add_argument('--workers', type=int, default=1)
    s.set_defaults(func=_cmd_simview)

    for cmd, func in (('import-yolo', _cmd_import_yolo), ('import-labelstudio', _cmd_import_labelstudio)):
        s = sub.add_parser(cmd, help=f'{cmd.replace("-", " ")} of real labelled photos')
        if cmd == 'import-yolo':
            s.add_argument('src', type=pathlib.Path, help='YOLO dataset directory (data.yaml or classes.txt)')
        else:
            s.add_argument('export', type=pathlib.Path, help='Label Studio JSON or JSON-MIN export')
            s.add_argument('--images', type=pathlib.Path, required=True, help='folder holding the exported images')
        s.add_argument('out', type=pathlib.Path)
        s.add_argument('--map', help='class mapping: YAML file or inline "their=speed_limit_30,bus=" (empty = drop)')
        s.add_argument('--val-fraction', type=float, default=0.15)
        s.add_argument('--test-fraction', type=float, default=0.15)
        s.set_defaults(func=func)

    s = sub.add_parser('train', help='train a config and export it')
    s.add_argument('config', type=pathlib.Path)
    s.add_argument('--workdir', help='dataset working directory (default training/datasets/<name>)')
    s.add_argument('--out-dir', default=str(ROOT / 'models'))
    s.add_argument('--model-name', help='file stem of the exported model (default: the config name)')
    s.add_argument('--device', default='cpu')
    s.add_argument('--gen-workers', type=int, default=1)
    s.add_argument('--no-eval', action='store_true')
    s.add_argument('--resume', action='store_true',
                   help="continue the config's interrupted run from training/runs/<name>/weights/last.pt")
    s.add_argument('--eval-dir', help='where the evaluation report and confusion matrix go')
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser('export', help='export weights to ONNX + metadata')
    s.add_argument('weights', type=pathlib.Path)
    s.add_argument('--config', type=pathlib.Path, required=True)
    s.add_argument('--data', type=pathlib.Path, action='append',
                   help='dataset root, for the data hash; repeat it for each dataset the weights trained on, '
                        'in the config order (synth, simview, real...)')
    s.add_argument('--imgsz', type=int, nargs='+', metavar='SIDE',
                   help="input size of the exported model: one side (a square) or HEIGHT WIDTH (default: the "
                        "config's export_imgsz)")
    s.add_argument('--refiner', type=pathlib.Path,
                   help='a trained refiner ONNX in --out-dir to name in the new metadata (re-exporting '
                        'writes the JSON afresh; without this the refiner entry is gone)')
    s.add_argument('--out-dir', default=str(ROOT / 'models'))
    s.add_argument('--model-name')
    s.add_argument('--int8', action='store_true',
                   help='also write <name>.int8.onnx + .json, statically quantised for the CPU (needs --calib)')
    _add_int8_arguments(s, 'export')
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser('quantize', help='FP32 ONNX -> <stem>.int8.onnx + .json beside it (static INT8 for the '
                                        'CPU, calibrated on letterboxed frames)')
    s.add_argument('model', type=pathlib.Path, help='an exported FP32 model (its metadata JSON beside it)')
    s.add_argument('--out-dir', type=pathlib.Path,
                   help="default: the model's folder (where the detector's `auto` looks for it)")
    _add_int8_arguments(s, 'quantize')
    s.set_defaults(func=_cmd_quantize)

    s = sub.add_parser('evaluate', help='mAP of an ONNX model on a YOLO dataset split')
    s.add_argument('model', type=pathlib.Path)
    s.add_argument('data', type=pathlib.Path, help='YOLO dataset root (images/<split>, labels/<split>)')
    s.add_argument('--split', default='test')
    s.add_argument('--out', help='folder for report.json and confusion_matrix.png')
    s.add_argument('--conf', type=float, default=0.001, help='score threshold for mAP (low, as usual)')
    s.add_argument('--max-images', type=int)
    s.add_argument('--no-refine', action='store_true', help='the detector alone, without the speed-limit refiner')
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser('eval-real', help='AP50 and precision/recall of an ONNX model on real labelled photos')
    s.add_argument('model', type=pathlib.Path)
    s.add_argument('--export', type=pathlib.Path, required=True,
                   help='Label Studio JSON or JSON-MIN export, as exported')
    s.add_argument('--images', type=pathlib.Path, required=True,
                   help="folder of the export's images (found by file name)")
    s.add_argument('--out', type=pathlib.Path, default=ROOT / 'out' / 'eval-real',
                   help='folder for report.json and detections.jpg (default out/eval-real)')
    s.add_argument('--map', help='model class -> label class: YAML file or inline "speed_limit_30=SpeedLimit,'
                   'speed_limit_50=SpeedLimit,danger=DangerAhead,stop=" (the default; empty = not labelled)')
    s.add_argument('--controller', type=pathlib.Path, default=ROOT / 'config' / 'speed_controller.yaml',
                   help="speed controller parameters whose min_score per sign gives precision/recall's threshold")
    s.add_argument('--conf', type=float, default=0.001, help='score threshold for AP (low, as usual)')
    s.add_argument('--no-refine', action='store_true', help='the detector alone, without the speed-limit refiner')
    s.set_defaults(func=_cmd_eval_real)

    s = sub.add_parser('refiner', help='train the speed-limit crop classifier and attach it to a detector')
    s.add_argument('data', type=pathlib.Path, nargs='+', help='YOLO dataset roots (train/val/test splits)')
    s.add_argument('--detector', type=pathlib.Path, help='detector ONNX whose speed-limit detections add '
                   'hard examples (default: labels only)')
    s.add_argument('--out', type=pathlib.Path, default=ROOT / 'models' / 'signs_refine.onnx')
    s.add_argument('--attach', type=pathlib.Path, help='detector metadata JSON to name the refiner in')
    s.add_argument('--test-data', type=pathlib.Path, help='dataset whose test split is reported '
                   '(default: the test splits of DATA)')
    s.add_argument('--epochs', type=int, default=20)
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--max-images', type=int, help='per split and dataset (smoke runs)')
    s.set_defaults(func=_cmd_refiner)

    s = sub.add_parser('engine', help='build a TensorRT engine (on the target GPU)')
    s.add_argument('onnx', type=pathlib.Path)
    s.add_argument('--out', help='engine path (default: next to the ONNX, <stem>.<precision>.engine)')
    s.add_argument('--precision', choices=('fp16', 'int8', 'fp32'), default='fp16')
    s.add_argument('--calib', help='folder of images for INT8 calibration (e.g. a dataset images/val)')
    s.add_argument('--calib-count', type=int, default=256, help='INT8: calibration images to feed')
    s.add_argument('--workspace-mib', type=int, default=1024)
    s.set_defaults(func=_cmd_engine)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from training.config import ConfigError  # noqa: PLC0415
    try:
        return args.func(args)
    except (ConfigError, DatasetError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except Exception as err:  # one line for the project's own errors, by isinstance (train_fou/errors.py)
        from train_fou.errors import is_user_error  # noqa: PLC0415
        if not is_user_error(err):
            raise
        print(f'error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
