"""`train-fou hub drive|scan` with the sim backend."""
from __future__ import annotations

import subprocess
import sys

import pytest

from train_fou.cli import main

DRIVE = 'from train_fou.cli import main; import sys; sys.exit(main(sys.argv[1:]))'


def test_drive_with_trace_prints_hex_frames_and_ends_with_an_acknowledged_brake():
    out = subprocess.run([sys.executable, '-c', DRIVE, 'hub', 'drive', '--backend', 'sim', '--power', '50',
                          '--for', '0', '--trace'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    sent = [line for line in lines if line.startswith('> ')]
    assert sent[0] == '> 080081001151007f'             # brake first after connecting
    assert '> 0800810011510032' in sent               # port A power +50
    assert sent[-1] == '> 080081001151007f'           # ends with a brake
    assert lines[-1] == '< 050082000a'                # ... that the hub acknowledged
    assert '< 0f0004000102000000001000000010' in lines  # train motor attached on port A
    assert 'sim hub: motor A power 50' in lines
    assert 'brake acknowledged' in out.stderr


def test_drive_without_trace_prints_the_orders_in_words(capsys):
    assert main(['hub', 'drive', '--power', '-20', '--for', '0.2']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ['sim hub: motor A brake', 'sim hub: motor A power -20', 'sim hub: motor A brake']


@pytest.mark.parametrize(('argv', 'problem'), [
    (['hub', 'drive', '--power', '150'], '--power 150 outside -100..100'),
    (['hub', 'drive', '--port', 'Q'], "bad port 'Q'"),
    (['hub', 'drive', '--backend', 'ble'], '--backend ble needs --name or --address'),
    (['hub', 'drive', '--for', 'nan'], '--for nan: expected a finite number of seconds >= 0'),
    (['hub', 'drive', '--for', 'inf'], '--for inf: expected a finite number of seconds >= 0'),
    (['hub', 'drive', '--timeout', '-1'], '--timeout -1: expected a finite number of seconds >= 0.1'),
    (['hub', 'scan', '--backend', 'sim', '--timeout', 'nan'], '--timeout nan: expected a finite number'),
])
def test_drive_refuses_bad_arguments_with_one_line(argv, problem, capsys):
    assert main(argv) == 2
    assert problem in capsys.readouterr().err


def test_scan_sim_lists_the_virtual_hub(capsys):
    assert main(['hub', 'scan', '--backend', 'sim']) == 0
    assert 'Virtual City Hub' in capsys.readouterr().out


def test_drive_on_a_port_without_a_motor_fails_at_once_with_one_line(capsys):
    """The hub announces its devices when it connects: port B has none, so there is nothing to retry."""
    assert main(['hub', 'drive', '--port', 'B', '--for', '1']) == 2
    err = capsys.readouterr().err
    assert err.count('connected to Virtual City Hub') == 1  # one connection, no reconnect
    assert err.splitlines()[-1] == ('train-fou hub: error: hub not ready: no motor attached to port B of Virtual City '
                                    'Hub: the hub announced devices on A, 0x32, 0x3b, 0x3c only')
