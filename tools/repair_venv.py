"""Repair what the ROS 2 PyPI wheels get wrong inside a venv, idempotently.

1. The wheels' exported CMake files name the include directories of the
   machine that built them (`/opt/python/cp311-cp311/...`). Point them at this
   venv's Python headers and NumPy headers so rosidl_generator_py can build
   against them. Nothing outside the venv is touched.
2. Several wheels ship `share/<pkg>/package.xml`. colcon would find those when
   it crawls a workspace that holds the venv, so mark the venv COLCON_IGNORE.

Usage: python tools/repair_venv.py  (run with the venv's interpreter)
"""
import pathlib
import sys
import sysconfig

import numpy

BUILD_PREFIX = '/opt/python/cp311-cp311'
REPLACEMENTS = {
    f'{BUILD_PREFIX}/include/python3.11': sysconfig.get_paths()['include'],
    f'{BUILD_PREFIX}/lib/python3.11/site-packages/numpy/_core/include': numpy.get_include(),
}


def main() -> int:
    venv = pathlib.Path(sys.prefix)
    if venv == pathlib.Path(sys.base_prefix):
        print('repair_venv: run me with the venv interpreter (.venv/bin/python)', file=sys.stderr)
        return 2
    include = pathlib.Path(REPLACEMENTS[f'{BUILD_PREFIX}/include/python3.11'])
    if not (include / 'Python.h').is_file():
        print(f'repair_venv: no Python.h in {include}; install the Python development headers', file=sys.stderr)
        return 2
    changed = 0
    for root in (venv / 'share', venv / 'lib' / 'cmake'):
        for path in root.rglob('*.cmake'):
            text = path.read_text(errors='surrogateescape')
            if BUILD_PREFIX not in text:
                continue
            new = text
            for old, replacement in REPLACEMENTS.items():
                new = new.replace(old, replacement)
            if new != text:
                path.write_text(new, errors='surrogateescape')
                changed += 1
    ignore = venv / 'COLCON_IGNORE'
    if not ignore.exists():
        ignore.touch()
    print(f'repair_venv: {changed} CMake file(s) repaired in {venv}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
