"""Run node classes in one process on one executor (train_fou.executors) and stop
them safely.

This is `ros2 launch` for machines without launch_ros: `train-fou run` and the
per-node executables go through here. SIGINT, SIGTERM and SIGHUP only set an
event (train_fou.stopping); the main thread then calls every node's
`on_shutdown()` (the hub brakes and waits for the acknowledgement) while the
executor still spins, destroys the nodes and shuts rclpy down. An exception
(a node that refuses to start, a callback that raises) leaves the same way.
"""
from __future__ import annotations

import logging
import threading
from typing import Any
from collections.abc import Callable, Iterable, Sequence

import rclpy
from rclpy.signals import SignalHandlerOptions
from rclpy.parameter import Parameter

from train_fou.executors import executor_kind as check_executor_kind
from train_fou.executors import make_executor, spin_until
from train_fou.nodes import ParameterError, node_class
from train_fou.nodes.parameters import shown
from train_fou.stopping import StopSignals

log = logging.getLogger('train_fou.runner')


def build_parameters(values: dict[str, Any], node: str = '') -> list[Parameter]:
    """Parameter overrides from plain values (lists of ints/floats/strings included).

    A value no ROS parameter can hold (a mapping, a list of mixed types, null) is a
    ParameterError naming the node and the parameter.
    """
    parameters = []
    for name, value in values.items():
        try:
            if value is None:
                raise TypeError('null')
            parameters.append(Parameter(name, value=value))
        except TypeError:
            raise ParameterError(f'{node or "node"}: parameter {name} = {shown(value)}: expected a bool, an '
                                 'integer, a number, a string, or a list of one of these') from None
    return parameters


def create_nodes(names: Sequence[str], params: dict[str, dict[str, Any]] | None = None,
                 namespace: str = '', context=None) -> list:
    """Construct the named node classes with their parameters and namespace."""
    nodes = []
    try:
        for name in names:
            cls = node_class(name)
            kwargs: dict[str, Any] = {'namespace': namespace}
            if context is not None:
                kwargs['context'] = context
            overrides = (params or {}).get(name)
            if overrides:
                kwargs['parameter_overrides'] = build_parameters(overrides, name)
            nodes.append(cls(**kwargs))
    except BaseException:
        destroy_nodes(nodes)
        raise
    return nodes


def run_shutdown_hooks(nodes: Iterable) -> None:
    """on_shutdown() of each node that has one, newest first, never raising."""
    for node in reversed(list(nodes)):
        hook = getattr(node, 'on_shutdown', None)
        if hook is not None:
            try:
                hook()
            except Exception as err:  # keep going: every node must get its turn
                log.error('%s: on_shutdown failed: %s', node.get_name(), err)


def destroy_nodes(nodes: Iterable, hooks: bool = True) -> None:
    """on_shutdown() (unless `hooks` is False: already run) then destroy_node() for each node, newest
    first, never raising. Call it while no executor spins these nodes: a callback running on a node
    that is being destroyed fails on its destroyed handles."""
    nodes = list(nodes)
    if hooks:
        run_shutdown_hooks(nodes)
    for node in reversed(nodes):
        try:
            node.destroy_node()
        except Exception as err:
            log.error('%s: destroy failed: %s', node.get_name(), err)


def run_composition(names: Sequence[str], params: dict[str, dict[str, Any]] | None = None,
                    namespace: str = '', ros_args: list[str] | None = None,
                    stop: threading.Event | None = None,
                    on_started: Callable[[list], None] | None = None,
                    num_threads: int | None = None, executor_kind: str | None = None,
                    domain_id: int | None = None) -> int:
    """Start `names` in this process, spin until SIGINT/SIGTERM/SIGHUP (or `stop`), shut down cleanly.

    `domain_id`: the ROS domain (None: $ROS_DOMAIN_ID, else 0).
    """
    executor_kind = check_executor_kind(executor_kind)  # a bad $TRAIN_FOU_EXECUTOR: one line, before init
    signals = StopSignals(stop).install()
    stop = signals.event
    try:
        rclpy.init(args=ros_args, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    except BaseException:
        signals.restore()
        raise
    nodes: list = []
    executor = make_executor(executor_kind, num_threads=num_threads)
    try:
        nodes = create_nodes(names, params, namespace)
        for node in nodes:
            executor.add_node(node)
        if on_started is not None:
            on_started(nodes)
        spin_until(executor, stop)
        return 0
    finally:
        # Let hooks publish/brake while the executor can still serve callbacks; destroy the nodes
        # only once it has stopped, so that no callback runs on a node being destroyed.
        hooks_done = threading.Event()
        worker = threading.Thread(target=lambda: (run_shutdown_hooks(nodes), hooks_done.set()), daemon=True)
        worker.start()
        while not hooks_done.is_set():
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        destroy_nodes(nodes, hooks=False)
        if rclpy.ok():
            rclpy.shutdown()
        signals.restore()
