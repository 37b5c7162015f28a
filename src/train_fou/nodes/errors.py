"""Errors of train_fou.nodes: a node that cannot start says why in one line."""
from __future__ import annotations

from train_fou.errors import TrainFouError


class NodeError(TrainFouError):
    """Base class of the errors the nodes and the runner raise."""


class UnknownNodeError(NodeError):
    """A node name that is not in NODE_CLASSES."""


class ParameterError(NodeError):
    """A parameter of the wrong type, out of its range, NaN or infinite, or not one of its choices.

    The message names the node, the parameter, the value and what is allowed; the node
    refuses to start.
    """
