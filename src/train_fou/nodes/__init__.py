"""Thin ROS 2 node classes over the pure logic, and the table that names them.

Each node lives in its own module and is constructed as `NodeClass(**node_kwargs)`
(`parameter_overrides`, `namespace`, ...). A node that has to leave hardware
safe (the hub brakes) implements `on_shutdown()`; the runner calls it before
the node is destroyed, on SIGINT, SIGTERM, SIGHUP and on an exception too.
"""
from __future__ import annotations

import importlib

from train_fou.nodes.errors import NodeError, ParameterError, UnknownNodeError

#: node executable name -> "module:Class". Plugin table, not an if-chain.
NODE_CLASSES: dict[str, str] = {
    'track_sim': 'train_fou.nodes.track_sim:TrackSim',
    'camera_node': 'train_fou.nodes.camera_node:CameraNode',
    'detector_node': 'train_fou.nodes.detector_node:DetectorNode',
    'bag_player': 'train_fou.nodes.bag_player:BagPlayer',
    'speed_controller': 'train_fou.nodes.speed_controller:SpeedControllerNode',
    'hub_node': 'train_fou.nodes.hub_node:HubNode',
    'foxglove_bridge': 'train_fou.nodes.foxglove_bridge:FoxgloveBridge',
    'metrics_exporter': 'train_fou.nodes.metrics_exporter:MetricsExporter',
}


def node_class(name: str):
    """Import and return the node class registered under `name`."""
    try:
        target = NODE_CLASSES[name]
    except KeyError:
        known = ', '.join(sorted(NODE_CLASSES)) or 'none'
        raise UnknownNodeError(f'unknown node `{name}`; known nodes: {known}') from None
    module_name, _, class_name = target.partition(':')
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def run_node(name: str, argv: list[str] | None = None) -> int:
    """Entry point of lib/train_fou/<name>: one node, ROS arguments from argv (ros2 run / launch)."""
    import sys

    from train_fou.dds import use_project_transport
    from train_fou.errors import is_user_error
    from train_fou.nodes.runner import run_composition
    use_project_transport()  # before rclpy.init: camera frames must cross processes (config/fastdds.xml)
    try:
        return run_composition([name], ros_args=list(sys.argv if argv is None else argv))
    except Exception as err:
        if not is_user_error(err):
            raise
        text = str(err)
        print(text if text.startswith(f'{name}:') else f'{name}: error: {text}', file=sys.stderr)
        return 2


__all__ = ['NODE_CLASSES', 'NodeError', 'ParameterError', 'UnknownNodeError', 'node_class', 'run_node']
