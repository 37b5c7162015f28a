"""Nodes under test on the executor kind the project ships (train_fou.executors), in a thread.

One shape for every node test that spins real nodes over real DDS: `add(*nodes)` puts nodes on the
executor and starts its thread on the first call; `close()` stops the thread, shuts the executor
down and destroys the nodes (newest first, `runner.destroy_nodes`; with `shutdown_hooks` their
on_shutdown() first, as `train-fou run` does), in the order the test asks for (a hub node is
destroyed before the executor stops: its shutdown brake needs no executor).
"""
from __future__ import annotations

import threading

from train_fou.executors import make_executor, spin_until
from train_fou.nodes.runner import destroy_nodes


class Spinner:
    def __init__(self, context, timeout_sec: float | None = None, destroy_first: bool = False,
                 shutdown_hooks: bool = False):
        self.executor = make_executor(context=context)
        self.nodes: list = []
        self._stop = threading.Event()
        args = (self.executor, self._stop) if timeout_sec is None else (self.executor, self._stop, timeout_sec)
        self._thread = threading.Thread(target=spin_until, args=args, daemon=True)
        self._destroy_first = destroy_first
        self._hooks = shutdown_hooks

    def add(self, *nodes) -> None:
        for node in nodes:
            self.executor.add_node(node)
            self.nodes.append(node)
        if not self._thread.is_alive():
            self._thread.start()

    __call__ = add

    def close(self, join_s: float = 10.0) -> None:
        if self._destroy_first:
            self._destroy()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(join_s)
        self.executor.shutdown()
        if not self._destroy_first:
            self._destroy()

    def _destroy(self) -> None:
        destroy_nodes(self.nodes, hooks=self._hooks)
        self.nodes.clear()
