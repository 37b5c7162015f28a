"""Where the package's shared files (config/, models/, bags/, launch/) are."""
from __future__ import annotations

import os
import pathlib
import sys

PACKAGE = 'train_fou'


def _prefixes() -> list[pathlib.Path]:
    """AMENT_PREFIX_PATH when sourced; else this interpreter's prefix (the dev venv is an install space)."""
    value = os.environ.get('AMENT_PREFIX_PATH', '')
    prefixes = [pathlib.Path(p) for p in value.split(os.pathsep) if p]
    return prefixes or [pathlib.Path(sys.prefix)]


def share_dir() -> pathlib.Path:
    """share/train_fou of the install space; the source tree when running from source."""
    for prefix in _prefixes():
        if (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file():
            return prefix / 'share' / PACKAGE
    source_root = pathlib.Path(__file__).resolve().parents[2]
    if (source_root / 'package.xml').is_file():
        return source_root
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory: build the package (make setup / colcon build)')


def config_path(name: str) -> pathlib.Path:
    """A file under config/ of the share directory."""
    return share_dir() / 'config' / name


def model_path(name: str) -> pathlib.Path:
    """A file under models/ of the share directory."""
    return share_dir() / 'models' / name


def default_model() -> pathlib.Path:
    """The shipped detector model (models/signs.onnx), used when none is configured."""
    return model_path('signs.onnx')
