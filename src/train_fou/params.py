"""Load ROS 2 parameter YAML files with one clear error line instead of a traceback.

The files are ordinary ROS 2 parameter files (`node_name: ros__parameters: ...`,
`/**` for every node), so `ros2 launch` on the Jetson reads the very same files
that the `train-fou` composition runner reads here.
"""
from __future__ import annotations

import pathlib
from typing import Any
from collections.abc import Mapping

from train_fou.errors import TrainFouError
from train_fou.yamlio import read_yaml

WILDCARD = '/**'


class ParamsFileError(TrainFouError):
    """A parameter file is missing, unreadable or not a ROS 2 parameter file."""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f'{prefix}.{key}' if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def load_params_file(path: str | pathlib.Path) -> dict[str, dict[str, Any]]:
    """Return {node name or '/**': {dotted.parameter: value}} from a parameter file."""
    path = pathlib.Path(path)
    data = read_yaml(path, 'parameter file', ParamsFileError)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParamsFileError(
            f'{path}: expected a mapping of node names to `ros__parameters`, got {type(data).__name__}')
    result: dict[str, dict[str, Any]] = {}
    for node_name, section in data.items():
        if not isinstance(section, Mapping) or 'ros__parameters' not in section:
            raise ParamsFileError(
                f'{path}: node `{node_name}` has no `ros__parameters` mapping')
        params = section['ros__parameters']
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ParamsFileError(f'{path}: `{node_name}.ros__parameters` must be a mapping')
        flat: dict[str, Any] = {}
        _flatten('', params, flat)
        result[str(node_name).lstrip('/') if node_name != WILDCARD else WILDCARD] = flat
    return result


def params_for_node(files: list[dict[str, dict[str, Any]]], node_name: str) -> dict[str, Any]:
    """Merge the parameters that apply to `node_name`; later files win, as in ROS."""
    merged: dict[str, Any] = {}
    for params in files:
        merged.update(params.get(WILDCARD, {}))
        merged.update(params.get(node_name, {}))
    return merged
