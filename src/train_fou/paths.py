"""Where the package's shared files (config/, models/, bags/, launch/) are."""
from __future__ import annotations

import pathlib

PACKAGE = 'train_fou'


def share_dir() -> pathlib.Path:
    """share/train_fou of the install space; the source tree when running from source."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return pathlib.Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    source_root = pathlib.Path(__file__).resolve().parents[2]
    if (source_root / 'package.xml').is_file():
        return source_root
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory: build the package (make setup / colcon build)')


def config_path(name: str) -> pathlib.Path:
    """A file under config/ of the share directory."""
    return share_dir() / 'config' / name
