"""tools/check_jetson_pins.py without the network: which files install on the Jetson (CPython
3.10, manylinux aarch64, glibc 2.35) and the one line it prints per pin that does not.
The check against the real index runs in `make test` (Makefile: jetson-check)."""
from __future__ import annotations

import importlib.util
import io
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('check_jetson_pins', ROOT / 'tools' / 'check_jetson_pins.py')
pins = importlib.util.module_from_spec(_spec)
sys.modules['check_jetson_pins'] = pins
_spec.loader.exec_module(pins)

TAGS = pins.target_tags()
PY = '>=3.10'


def files(*names, requires_python=PY, yanked=False):
    return [{'filename': n, 'requires-python': requires_python, 'yanked': yanked} for n in names]


def pin(name='pkg', version='1.0', sdist_ok=False, line=3):
    return pins.Pin('requirements-jetson.txt', line, name, version, sdist_ok)


@pytest.mark.parametrize('filename, ok', [
    ('pkg-1.0-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl', True),
    ('pkg-1.0-cp310-cp310-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl', True),
    ('pkg-1.0-cp310-cp310-manylinux_2_35_aarch64.whl', True),
    ('pkg-1.0-cp38-abi3-manylinux2014_aarch64.whl', True),
    ('pkg-1.0-py3-none-any.whl', True),
    ('pkg-1.0-cp311-cp311-manylinux_2_28_aarch64.whl', False),      # other Python
    ('pkg-1.0-cp310-cp310-manylinux_2_28_x86_64.whl', False),       # other architecture
    ('pkg-1.0-cp310-cp310-manylinux_2_39_aarch64.whl', False),      # newer glibc than Ubuntu 22.04
    ('pkg-1.0-cp310-cp310-musllinux_1_2_aarch64.whl', False),
    ('pkg-1.0-cp310-cp310-macosx_14_0_arm64.whl', False),
    ('pkg-1.0.tar.gz', False),                                      # unmarked sdist
])
def test_which_files_install_on_the_jetson(filename, ok):
    assert pins.usable(files(filename)[0], False, TAGS, pins.PYTHON_FULL) is ok


def test_requires_python_and_yanked_files_do_not_count():
    assert not pins.usable(files('pkg-1.0-py3-none-any.whl', requires_python='>=3.11')[0], False, TAGS, '3.10.12')
    assert not pins.usable(files('pkg-1.0-py3-none-any.whl', yanked='broken')[0], False, TAGS, '3.10.12')
    assert pins.usable(files('pkg-1.0-py3-none-any.whl', requires_python=None)[0], False, TAGS, '3.10.12')


ORT = files(
    'onnxruntime-1.23.2-cp310-cp310-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl',
    'onnxruntime-1.23.2-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl',
    'onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl',
    'onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_aarch64.whl',
    'onnxruntime-1.31.1-cp310-cp310-manylinux_2_28_x86_64.whl')


def test_a_pin_without_a_cp310_aarch64_wheel_names_the_newest_version_that_has_one():
    reason, _ = pins.check_pin(pin('onnxruntime', '1.31.1'), ORT)
    assert reason == ('no wheel for CPython 3.10 on manylinux aarch64 (glibc 2.35); '
                      'newest version that has one: 1.23.2')
    assert pins.check_pin(pin('onnxruntime', '1.23.2'), ORT) == (
        None, 'onnxruntime-1.23.2-cp310-cp310-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl')


def test_a_source_distribution_counts_only_where_the_pin_says_it_is_built_on_the_target():
    sdist = files('pycuda-2026.1.tar.gz', requires_python='~=3.8')
    assert pins.check_pin(pin('pycuda', '2026.1', sdist_ok=True), sdist) == (None, 'pycuda-2026.1.tar.gz')
    reason, _ = pins.check_pin(pin('pycuda', '2026.1'), sdist)
    assert 'only a source distribution' in reason and '# sdist:' in reason


def test_a_wheel_for_a_newer_python_only_and_a_missing_version_are_named():
    reason, _ = pins.check_pin(pin(), files('pkg-1.0-py3-none-any.whl', requires_python='>=3.11'))
    assert reason.startswith('its CPython 3.10 on manylinux aarch64 (glibc 2.35) wheel requires Python >=3.11')
    reason, _ = pins.check_pin(pin(version='9.9'), files('pkg-1.0-py3-none-any.whl'))
    assert reason == 'no such version on the index (newest: 1.0)'


def test_parse_pins_reads_comments_marks_and_rejects_unpinned_lines():
    text = ('# header\n\nNumPy==1.26.4   # comment\npycuda==2026.1  # sdist: built on the target\n'
            'bleak>=3\nrosbags\n')
    found, errors = pins.parse_pins(text, 'req.txt')
    assert [(p.line, p.name, p.version, p.sdist_ok) for p in found] == [
        (3, 'numpy', '1.26.4', False), (4, 'pycuda', '2026.1', True)]
    assert errors == ['req.txt:5: bleak>=3: not pinned with ==', 'req.txt:6: rosbags: not pinned with ==']


def test_the_jetson_requirements_are_all_pinned():
    found, errors = pins.parse_pins((ROOT / 'requirements-jetson.txt').read_text())
    assert not errors and {'onnxruntime', 'rosbags', 'bleak', 'pycuda'} <= {p.name for p in found}
    assert [p.name for p in found if p.sdist_ok] == ['pycuda']


def test_run_prints_one_line_per_pin_and_fails_on_a_broken_one(tmp_path):
    req = tmp_path / 'requirements-jetson.txt'
    req.write_text('onnxruntime==1.31.1  # CPU fallback\nbleak==3.1.0\n')
    index = {'onnxruntime': ORT, 'bleak': files('bleak-3.1.0-py3-none-any.whl')}
    out = io.StringIO()
    assert pins.run([str(req)], index.__getitem__, out) == 1
    assert out.getvalue().splitlines() == [
        f'{req}:1: onnxruntime==1.31.1: no wheel for CPython 3.10 on manylinux aarch64 (glibc 2.35); '
        'newest version that has one: 1.23.2',
        'ok   bleak==3.1.0: bleak-3.1.0-py3-none-any.whl',
        '1 of 2 pins do not install for CPython 3.10 on manylinux aarch64 (glibc 2.35)']
    req.write_text('onnxruntime==1.23.2\n')
    out = io.StringIO()
    assert pins.run([str(req)], index.__getitem__, out) == 0
    assert out.getvalue().splitlines()[-1] == 'all 1 pins resolve for CPython 3.10 on manylinux aarch64 (glibc 2.35)'


def test_an_unreachable_index_is_exit_2_with_one_line(monkeypatch, capsys, tmp_path):
    req = tmp_path / 'r.txt'
    req.write_text('bleak==3.1.0\n')

    def offline(name, index_url, tries=3):
        raise pins.IndexUnreadable(f'{index_url}{name}/: <urlopen error no network>')
    monkeypatch.setattr(pins, 'fetch_files', offline)
    assert pins.main([str(req)]) == 2
    assert capsys.readouterr().err.strip() == (
        'check_jetson_pins: cannot read the package index: https://pypi.org/simple/bleak/: <urlopen error no network>')
