"""`train-fou` lists only working subcommands and reports user errors in one line."""
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from train_fou.cli import COMMANDS

TRAIN_FOU = pathlib.Path(sys.prefix) / 'bin' / 'train-fou'


def run_cli(*args, timeout=60):
    return subprocess.run([str(TRAIN_FOU), *args], capture_output=True, text=True, timeout=timeout)


#: The subcommands promised (SPEC §7: replay, detect, bench, sim, hub; the README's command table adds
#: run), written out here: not read from COMMANDS, the table the help is built from.
SUBCOMMANDS = {'run', 'replay', 'sim', 'detect', 'bench', 'hub'}


def test_help_lists_exactly_the_promised_subcommands():
    result = run_cli('--help')
    assert result.returncode == 0, result.stderr
    section = result.stdout.split('positional arguments:')[1].split('options:')[0]
    listed = re.findall(r'^    (\S+)', section, re.MULTILINE)   # a name at 4 spaces; help wraps deeper
    assert sorted(listed) == sorted(SUBCOMMANDS), result.stdout
    assert set(COMMANDS) == SUBCOMMANDS


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_every_subcommand_has_working_help(command):
    result = run_cli(command, '--help')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: train-fou ' + command)


def test_run_with_missing_parameter_file_prints_one_line_naming_it(tmp_path):
    missing = tmp_path / 'missing.yaml'
    result = run_cli('run', '--params', str(missing))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'train-fou run: error: {missing}: parameter file not found']


def test_run_with_malformed_parameter_file_prints_one_line_naming_it(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('hub_node:\n  ros__parameters:\n    port: [A\n')
    result = run_cli('run', '--params', str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'train-fou run: error: {bad}: line ')
    assert 'Traceback' not in result.stderr


def test_run_with_unknown_node_names_the_known_ones():
    result = run_cli('run', '--nodes', 'no_such_node')
    assert result.returncode == 2
    assert 'unknown node(s) no_such_node; known:' in result.stderr


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_run_starts_the_default_pipeline_and_stops_cleanly_on_signal(signum):
    process = subprocess.Popen([str(TRAIN_FOU), 'run'], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert '"event": "started"' in first, process.stderr.read() if process.poll() is not None else first
        process.send_signal(signum)
        assert process.wait(timeout=20) == 0
        assert '"event": "stopped"' in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_a_node_that_refuses_to_start_gives_one_line_not_a_traceback(tmp_path):
    bad_policy = tmp_path / 'policy.yaml'
    bad_policy.write_text('cruise_power_pct: 500\n')
    params = tmp_path / 'params.yaml'
    params.write_text(f'speed_controller:\n  ros__parameters:\n    policy_file: {bad_policy}\n')
    result = run_cli('run', '--nodes', 'speed_controller', '--params', str(params))
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train-fou run: error: ') and str(bad_policy) in lines[0]


def test_a_node_launcher_that_refuses_to_start_gives_one_line(tmp_path):
    launcher = pathlib.Path(sys.prefix) / 'lib' / 'train_fou' / 'detector_node'
    missing = tmp_path / 'nothing.onnx'
    result = subprocess.run([str(launcher), '--ros-args', '-p', f'model_path:={missing}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('detector_node: error: ')
    assert str(missing) in result.stderr
