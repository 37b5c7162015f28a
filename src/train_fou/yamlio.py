"""Read a YAML file with one clear error line naming the file (and the line, for bad YAML)."""
from __future__ import annotations

import pathlib
from typing import Any

import yaml


def read_yaml(path: str | pathlib.Path, what: str, error: type[Exception]) -> Any:
    """Parsed content of `path`, or `error` with one line such as
    `config/policy.yaml: line 3, column 7: malformed YAML: ...` (`what` names the kind of file)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise error(f'{path}: {what} not found') from err
    except OSError as err:
        raise error(f'{path}: cannot read {what}: {err.strerror}') from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' line {mark.line + 1}, column {mark.column + 1}:' if mark else ''
        problem = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise error(f'{path}:{where} malformed YAML: {problem}') from err
