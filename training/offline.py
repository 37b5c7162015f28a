"""Keep ultralytics off the network: call `offline()` before importing it.

ultralytics would otherwise download fonts (Arial.ttf for plots), weights
(yolo11n.pt for the AMP check), datasets named in data.yaml, and pip-install
missing export requirements at run time. We set:

- YOLO_OFFLINE=1: `is_online()` is False, so no download is even attempted;
- YOLO_AUTOINSTALL=false: a missing requirement is an error, never a pip run;
- YOLO_CONFIG_DIR under training/runs: settings are written there, not in $HOME;
and train with amp=False, plots=False, pretrained=False (see train.py).
"""
from __future__ import annotations

import os
import pathlib

RUNS_DIR = pathlib.Path(__file__).resolve().parent / 'runs'


def offline() -> None:
    os.environ['YOLO_OFFLINE'] = '1'
    os.environ['YOLO_AUTOINSTALL'] = 'false'
    config_dir = RUNS_DIR / '.ultralytics'
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('YOLO_CONFIG_DIR', str(config_dir))
    os.environ.setdefault('YOLO_VERBOSE', 'true')
