"""`train-fou run`: the composition runner (what `ros2 launch` does on the Jetson)."""
from __future__ import annotations

import argparse
import json
import pathlib

HELP = 'run pipeline nodes in one process (one executor) until Ctrl-C, SIGTERM or SIGHUP'

#: What `train-fou run` starts without --nodes: the bag/sim-free pipeline core.
DEFAULT_NODES = ('detector_node', 'speed_controller', 'hub_node')
#: Pipelines (train_fou.pipelines, the table the launch files read): train, replay, sim, ...
PIPELINE_NAMES = ('train', 'replay', 'sim', 'sim-oracle', 'core')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--nodes', default=','.join(DEFAULT_NODES),
                        help='comma-separated node names (default: %(default)s)')
    parser.add_argument('--params', action='append', type=pathlib.Path, default=[],
                        metavar='YAML', help='extra ROS 2 parameter file, applied after config/<node>.yaml; repeatable')
    parser.add_argument('--namespace', default='', help='namespace for every node (moves all topics)')
    add_domain_argument(parser)
    parser.add_argument('--list', action='store_true', help='list the known nodes and exit')
    add_executor_argument(parser)
    parser.add_argument('--pipeline', choices=PIPELINE_NAMES, default=None,
                        help='start a whole pipeline as its launch file does (nodes, parameter files, '
                             'overrides from train_fou.pipelines); replaces --nodes')
    add_monitoring_arguments(parser)


#: --foxglove without a port: Foxglove's default WebSocket port.
FOXGLOVE_PORT = 8765


def add_monitoring_arguments(parser: argparse.ArgumentParser) -> None:
    """--foxglove [PORT] and --metrics PORT (docs/monitoring.md); both off unless given."""
    parser.add_argument('--foxglove', type=int, nargs='?', const=FOXGLOVE_PORT, default=None, metavar='PORT',
                        help=f'serve a Foxglove live view (camera, detections, speed, hub, diagnostics) on '
                             f'ws://0.0.0.0:PORT (default PORT: {FOXGLOVE_PORT}; config/foxglove_bridge.yaml); '
                             'after any positional argument, or as --foxglove=PORT')
    parser.add_argument('--metrics', type=int, default=None, metavar='PORT',
                        help='serve Prometheus metrics on http://0.0.0.0:PORT/metrics '
                             '(config/metrics_exporter.yaml)')


def monitoring_arguments(args: argparse.Namespace) -> dict[str, str]:
    """The pipelines' launch arguments for --foxglove and --metrics: a port, or off."""
    from train_fou.cli import CliError
    values = {}
    for option, argument in (('foxglove', 'foxglove_port'), ('metrics', 'metrics_port')):
        port = getattr(args, option, None)
        if port is not None and not 0 <= port <= 65535:
            raise CliError(f'--{option} {port}: expected a port from 0 to 65535 (0: any free port)')
        values[argument] = 'off' if port is None else str(port)
    return values


def add_executor_argument(parser: argparse.ArgumentParser) -> None:
    from train_fou.executors import EXECUTOR_ENV, EXECUTORS
    parser.add_argument('--executor', choices=EXECUTORS, default=None,
                        help=f'rclpy executor: events (C++, the default), single or multi (Python); '
                             f'default: ${EXECUTOR_ENV} or events')


def add_domain_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--domain-id', default='', metavar='N',
                        help='ROS_DOMAIN_ID of this train (0-232); default: `ros_domain_id` under `/**` in the '
                             'parameter files, else $ROS_DOMAIN_ID')


def load_node_params(names, extra_files) -> dict:
    """config/<node>.yaml of each node, then every --params file, merged per node."""
    from train_fou.params import load_params_file, params_for_node
    from train_fou.paths import config_path

    files = []
    for name in names:
        default_file = config_path(f'{name}.yaml')
        if default_file.is_file():
            files.append(load_params_file(default_file))
    files.extend(load_params_file(path) for path in extra_files)
    return {name: params_for_node(files, name) for name in names}


def _monitoring_nodes(monitoring: dict[str, str]) -> list[str]:
    from train_fou.pipelines import MONITORING, monitoring_enabled
    return [node for argument, node in MONITORING.items() if monitoring_enabled(monitoring[argument])]


def _set_monitoring_ports(params: dict, monitoring: dict[str, str]) -> None:
    """--foxglove/--metrics ports over the nodes' files; the live view watches what the detector watches."""
    from train_fou.pipelines import MONITORING, monitoring_enabled
    for argument, node in MONITORING.items():
        if monitoring_enabled(monitoring[argument]):
            params[node]['port'] = int(monitoring[argument])
    transport = params.get('detector_node', {}).get('input_transport')
    if 'foxglove_bridge' in params and transport is not None:
        params['foxglove_bridge']['input_transport'] = transport


def run(args: argparse.Namespace) -> int:
    from train_fou.cli import CliError
    from train_fou.nodes import NODE_CLASSES, UnknownNodeError

    if args.list:
        print('\n'.join(sorted(NODE_CLASSES)))
        return 0
    monitoring = monitoring_arguments(args)
    if args.pipeline:
        from train_fou import pipelines
        launch_args = {'namespace': args.namespace, **monitoring}
        names = list(pipelines.pipeline_nodes(args.pipeline, launch_args))
        params = pipelines.node_parameters(args.pipeline, launch_args, args.params)
    else:
        names = [name.strip() for name in args.nodes.split(',') if name.strip()]
        names += [node for node in _monitoring_nodes(monitoring) if node not in names]
        params = load_node_params(names, args.params)
        _set_monitoring_ports(params, monitoring)
    unknown = [name for name in names if name not in NODE_CLASSES]
    if unknown:
        raise CliError(f'unknown node(s) {", ".join(unknown)}; known: {", ".join(sorted(NODE_CLASSES)) or "none"}')

    from train_fou.nodes.runner import run_composition
    from train_fou.pipelines import domain_id
    domain = domain_id(params, args.domain_id)

    def started(nodes) -> None:
        print(json.dumps({'event': 'started', 'nodes': [n.get_fully_qualified_name() for n in nodes]}), flush=True)

    try:
        code = run_composition(names, params=params, namespace=args.namespace, on_started=started,
                               executor_kind=args.executor, domain_id=domain)
    except UnknownNodeError as err:
        raise CliError(str(err)) from err
    print(json.dumps({'event': 'stopped', 'nodes': names}), flush=True)
    return code

