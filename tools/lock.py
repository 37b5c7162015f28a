"""Write requirements.txt: every distribution pip installed in the venv, pinned.

`pip freeze` also lists the egg-info folders that the ROS wheels carry inside
site-packages (action_msgs, ament_cmake_test, ...). They are not on PyPI, so a
lock containing them cannot be installed; keep only what pip itself installed.
"""
import json
import subprocess
import sys

report = json.loads(subprocess.check_output(
    [sys.executable, '-m', 'pip', 'inspect', '--local'], text=True))
pins = sorted(
    f"{d['metadata']['name']}=={d['metadata']['version']}"
    for d in report['installed']
    if d.get('installer') == 'pip' and d['metadata']['name'] not in ('pip', 'setuptools', 'wheel'))
header = '# Full lock of the dev venv, generated from requirements.in by `make lock`. Do not edit by hand.\n'
sys.stdout.write(header + '\n'.join(pins) + '\n')
