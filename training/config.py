"""Training configuration: a small commented YAML file (training/configs/*.yaml), validated here."""
from __future__ import annotations

import pathlib
from typing import Any
from collections.abc import Mapping

from train_fou.errors import TrainFouError
from train_fou.yamlio import read_yaml


class ConfigError(TrainFouError, ValueError):
    """A training config that is missing a key or has a value of the wrong kind."""


#: key -> (type(s), check, what the check means)
_SCHEMA: dict[str, tuple[tuple[type, ...], Any, str]] = {
    'name': ((str,), lambda v: v.replace('_', '').replace('-', '').isalnum(), 'letters, digits, - and _'),
    'model': ((str,), lambda v: v.endswith(('.yaml', '.pt')), 'an ultralytics model YAML or a .pt'),
    'imgsz': ((int,), lambda v: 32 <= v <= 1280 and v % 32 == 0, 'a multiple of 32 in [32, 1280]'),
    'epochs': ((int,), lambda v: v >= 1, '>= 1'),
    'batch': ((int,), lambda v: v >= 1, '>= 1'),
    'optimizer': ((str,), lambda v: v in ('SGD', 'Adam', 'AdamW', 'auto'), 'SGD, Adam, AdamW or auto'),
    'lr0': ((int, float), lambda v: 0 < v < 1, 'in (0, 1)'),
    'cos_lr': ((bool,), lambda v: True, 'true/false'),
    'warmup_epochs': ((int, float), lambda v: v >= 0, '>= 0'),
    'patience': ((int,), lambda v: v >= 1, '>= 1'),
    'close_mosaic': ((int,), lambda v: v >= 0, '>= 0'),
    'workers': ((int,), lambda v: v >= 0, '>= 0'),
    'fliplr': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'mosaic': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'scale': ((int, float), lambda v: 0 <= v < 1, 'in [0, 1)'),
    'translate': ((int, float), lambda v: 0 <= v < 1, 'in [0, 1)'),
    'degrees': ((int, float), lambda v: 0 <= v <= 180, 'in [0, 180]'),
    'hsv_h': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'hsv_s': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'hsv_v': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'opset': ((int,), lambda v: 11 <= v <= 21, 'in [11, 21]'),
    'conf_threshold': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'iou_threshold': ((int, float), lambda v: 0 <= v <= 1, 'in [0, 1]'),
}

#: optional generator shares under `data.synth` (training.synth.SynthConfig fields of the same names)
SYNTH_SHARES = ('photo_p', 'texture_p', 'train_camera_p', 'lookalike_p', 'small_p', 'hard_negative_p')
#: optional generator shares under `data.simview` (training.simview.generate_simview keywords)
SIMVIEW_SHARES = ('hard_negative_p',)

#: config keys passed straight to ultralytics' train()
ULTRALYTICS_KEYS = ('imgsz', 'epochs', 'batch', 'optimizer', 'lr0', 'cos_lr', 'warmup_epochs', 'patience',
                    'close_mosaic', 'workers', 'fliplr', 'mosaic', 'scale', 'translate', 'degrees',
                    'hsv_h', 'hsv_s', 'hsv_v', 'time', 'freeze')

#: `backbone` values: where the backbone's starting weights come from when `weights` is null
BACKBONES = ('imagenet',)


def validate(cfg: Mapping[str, Any], where: str = '<config>') -> dict[str, Any]:
    """The config as a plain dict; ConfigError names the file, the key and what is expected."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f'{where}: expected a mapping, got {type(cfg).__name__}')
    out = dict(cfg)
    for key, (types, check, meaning) in _SCHEMA.items():
        if key not in out:
            raise ConfigError(f'{where}: missing key `{key}` ({meaning})')
        value = out[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types) or not check(value):
            raise ConfigError(f'{where}: `{key}` must be {meaning}, got {value!r}')
    hours = out.get('time')
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0):
        raise ConfigError(f'{where}: `time` must be null or a number of hours > 0, got {hours!r}')
    export_imgsz = out.setdefault('export_imgsz', out['imgsz'])
    sides = list(export_imgsz) if isinstance(export_imgsz, (list, tuple)) and len(export_imgsz) == 2 else [export_imgsz]
    if not all(not isinstance(v, bool) and isinstance(v, int) and _SCHEMA['imgsz'][1](v) for v in sides):
        raise ConfigError(f'{where}: `export_imgsz` must be {_SCHEMA["imgsz"][2]}, or [height, width] of two '
                          f'such, got {export_imgsz!r}')
    weights = out.get('weights')
    if weights is not None and not (isinstance(weights, str) and weights.endswith('.pt') and '://' not in weights):
        raise ConfigError(f'{where}: `weights` must be null or a local .pt file, got {weights!r}')
    backbone = out.get('backbone')
    if backbone is not None and backbone not in BACKBONES:
        raise ConfigError(f'{where}: `backbone` must be null or one of {list(BACKBONES)}, got {backbone!r}')
    if backbone is not None and weights is not None:
        raise ConfigError(f'{where}: `backbone` and `weights` both set: `backbone` only initialises a network '
                          f'that starts without weights')
    freeze = out.get('freeze')
    if freeze is not None and not (
            (isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0)
            or (isinstance(freeze, list) and freeze and all(isinstance(f, (int, str)) and not isinstance(f, bool)
                                                            for f in freeze))):
        raise ConfigError(f'{where}: `freeze` must be null, a number of layers >= 0 or a list of layer names '
                          f'such as "0.m.0", got {freeze!r}')
    data = out.get('data')
    if not isinstance(data, Mapping):
        raise ConfigError(f'{where}: `data` must be a mapping with `synth`, `simview` and/or `real`')
    for generated in ('synth', 'simview'):
        spec = data.get(generated)
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(f'{where}: `data.{generated}` must be a mapping (seed, train, val, test)')
        for key in ('seed', 'train', 'val', 'test'):
            value = spec.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f'{where}: `data.{generated}.{key}` must be an integer >= 0, got {value!r}')
        shares = SYNTH_SHARES if generated == 'synth' else SIMVIEW_SHARES
        for key, value in spec.items():
            if key in ('seed', 'train', 'val', 'test'):
                continue
            if key not in shares:
                raise ConfigError(f'{where}: unknown key `data.{generated}.{key}` (seed, train, val, test, '
                                  f'{", ".join(shares)})')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f'{where}: `data.{generated}.{key}` must be a number in [0, 1], got {value!r}')
    real = data.get('real') or []
    if not isinstance(real, list) or not all(isinstance(r, str) for r in real):
        raise ConfigError(f'{where}: `data.real` must be a list of YOLO dataset directories')
    if data.get('synth') is None and data.get('simview') is None and not real:
        raise ConfigError(f'{where}: `data` names no dataset (neither synth, simview nor real)')
    return out


def export_size(cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of the exported model's input: `export_imgsz` (one side: a square), else the
    training size.

    The detector is fully convolutional, so it may run on another input than it trained on: a
    larger one gives small far signs more pixels, and a 4:3 one ([384, 512]) takes the camera's
    640x480 frame without padding, so no compute goes to grey bars (models/MODEL_CARD.md).
    """
    size = cfg.get('export_imgsz') or cfg['imgsz']
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def load(path: str | pathlib.Path) -> dict[str, Any]:
    path = pathlib.Path(path)
    raw = read_yaml(path, 'training config', ConfigError)
    return validate(raw, str(path))
