"""Pure-logic packages never import rclpy (DEVELOPERS.md): they run without ROS. The bench never imports the CLI."""
import importlib.util
import pkgutil
import subprocess
import sys

import pytest

PURE_PACKAGES = ['train_fou.yamlio', 'train_fou.vision', 'train_fou.policy', 'train_fou.lwp3', 'train_fou.hub',
                 'train_fou.sim', 'train_fou.render', 'train_fou.params', 'train_fou.monitoring',
                 'train_fou.replay_summary']
#: Modules allowed to import ROS: none of the pure packages' modules.
ALLOWED = set()
#: train_fou.bench may import rclpy and the nodes, as the CLI does, but not the CLI; these of its
#: modules run in the training interpreter (`python -m train_fou.bench.ultralytics_worker`), which has no ROS.
BENCH_PACKAGE = 'train_fou.bench'
BENCH_WITHOUT_ROS = ['train_fou.bench', 'train_fou.bench.ultralytics_worker']


def pure_modules():
    for package in PURE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None:
            continue
        yield package
        for info in pkgutil.walk_packages(spec.submodule_search_locations or [], package + '.'):
            if info.name not in ALLOWED:
                yield info.name


def bench_modules():
    spec = importlib.util.find_spec(BENCH_PACKAGE)
    if spec is None:
        return
    yield BENCH_PACKAGE
    for info in pkgutil.walk_packages(spec.submodule_search_locations or [], BENCH_PACKAGE + '.'):
        yield info.name


@pytest.mark.parametrize('module', list(pure_modules()))
def test_pure_module_does_not_import_rclpy(module):
    code = f'import sys, {module}; sys.exit(1 if "rclpy" in sys.modules else 0)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or f'{module} imports rclpy'


@pytest.mark.parametrize('module', BENCH_WITHOUT_ROS)
def test_bench_module_run_in_the_training_interpreter_does_not_import_rclpy(module):
    code = f'import sys, {module}; sys.exit(1 if "rclpy" in sys.modules else 0)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or f'{module} imports rclpy'


@pytest.mark.parametrize('module', list(bench_modules()))
def test_bench_module_does_not_import_the_cli(module):
    code = f'import sys, {module}; sys.exit(1 if "train_fou.cli" in sys.modules else 0)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or f'{module} imports train_fou.cli'
