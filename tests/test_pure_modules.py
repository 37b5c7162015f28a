"""Pure-logic packages never import rclpy (DEVELOPERS.md): they run without ROS."""
import importlib.util
import pkgutil
import subprocess
import sys

import pytest

PURE_PACKAGES = ['train_fou.yamlio', 'train_fou.vision', 'train_fou.policy', 'train_fou.lwp3', 'train_fou.hub',
                 'train_fou.sim', 'train_fou.render', 'train_fou.params']
#: Modules allowed to import ROS: none of the pure packages' modules.
ALLOWED = set()


def pure_modules():
    for package in PURE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None:
            continue
        yield package
        for info in pkgutil.walk_packages(spec.submodule_search_locations or [], package + '.'):
            if info.name not in ALLOWED:
                yield info.name


@pytest.mark.parametrize('module', list(pure_modules()))
def test_pure_module_does_not_import_rclpy(module):
    code = f'import sys, {module}; sys.exit(1 if "rclpy" in sys.modules else 0)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or f'{module} imports rclpy'
