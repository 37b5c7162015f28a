"""The composition runner starts nodes with their parameters and stops cleanly on signals."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from helpers.waiting import wait_until
from train_fou.executors import EXECUTOR_ENV, EXECUTORS, ExecutorChoiceError, executor_kind, make_executor
from train_fou.qos import RELIABLE

TESTS_DIR = pathlib.Path(__file__).parent


def _env(kind):
    env = {k: v for k, v in os.environ.items() if k != EXECUTOR_ENV}
    return env if kind is None else dict(env, **{EXECUTOR_ENV: kind})


@pytest.mark.parametrize('signum, kind', [(signal.SIGINT, None), (signal.SIGTERM, None),
                                          (signal.SIGTERM, 'single'), (signal.SIGTERM, 'multi')])
def test_runner_applies_parameters_and_calls_on_shutdown_on_signal(tmp_path, ros_context, signum, kind):
    """On each executor (None: the default, events): parameters in, timer runs, on_shutdown on the signal."""
    marker = tmp_path / 'shutdown.txt'
    process = subprocess.Popen(
        [sys.executable, '-m', 'helpers.probe_node', 'bonjour', str(marker)], cwd=TESTS_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(kind))
    node = rclpy.create_node('runner_probe_listener', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    greetings = []
    node.create_subscription(String, 'probe/greeting', lambda m: greetings.append(m.data), RELIABLE)
    try:
        assert process.stdout.readline().strip() == 'started', process.stderr.read()
        assert wait_until(lambda: greetings, 15.0, spin=lambda s: executor.spin_once(timeout_sec=s))
        assert greetings[-1] == 'bonjour'
        process.send_signal(signum)
        assert process.wait(timeout=15) == 0, process.stderr.read()
        assert marker.read_text() == 'on_shutdown called\n'
    finally:
        if process.poll() is None:
            process.kill()
        executor.shutdown()
        node.destroy_node()


@pytest.mark.parametrize('argument, env, expected', [
    (None, None, 'events'),
    (None, 'single', 'single'),
    (None, ' multi ', 'multi'),
    (None, '', 'events'),
    ('single', 'multi', 'single'),  # the explicit choice wins over the variable
    ('events', 'single', 'events'),
])
def test_executor_kind_comes_from_the_argument_then_the_variable_then_events(monkeypatch, argument, env, expected):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(EXECUTOR_ENV, env)
    assert executor_kind(argument) == expected


@pytest.mark.parametrize('argument, env, message', [
    ('fast', None, "executor='fast': expected one of events, single, multi"),
    (None, 'Events', f"${EXECUTOR_ENV}='Events': expected one of events, single, multi"),
])
def test_an_unknown_executor_kind_names_the_value_and_where_it_came_from(monkeypatch, argument, env, message):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(EXECUTOR_ENV, env)
    with pytest.raises(ExecutorChoiceError) as caught:
        executor_kind(argument)
    assert str(caught.value) == message


@pytest.mark.parametrize('kind', EXECUTORS)
def test_every_executor_kind_delivers_a_message(ros_context, kind, capsys):
    """capsys: sys.stderr has no file descriptor, which the events executor's constructor needs."""
    executor = make_executor(kind, context=ros_context)
    node = rclpy.create_node(f'executor_probe_{kind}', context=ros_context)
    try:
        executor.add_node(node)
        received = []
        node.create_subscription(String, 'executor_probe', lambda m: received.append(m.data), RELIABLE)
        publisher = node.create_publisher(String, 'executor_probe', RELIABLE)
        node.create_timer(0.02, lambda: publisher.publish(String(data=kind)))
        assert wait_until(lambda: received, 10.0, spin=lambda s: executor.spin_once(timeout_sec=s))
        assert received[0] == kind
    finally:
        executor.shutdown()
        node.destroy_node()


