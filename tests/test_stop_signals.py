"""Every process that can drive a motor brakes on SIGTERM, SIGINT, SIGHUP and on an exception.

Each entry point runs on the sim hub with the LWP3 trace on, is signalled while
the motor has power, and must end with a brake as the last motor frame written,
acknowledged by the hub (`< 050082000a`) before the process exits.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers.waiting import LIVENESS_S, wait_until
from rclpy.node import Node

from train_fou import qos
from train_fou.executors import make_executor, spin_until
from train_fou.msg import SpeedCommand
from train_fou.paths import share_dir
from train_fou.stopping import STOP_SIGNALS, StopSignals

TRAIN_FOU = pathlib.Path(sys.executable).parent / 'train-fou'
#: A motor frame for port A: write direct mode data, mode 0, then the power byte (7f: brake).
MOTOR_A = '> 08008100115100'
ACK_A = '< 050082000a'
TRACE = 'hub_node:\n  ros__parameters:\n    trace: true\n'


def _motor_frames(text: str) -> list[str]:
    return [line[line.index(MOTOR_A) + len(MOTOR_A):] for line in text.splitlines() if MOTOR_A in line]


def _powered(log: pathlib.Path) -> bool:
    frames = _motor_frames(log.read_text())
    return bool(frames) and frames[-1] not in ('7f', '00')


def _signal_mid_drive(argv, signum, tmp_path, expected_code, **popen):
    """Start `argv`, wait until its last motor frame has power, send `signum`; return the log text."""
    log = tmp_path / 'out.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED='1'), **popen)
        try:
            assert wait_until(lambda: _powered(log) or proc.poll() is not None, LIVENESS_S * 3), log.read_text()
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signum)
            assert proc.wait(timeout=LIVENESS_S) == expected_code, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    frames = _motor_frames(text)
    assert frames[-1] == '7f', frames[-5:]                     # the last motor frame is a brake ...
    after_brake = text[text.rindex(MOTOR_A + '7f'):]
    assert ACK_A in after_brake, after_brake                  # ... that the hub acknowledged
    assert 'Traceback' not in text
    return text


@pytest.mark.parametrize(('signum', 'code'), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_hub_drive_brakes_and_waits_for_the_acknowledgement_on_every_stop_signal(signum, code, tmp_path):
    text = _signal_mid_drive([str(TRAIN_FOU), 'hub', 'drive', '--backend', 'sim', '--power', '30', '--for', '30',
                              '--trace'], signum, tmp_path, code)
    assert '> 080081001151001e' in text  # power 30 was on before the signal
    assert f'brake acknowledged (stopped by signal {int(signum)})' in text


class Controller(Node):
    """The speed controller's stand-in for the runner and the node executable: power 30 at 20 Hz."""

    def __init__(self, context):
        super().__init__('stop_signal_controller', context=context)
        pub = self.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
        self.create_timer(0.05, lambda: pub.publish(SpeedCommand(power=30, state=SpeedCommand.CRUISE)))


@pytest.fixture
def controller(ros_context):
    executor = make_executor(context=ros_context)
    node = Controller(ros_context)
    executor.add_node(node)
    stop = threading.Event()
    thread = threading.Thread(target=spin_until, args=(executor, stop, 0.05), daemon=True)
    thread.start()
    yield node
    stop.set()
    thread.join(5)
    executor.shutdown()
    node.destroy_node()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_train_fou_run_brakes_on_a_signal_while_the_motor_has_power(signum, controller, tmp_path):
    params = tmp_path / 'trace.yaml'
    params.write_text(TRACE)
    text = _signal_mid_drive([str(TRAIN_FOU), 'run', '--nodes', 'hub_node', '--params', str(params)],
                             signum, tmp_path, 0)
    assert 'shutdown: brake acknowledged, disconnected' in text


def test_a_node_executable_brakes_on_sighup_while_the_motor_has_power(controller, tmp_path):
    code = 'import sys; from train_fou.nodes import run_node; sys.exit(run_node("hub_node"))'
    text = _signal_mid_drive([sys.executable, '-c', code, '--ros-args', '-p', 'trace:=true'],
                             signal.SIGHUP, tmp_path, 0)
    assert 'shutdown: brake acknowledged, disconnected' in text


def test_replay_brakes_on_sigterm_while_the_motor_has_power(tmp_path):
    params = tmp_path / 'trace.yaml'
    params.write_text(TRACE)
    text = _signal_mid_drive([str(TRAIN_FOU), 'replay', str(share_dir() / 'bags' / 'cliff_danger.mcap'),
                              '--params', str(params)], signal.SIGTERM, tmp_path, 143)
    assert '"brake_acknowledged": true' in text  # the summary says so too


def test_sim_brakes_on_sigterm_while_the_motor_has_power(tmp_path):
    params = tmp_path / 'trace.yaml'
    params.write_text(TRACE)
    _signal_mid_drive([str(TRAIN_FOU), 'sim', '--oracle', '--params', str(params)], signal.SIGTERM, tmp_path, 143)


def test_the_runner_brakes_when_a_callback_raises(monkeypatch):
    """An exception leaves run_composition through the same path as a signal: the hub brakes first."""
    from train_fou import nodes
    from train_fou.nodes.runner import run_composition
    monkeypatch.setitem(nodes.NODE_CLASSES, 'crasher', 'helpers.crasher:CrashingController')
    started = []
    with pytest.raises(RuntimeError, match='a bug in a callback'):
        run_composition(['hub_node', 'crasher'], params={'hub_node': {'sim_log_orders': False}},
                        on_started=started.extend)
    hub = started[0]
    assert 'motor A power 30' in hub.virtual_hub.orders
    assert hub.virtual_hub.orders[-1] == 'motor A brake'
    assert hub.brake_acknowledged


def test_hub_drive_brakes_when_its_loop_raises(monkeypatch, capsys):
    from train_fou.cli import main
    from train_fou.hub import HubSession
    command = HubSession.command
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(args)
        if len(calls) > 3:
            raise RuntimeError('a bug in the drive loop')
        return command(self, *args, **kwargs)

    monkeypatch.setattr(HubSession, 'command', failing)
    with pytest.raises(RuntimeError, match='a bug in the drive loop'):
        main(['hub', 'drive', '--power', '30', '--for', '5', '--trace'])
    out = capsys.readouterr().out.splitlines()
    assert 'sim hub: motor A power 30' in out
    assert _motor_frames('\n'.join(out))[-1] == '7f' and out[-1] == ACK_A


@pytest.mark.parametrize('signum', STOP_SIGNALS)
def test_stop_signals_only_set_the_event_and_remember_the_first_signal(signum):
    previous = signal.getsignal(signum)
    with StopSignals() as stop:
        os.kill(os.getpid(), signum)
        assert wait_until(stop.is_set, 5.0)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while braking changes nothing
        time.sleep(0.05)
        assert stop.signum == signum and stop.exit_code(0) == 128 + signum
    assert signal.getsignal(signum) == previous
