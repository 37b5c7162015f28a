"""Prepare the data of a config and train it with ultralytics, offline (training venv only: imports torch)."""
from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Any
from collections.abc import Mapping

import yaml

from train_fou.errors import TrainFouError
from train_fou.render.signs import CLASS_NAMES
from training import config as config_mod
from training.dataset import SPLITS, dataset_hash_many, load_names
from training.offline import RUNS_DIR, offline
from training.synth import SynthConfig, generate_dataset, preview_grid

DATASETS_DIR = pathlib.Path(__file__).resolve().parent / 'datasets'
ROOT = pathlib.Path(__file__).resolve().parents[1]


class TrainError(TrainFouError, RuntimeError):
    """Training cannot start or did not produce weights."""


def _prepare_generated(spec: Mapping[str, int], out: pathlib.Path, stamp_name: str, generate,
                       params: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Run `generate(out, counts, seed)` unless `out` already holds a set made with the same seed and counts
    (and the same generator `params`, when a config sets any)."""
    out = pathlib.Path(out)
    stamp = out / stamp_name
    wanted = {'seed': spec['seed'], 'counts': {s: spec[s] for s in SPLITS}}
    if params:
        wanted['params'] = dict(params)
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return out
    if out.exists():
        shutil.rmtree(out)
    generate(out, wanted['counts'], wanted['seed'])
    preview_grid(out, out / 'preview.png')
    stamp.write_text(json.dumps(wanted))
    return out


def prepare_synth(synth: Mapping[str, Any], out: pathlib.Path, workers: int = 1) -> pathlib.Path:
    """Generate the synthetic dataset unless `out` already holds one made with the same parameters.

    The config's optional shares (`photo_p`, ... : config_mod.SYNTH_SHARES) go into SynthConfig."""
    params = {k: synth[k] for k in config_mod.SYNTH_SHARES if k in synth}
    cfg = SynthConfig(**params)
    return _prepare_generated(synth, out, 'synth.json', lambda root, counts, seed: generate_dataset(
        root, counts, seed=seed, cfg=cfg, workers=workers), params)


def prepare_simview(simview: Mapping[str, int], out: pathlib.Path, workers: int = 1) -> pathlib.Path:
    """Render the simulator-view dataset unless `out` already holds one made with the same parameters."""
    from training.simview import generate_simview  # noqa: PLC0415 (imports the simulator)
    params = {k: simview[k] for k in config_mod.SIMVIEW_SHARES if k in simview}
    return _prepare_generated(simview, out, 'simview.json', lambda root, counts, seed: generate_simview(
        root, counts, seed=seed, workers=workers, **params), params)


def prepare_data(cfg: Mapping[str, Any], workdir: pathlib.Path, workers: int = 1) -> tuple[pathlib.Path, str]:
    """data.yaml training on synth + real train splits, validating on their val splits; and its data hash.

    The test split stays out of training and is what `evaluate` reports.
    """
    workdir = pathlib.Path(workdir)
    roots = []
    if cfg['data'].get('synth') is not None:
        # absolute: data.yaml's entries must not be read relative to its `path`
        roots.append(prepare_synth(cfg['data']['synth'], workdir / 'synth', workers).resolve())
    if cfg['data'].get('simview') is not None:
        roots.append(prepare_simview(cfg['data']['simview'], workdir / 'simview', workers).resolve())
    for real in cfg['data'].get('real') or []:
        root = pathlib.Path(real).resolve()
        names = load_names(root)
        if list(names) != list(CLASS_NAMES):
            raise TrainError(f'{root}: classes {names} differ from the model classes {list(CLASS_NAMES)}; '
                             f'import it with a class mapping first')
        roots.append(root)
    combined = {
        'path': str(workdir.resolve()),
        'train': [str(r / 'images' / 'train') for r in roots],
        'val': [str(r / 'images' / 'val') for r in roots if any((r / 'images' / 'val').glob('*'))],
        'test': [str(r / 'images' / 'test') for r in roots if any((r / 'images' / 'test').glob('*'))],
        'names': {i: n for i, n in enumerate(CLASS_NAMES)},
    }
    digest = dataset_hash_many(roots)
    combined['data_hash'] = digest
    data_yaml = workdir / 'data.yaml'
    data_yaml.write_text(yaml.safe_dump(combined, sort_keys=False))
    return data_yaml, digest


def train(cfg: Mapping[str, Any], data_yaml: pathlib.Path, run_name: str | None = None,
          device: str = 'cpu', resume: bool = False) -> tuple[pathlib.Path, float]:
    """Train; returns (best.pt, seconds). The run directory is training/runs/<name>.

    `resume` continues an interrupted run from its last.pt (epoch, optimiser, LR schedule and
    `time` budget as ultralytics saved them): a CPU run spans hours and sessions end.
    """
    name = run_name or cfg['name']
    last = RUNS_DIR / name / 'weights' / 'last.pt'
    if resume and not last.is_file():
        raise TrainError(f'cannot resume: {last} not found (start the run without --resume)')
    offline()
    from ultralytics import YOLO  # noqa: PLC0415 (after offline())

    if resume:
        start = time.monotonic()
        YOLO(str(last)).train(resume=True)
        return _finish(cfg, name, time.monotonic() - start)

    weights = cfg.get('weights')
    if weights is not None and not pathlib.Path(weights).is_absolute() and (ROOT / weights).is_file():
        weights = ROOT / weights   # relative to the repository, like `model`
    if weights is not None and not pathlib.Path(weights).is_file():
        raise TrainError(f'weights {weights} not found (only local weights are used, nothing is downloaded)')
    model_ref = pathlib.Path(cfg['model'])
    if not model_ref.is_absolute() and (ROOT / model_ref).is_file():
        model_ref = ROOT / model_ref   # a project file; otherwise a YAML shipped with ultralytics
    if cfg.get('backbone') == 'imagenet':
        # the trainer rebuilds the network from its YAML and carries weights over only from a
        # checkpoint, so the ImageNet backbone goes in through one (training/backbone.py)
        from training.backbone import init_checkpoint  # noqa: PLC0415
        weights = init_checkpoint(model_ref, RUNS_DIR / name / 'init.pt')
    model = YOLO(str(model_ref))
    if weights is not None:
        model = model.load(weights)
    args = {k: cfg[k] for k in config_mod.ULTRALYTICS_KEYS if cfg.get(k) is not None}
    start = time.monotonic()
    # ultralytics rebuilds the network in its trainer: `pretrained` (a path) is what carries the weights over
    model.train(data=str(data_yaml), project=str(RUNS_DIR), name=name, exist_ok=True, device=device,
                pretrained=str(weights) if weights is not None else False, amp=False, plots=False, val=True,
                seed=0, deterministic=False, verbose=True, **args)
    return _finish(cfg, name, time.monotonic() - start)


def _finish(cfg: Mapping[str, Any], name: str, seconds: float) -> tuple[pathlib.Path, float]:
    """The run's best weights (last.pt when validation never improved), config saved beside them."""
    best = RUNS_DIR / name / 'weights' / 'best.pt'
    if not best.is_file():
        best = RUNS_DIR / name / 'weights' / 'last.pt'
    if not best.is_file():
        raise TrainError(f'training finished without weights in {RUNS_DIR / name / "weights"}')
    (RUNS_DIR / name / 'train_fou_config.yaml').write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    return best, seconds
