"""Check that every pin of requirements-jetson.txt installs on the train: CPython 3.10 on
manylinux aarch64 (JetPack 6 = Ubuntu 22.04, glibc 2.35).

A pin `name==version` resolves when the package index has, for that exact version, a wheel whose
tags pip on the Jetson accepts and whose Requires-Python admits 3.10; or, for a pin whose comment
contains `sdist:` (built on the target, like pycuda against CUDA), a source distribution that
admits 3.10. Yanked files do not count. The index is read through its JSON simple API (PEP 691),
one request per package, nothing is downloaded.

Prints one line per pin (`ok ...`, or `FILE:LINE: name==version: why` for one that does not
resolve). Exit 0: all resolve; 1: one or more do not; 2: the index could not be read.

    python tools/check_jetson_pins.py [--index-url URL] [requirements-jetson.txt ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import InvalidVersion, Version

INDEX_URL = 'https://pypi.org/simple/'
PYTHON = (3, 10)
PYTHON_FULL = '3.10.12'          # Ubuntu 22.04's python3
GLIBC = (2, 35)                  # Ubuntu 22.04
ARCH = 'aarch64'
SDIST_MARK = 'sdist:'
TARGET = f'CPython {PYTHON[0]}.{PYTHON[1]} on manylinux {ARCH} (glibc {GLIBC[0]}.{GLIBC[1]})'


class IndexUnreadable(Exception):
    """The package index did not answer (no network, or an error page)."""


@dataclass(frozen=True)
class Pin:
    path: str
    line: int
    name: str
    version: str
    sdist_ok: bool

    def where(self) -> str:
        return f'{self.path}:{self.line}: {self.name}=={self.version}'


def target_tags(python: tuple[int, int] = PYTHON, glibc: tuple[int, int] = GLIBC,
                arch: str = ARCH) -> frozenset[Tag]:
    """The wheel tags pip on the target accepts (manylinux_2_17 .. manylinux_<glibc>, 2014 alias)."""
    platforms = [f'manylinux_{glibc[0]}_{minor}_{arch}' for minor in range(glibc[1], 16, -1)]
    platforms += [f'manylinux2014_{arch}', f'linux_{arch}']
    interpreter = f'cp{python[0]}{python[1]}'
    return frozenset([*cpython_tags(python, [interpreter], platforms),
                      *compatible_tags(python, interpreter, platforms)])


def parse_pins(text: str, path: str = 'requirements-jetson.txt') -> tuple[list[Pin], list[str]]:
    """(pins, error lines) of a requirements file: every requirement must be `name==version`."""
    pins, errors = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        spec, _, comment = raw.partition('#')
        spec = spec.strip()
        if not spec:
            continue
        try:
            req = Requirement(spec)
        except InvalidRequirement as err:
            errors.append(f'{path}:{number}: {spec}: not a requirement ({err})')
            continue
        specifiers = list(req.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != '==' or '*' in specifiers[0].version:
            errors.append(f'{path}:{number}: {spec}: not pinned with ==')
            continue
        pins.append(Pin(path, number, canonicalize_name(req.name), specifiers[0].version,
                        SDIST_MARK in comment))
    return pins, errors


def _admits(requires_python: str | None, python_full: str) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(python_full, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores an unparsable Requires-Python as well


def classify(filename: str) -> tuple[str, Version, frozenset[Tag]] | None:
    """('wheel' | 'sdist', version, tags) of a distribution file name, None for other files."""
    try:
        if filename.endswith('.whl'):
            _, version, _, tags = parse_wheel_filename(filename)
            return 'wheel', version, tags
        _, version = parse_sdist_filename(filename)
        return 'sdist', version, frozenset()
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def usable(entry: dict, sdist_ok: bool, tags: frozenset[Tag], python_full: str) -> bool:
    """Whether one index file (PEP 691 entry) installs on the target."""
    kind = classify(entry['filename'])
    if kind is None or entry.get('yanked') or not _admits(entry.get('requires-python'), python_full):
        return False
    return bool(kind[2] & tags) if kind[0] == 'wheel' else sdist_ok


def check_pin(pin: Pin, files: Iterable[dict], tags: frozenset[Tag] | None = None,
              python_full: str = PYTHON_FULL) -> tuple[str | None, str]:
    """(None, chosen file) when the pin resolves, else (reason, '')."""
    tags = target_tags() if tags is None else tags
    want = Version(pin.version)
    by_version: dict[Version, list[dict]] = {}
    for entry in files:
        kind = classify(entry['filename'])
        if kind is not None:
            by_version.setdefault(kind[1], []).append(entry)
    mine = by_version.get(want, [])
    for entry in sorted(mine, key=lambda e: not e['filename'].endswith('.whl')):
        if usable(entry, pin.sdist_ok, tags, python_full):
            return None, entry['filename']
    stable = sorted(v for v in by_version if not v.is_prerelease)
    if not mine:
        newest = f' (newest: {stable[-1]})' if stable else ''
        return f'no such version on the index{newest}', ''
    fits = [v for v in stable if any(usable(e, pin.sdist_ok, tags, python_full) for e in by_version[v])]
    hint = f'; newest version that has one: {fits[-1]}' if fits else '; no version has one'
    wheels = [e for e in mine if e['filename'].endswith('.whl') and not e.get('yanked')
              and classify(e['filename'])[2] & tags]
    if wheels:
        needs = ', '.join(sorted({e.get('requires-python') or '' for e in wheels}))
        return f'its {TARGET} wheel requires Python {needs}{hint}', ''
    has_sdist = any(classify(e['filename'])[0] == 'sdist' and not e.get('yanked') for e in mine)
    if has_sdist and not pin.sdist_ok:
        return (f'no wheel for {TARGET}, only a source distribution (mark the pin '
                f'`# {SDIST_MARK} ...` if building it on the Jetson is the plan)'), ''
    return f'no wheel for {TARGET}{hint}', ''


def fetch_files(name: str, index_url: str = INDEX_URL, tries: int = 3) -> list[dict]:
    """The files the index lists for one project (PEP 691 JSON)."""
    url = index_url.rstrip('/') + f'/{name}/'
    request = urllib.request.Request(url, headers={'Accept': 'application/vnd.pypi.simple.v1+json'})
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)['files']
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            error = err
        except (OSError, ValueError, KeyError) as err:
            error = err
        if attempt < tries - 1:
            time.sleep(2 * (attempt + 1))
    raise IndexUnreadable(f'{url}: {error}')


def run(paths: list[str], fetch: Callable[[str], list[dict]], out=sys.stdout) -> int:
    failures = 0
    count = 0
    for path in paths:
        pins, errors = parse_pins(Path(path).read_text(), path)
        for line in errors:
            print(line, file=out)
        failures += len(errors)
        for pin in pins:
            count += 1
            reason, chosen = check_pin(pin, fetch(pin.name))
            if reason is None:
                built = '' if chosen.endswith('.whl') else ' (source, built on the Jetson)'
                print(f'ok   {pin.name}=={pin.version}: {chosen}{built}', file=out)
            else:
                failures += 1
                print(f'{pin.where()}: {reason}', file=out)
    if failures:
        print(f'{failures} of {count} pins do not install for {TARGET}', file=out)
        return 1
    print(f'all {count} pins resolve for {TARGET}', file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('files', nargs='*', default=['requirements-jetson.txt'])
    parser.add_argument('--index-url', default=INDEX_URL, help=f'PEP 691 simple index (default {INDEX_URL})')
    args = parser.parse_args(argv)
    try:
        return run(args.files, lambda name: fetch_files(name, args.index_url))
    except IndexUnreadable as err:
        print(f'check_jetson_pins: cannot read the package index: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