@pytest.mark.parametrize('how', ['spin_until', 'spin', 'rclpy.spin'])
@pytest.mark.parametrize('kind', EXECUTORS)
def test_messages_published_from_a_worker_thread_reach_a_subscription_in_the_same_process(kind, how):
    """The nodes publish from their own threads (camera, bag, inference, BLE) while the executor spins.

    Every way to spin, because rclpy 9.1's own EventsExecutor runs nothing and deadlocks the
    publisher when it waits without a timeout (executors.py). In a child process, so a deadlock
    fails by timeout (the stuck publisher holds the GIL).
    """
    try:
        done = subprocess.run([sys.executable, str(TESTS_DIR / 'helpers' / 'thread_publish_probe.py'), kind, how],
                              capture_output=True, text=True, timeout=90, env=_env(None))
    except subprocess.TimeoutExpired:
        pytest.fail(f'{kind} executor, {how}: publishing from a worker thread hung (the executor deadlocked)')
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # keep-last queues (10 reliable, 5 sensor) drop some while a slow executor catches up (the
    # multi-threaded one under rclpy.spin loses up to 30 % here); what this guards against is a
    # publish that never returns, or messages that never arrive
    assert result['received']['reliable'] >= 0.5 * result['published'], result
    assert result['received']['sensor'] >= 0.25 * result['published'], result
    assert result['slowest_publish_s'] < 1.0, result
    assert result['timer_ticks'] >= 10, result  # 50 Hz for over a second


def test_the_events_executor_completes_futures_without_a_timeout_and_honours_one(ros_context, capsys):
    """spin_until_future_complete on make_executor('events'): rclpy's own never returns without a timeout."""
    from rclpy.task import Future
    executor = make_executor('events', context=ros_context)
    node = rclpy.create_node('future_probe', context=ros_context)
    try:
        executor.add_node(node)
        ticks, done = [], Future()

        def tick():
            ticks.append(1)
            if len(ticks) == 5:
                done.set_result(5)
        node.create_timer(0.02, tick)
        executor.spin_until_future_complete(done)  # no timeout
        assert done.result() == 5
        never = Future()
        start = time.monotonic()
        executor.spin_until_future_complete(never, timeout_sec=0.3)
        assert not never.done() and 0.25 < time.monotonic() - start < 5.0
        executor.spin_until_future_complete(never, timeout_sec=0)  # one look, no wait
        assert not never.done()
    finally:
        executor.shutdown()
        node.destroy_node()


def test_a_node_executable_refuses_an_unknown_executor_with_one_line():
    """...and has pointed Fast DDS at the project's profile first (full-size frames between processes)."""
    from train_fou.dds import PROFILE_ENV, USER_CHOICES
    from train_fou.paths import config_path
    code = ('import os, sys; from train_fou.nodes import run_node; code = run_node("speed_controller", []); '
            f'print(os.environ.get("{PROFILE_ENV}")); sys.exit(code)')
    env = {k: v for k, v in _env('fastest').items() if k not in USER_CHOICES}
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stdout.strip() == str(config_path('fastdds.xml'))
    assert done.stderr.strip() == (f"speed_controller: error: ${EXECUTOR_ENV}='fastest': "
                                   'expected one of events, single, multi')


def test_without_an_events_executor_the_events_kind_falls_back_to_single(monkeypatch, caplog):
    """Humble's rclpy has no EventsExecutor: the node executables must still start."""
    from train_fou import executors
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    monkeypatch.setattr(executors, 'events_available', lambda: False)
    monkeypatch.setattr(executors, '_warned_no_events', False)
    assert executor_kind() == 'single' and executor_kind('events') == 'single'
    assert executor_kind('multi') == 'multi'
    assert [r.getMessage() for r in caplog.records].count(
        'this rclpy has no EventsExecutor (ROS 2 Kilted and later): using the single-threaded executor') == 1


def test_the_runner_starts_its_nodes_on_the_domain_it_is_given():
    import threading

    from train_fou.nodes.runner import run_composition
    stop, seen = threading.Event(), []

    def started(nodes):
        seen.extend(n.context.get_domain_id() for n in nodes)
        stop.set()
    assert run_composition(['speed_controller'], domain_id=211, stop=stop, on_started=started) == 0
    assert seen == [211]
