"""The pipelines, once: which nodes each one runs and which parameter files they read.

Both ways of starting the train read this module: the launch files in
`launch/` (`ros2 launch train_fou train.launch.py` on the Jetson) turn
`launch_entries()` into `launch_ros` Node actions, and the composition runner
(`train-fou run/replay/sim`) merges `node_parameters()` into one executor. A
node's parameters are, in order (later wins, as in ROS): `config/<node>.yaml`,
the pipeline's fixed overrides, the user's parameter files, then the launch
arguments (model, hub address, ...). Pure Python: no rclpy, no launch_ros.

The ROS domain is part of a train's configuration: the launch argument
`domain_id`, else `ros_domain_id` in a parameter file (under `/**`, so every
node's file section sees the same value), else $ROS_DOMAIN_ID. On a shared
network every ROS 2 machine on the same domain is in the same graph and could
publish speed commands; two trains, or a train and a laptop, keep apart by
domain (see the README).

Monitoring (docs/monitoring.md) rides along with any pipeline: the launch
argument `foxglove_port` adds the foxglove_bridge node (the Foxglove live view)
and `metrics_port` the metrics_exporter node (Prometheus), each on that port;
empty or `off` leaves it out. A pipeline may default them (`defaults`): the
train serves metrics on 9464 and the live view on 8765, and the CLI
(`train-fou run/replay/sim`) passes `off` unless asked with --foxglove/--metrics.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping, Sequence

from train_fou.errors import TrainFouError


class PipelineError(TrainFouError):
    """An unknown pipeline or launch argument."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    nodes: tuple[str, ...]
    #: fixed parameters per node (e.g. the hub's backend), applied after config/<node>.yaml
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: launch arguments this pipeline accepts, beyond the common ones
    arguments: tuple[str, ...] = ()
    #: every node except the simulator runs on /clock (simulated time)
    sim_time: bool = False
    #: launch argument defaults of this pipeline, over ARGUMENTS' own
    defaults: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str
    #: (node, parameter) the argument sets when not empty; None for namespace/params_file
    target: tuple[str, str] | None = None
    kind: type = str


#: Launch arguments, shared by the launch files and the CLI. An empty value keeps
#: the parameter from the files.
ARGUMENTS: dict[str, Argument] = {a.name: a for a in (
    Argument('namespace', '', 'namespace for every node (moves all relative topics)'),
    Argument('domain_id', '', 'ROS_DOMAIN_ID of this train (0-232); empty: `ros_domain_id` from the parameter '
             'files, else the environment'),
    Argument('params_file', '', 'extra ROS 2 parameter file applied after config/<node>.yaml'),
    Argument('model', '', 'detector model (.onnx or .engine); empty: config/detector_node.yaml',
             ('detector_node', 'model_path')),
    Argument('hub_address', '', 'Bluetooth address of the LEGO hub to connect to',
             ('hub_node', 'hub_address')),
    Argument('hub_name', '', 'advertised name of the LEGO hub to connect to', ('hub_node', 'hub_name')),
    Argument('bag', '', 'bag to replay (rosbag2 directory, .mcap or .db3)', ('bag_player', 'bag_path')),
    Argument('topic', '', 'image topic in the bag; empty: its first image topic', ('bag_player', 'topic')),
    Argument('rate', '', 'replay rate (1.0 = recorded speed, 0 = as fast as the detector answers)',
             ('bag_player', 'rate'), float),
    Argument('scenario', '', 'simulator scenario YAML; empty: config/scenarios/default.yaml',
             ('track_sim', 'scenario')),
    Argument('seed', '', 'simulator seed', ('track_sim', 'seed'), int),
    Argument('foxglove_port', '', 'Foxglove live view (foxglove_bridge) on this WebSocket port; empty or off: none',
             ('foxglove_bridge', 'port'), int),
    Argument('metrics_port', '', 'Prometheus metrics (metrics_exporter) on this HTTP port; empty or off: none',
             ('metrics_exporter', 'port'), int),
)}

COMMON_ARGUMENTS = ('namespace', 'domain_id', 'params_file', 'model', 'foxglove_port', 'metrics_port')
#: launch argument -> the monitoring node it adds to any pipeline when set (not empty, not `off`).
MONITORING = {'foxglove_port': 'foxglove_bridge', 'metrics_port': 'metrics_exporter'}
#: Values of a monitoring argument that leave its node out.
OFF = ('', 'off')
#: Nodes that watch the camera and must listen where the detector listens (a bag decides raw/compressed).
CAMERA_WATCHERS = ('foxglove_bridge',)
#: The parameter-file key (under `/**`) that sets the train's ROS domain.
DOMAIN_PARAMETER = 'ros_domain_id'
#: Highest ROS domain id Fast DDS can map to ports (ROS 2 documents 0-101 as safe on Linux, 0-232 usable).
MAX_DOMAIN_ID = 232

#: The simulated hub in the closed loop. Its dead-man counts wall time, and in
#: lockstep the world (and the controller) may pause longer than 0.5 s of wall
#: time between two frames on a busy machine: that pause must not brake the train.
SIM_HUB = {'backend': 'sim', 'deadman_timeout_s': 5.0}

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline('train', 'on the train: USB camera, detector, speed controller, LEGO hub over BLE',
             ('camera_node', 'detector_node', 'speed_controller', 'hub_node'),
             overrides={'hub_node': {'backend': 'ble'}},
             arguments=('hub_address', 'hub_name'),
             # the camera is subscribed only while a viewer watches: an idle live view costs nothing
             defaults={'foxglove_port': '8765', 'metrics_port': '9464'}),
    Pipeline('replay', 'a bag as the camera, the whole pipeline, a simulated hub',
             ('bag_player', 'detector_node', 'speed_controller', 'hub_node'),
             overrides={'hub_node': {'backend': 'sim'}},
             arguments=('bag', 'topic', 'rate')),
    Pipeline('sim', 'the closed-loop virtual track drives the pipeline on simulated time',
             ('track_sim', 'detector_node', 'speed_controller', 'hub_node'),
             overrides={'hub_node': SIM_HUB, 'track_sim': {'lockstep': True}},
             arguments=('scenario', 'seed'), sim_time=True),
    Pipeline('sim-oracle', 'the virtual track with a perfect detector (true boxes): policy and dynamics only',
             ('track_sim', 'speed_controller', 'hub_node'),
             overrides={'hub_node': SIM_HUB, 'track_sim': {'lockstep': True, 'oracle': True}},
             arguments=('scenario', 'seed'), sim_time=True),
    Pipeline('core', 'detector, controller and hub, fed by any camera/image_raw publisher',
             ('detector_node', 'speed_controller', 'hub_node')),
)}

#: The node that publishes /clock in a sim_time pipeline (it runs on wall time itself).
CLOCK_NODE = 'track_sim'
#: Nodes on wall time in a sim_time pipeline: the clock, and the monitoring nodes (a viewer's time).
WALL_TIME_NODES = (CLOCK_NODE, *MONITORING.values())


def pipeline(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise PipelineError(f'unknown pipeline `{name}`; known: {", ".join(PIPELINES)}') from None


def argument_default(p: Pipeline, name: str) -> str:
    """The default of launch argument `name` in pipeline `p`."""
    return p.defaults.get(name, ARGUMENTS[name].default)


def _with_defaults(p: Pipeline, args: Mapping[str, str] | None) -> dict[str, str]:
    values = {name: argument_default(p, name) for name in p.defaults}
    values.update(args or {})
    return values


def monitoring_enabled(value) -> bool:
    """A monitoring argument's value starts its node (a port), unless empty or `off`."""
    return value is not None and str(value).strip().lower() not in OFF


def pipeline_nodes(name: str, args: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The nodes pipeline `name` starts with launch arguments `args`: its own, then the monitoring
    nodes whose argument (or the pipeline's default for it) is set."""
    p = pipeline(name)
    values = _with_defaults(p, args)
    return p.nodes + tuple(node for arg, node in MONITORING.items() if monitoring_enabled(values.get(arg)))


def config_file(node: str, share: pathlib.Path | None = None) -> pathlib.Path:
    """config/<node>.yaml in the package's share directory."""
    if share is None:
        from train_fou.paths import share_dir
        share = share_dir()
    return share / 'config' / f'{node}.yaml'


def fixed_parameters(p: Pipeline, node: str) -> dict[str, Any]:
    """The pipeline's own overrides for `node`, use_sim_time included."""
    values = dict(p.overrides.get(node, {}))
    if p.sim_time and node not in WALL_TIME_NODES:
        values['use_sim_time'] = True
    return values


def argument_parameters(p: Pipeline, node: str, args: Mapping[str, str]) -> dict[str, Any]:
    """Parameters that non-empty launch arguments set on `node`."""
    allowed = set(COMMON_ARGUMENTS) | set(p.arguments)
    values: dict[str, Any] = {}
    for name, raw in args.items():
        if name not in ARGUMENTS:
            raise PipelineError(f'unknown argument `{name}`; known: {", ".join(ARGUMENTS)}')
        arg = ARGUMENTS[name]
        if raw in ('', None) or arg.target is None or arg.target[0] != node or name not in allowed:
            continue
        if name in MONITORING and not monitoring_enabled(raw):
            continue
        try:
            values[arg.target[1]] = arg.kind(raw)
        except ValueError as err:
            raise PipelineError(f'argument `{name}`: {raw!r} is not a {arg.kind.__name__}') from err
    return values


@dataclass(frozen=True)
class LaunchEntry:
    """One node as a launch file starts it: executable, name and its `parameters=` list."""
    executable: str
    name: str
    parameters: tuple[Any, ...]   #: parameter file paths (str) and dicts, in order


def _layers(p: Pipeline, node: str, args: Mapping[str, str], files: Sequence[str],
            share: pathlib.Path | None) -> list[Any]:
    """Parameter sources of `node`, lowest precedence first: paths (str) and dicts."""
    layers: list[Any] = []
    default = config_file(node, share)
    if default.is_file():
        layers.append(str(default))
    fixed = fixed_parameters(p, node)
    if fixed:
        layers.append(fixed)
    layers.extend(str(f) for f in files)
    from_args = argument_parameters(p, node, args)
    if from_args:
        layers.append(from_args)
    if node == 'detector_node' and 'bag_player' in p.nodes:
        transport = bag_transport(_merge(_layers(p, 'bag_player', args, files, share), 'bag_player'))
        if transport is not None:
            layers.append({'input_transport': transport})
    if node in CAMERA_WATCHERS and 'detector_node' in p.nodes:
        # shows the frames the detector sees, from the topic it listens to
        transport = _merge(_layers(p, 'detector_node', args, files, share), 'detector_node').get('input_transport')
        if transport is not None:
            layers.append({'input_transport': transport})
    return layers


def _merge(layers: Sequence[Any], node: str, loaded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of `node` that `layers` (paths and dicts, lowest first) give it.

    `loaded` caches parsed files across calls (one parameter file serves every node).
    """
    from train_fou.params import load_params_file, params_for_node
    loaded = {} if loaded is None else loaded
    values: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, Mapping):
            values.update(layer)
        else:
            if layer not in loaded:
                loaded[layer] = load_params_file(layer)
            values.update(params_for_node([loaded[layer]], node))
    return values


def bag_transport(player: Mapping[str, Any]) -> str | None:
    """raw or compressed: what the bag player will publish, so the detector listens there.

    The bag decides (a detector on camera/image_raw never sees a compressed bag's
    frames). None when the bag cannot be read: the player reports that itself.
    """
    from train_fou.vision.errors import BagError
    from train_fou.vision.image_bag import ImageBag
    try:
        with ImageBag(player.get('bag_path', ''), player.get('topic', ''),
                      player.get('message_type', 'auto')) as bag:
            return bag.kind
    except (BagError, ValueError):
        return None


def _user_files(args: Mapping[str, str], extra_files: Sequence[str | pathlib.Path]) -> list[str]:
    files = [str(args['params_file'])] if args.get('params_file') else []
    return files + [str(f) for f in extra_files]


def launch_entries(name: str, args: Mapping[str, str] | None = None,
                   share: pathlib.Path | None = None) -> list[LaunchEntry]:
    """What `ros2 launch train_fou <name>.launch.py` starts, in launch_ros terms."""
    p = pipeline(name)
    args = _with_defaults(p, args)
    files = _user_files(args, ())
    return [LaunchEntry(executable=node, name=node, parameters=tuple(_layers(p, node, args, files, share)))
            for node in pipeline_nodes(name, args)]


def node_parameters(name: str, args: Mapping[str, str] | None = None,
                    extra_files: Sequence[str | pathlib.Path] = (),
                    share: pathlib.Path | None = None) -> dict[str, dict[str, Any]]:
    """{node: {parameter: value}} for the composition runner, merged as launch_ros merges."""
    p = pipeline(name)
    args = _with_defaults(p, args)
    files = _user_files(args, extra_files)
    loaded: dict[str, Any] = {}
    return {node: _merge(_layers(p, node, args, files, share), node, loaded) for node in pipeline_nodes(name, args)}


def checked_domain_id(value: Any, source: str) -> int:
    """`value` as a ROS domain id (0..MAX_DOMAIN_ID); PipelineError naming `source` otherwise."""
    try:
        domain = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        domain = None
    if domain is None or not 0 <= domain <= MAX_DOMAIN_ID:
        raise PipelineError(f'{source} = {value!r}: expected a ROS domain id, an integer from 0 to {MAX_DOMAIN_ID}')
    return domain


def domain_id(params: Mapping[str, Mapping[str, Any]], argument: str | None = None) -> int | None:
    """The train's ROS domain: `argument` (a launch argument), else `ros_domain_id` in the nodes' merged
    parameters (`node_parameters()`), else None (rclpy then reads $ROS_DOMAIN_ID)."""
    if argument not in (None, ''):
        return checked_domain_id(argument, 'domain_id')
    for node, values in params.items():
        if DOMAIN_PARAMETER in values:
            return checked_domain_id(values[DOMAIN_PARAMETER], f'{DOMAIN_PARAMETER} (parameters of {node})')
    return None


def launch_description(name: str):
    """The launch_ros LaunchDescription of pipeline `name` (used by launch/<name>.launch.py).

    Arguments are declared from ARGUMENTS; the nodes are built at launch time
    from `launch_entries()`, so ros2 launch and the runner start the same thing.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    p = pipeline(name)
    names = COMMON_ARGUMENTS + p.arguments
    declared = [DeclareLaunchArgument(n, default_value=argument_default(p, n),
                                      description=ARGUMENTS[n].description) for n in names]

    def nodes(context, *_args, **_kwargs):
        from launch_ros.actions import Node
        values = {n: context.launch_configurations.get(n, argument_default(p, n)) for n in names}
        domain = domain_id(node_parameters(name, values), values['domain_id'])
        env = {'ROS_DOMAIN_ID': str(domain)} if domain is not None else None
        return [Node(package='train_fou', executable=e.executable, name=e.name,
                     namespace=values['namespace'], parameters=list(e.parameters), output='screen',
                     additional_env=env)
                for e in launch_entries(name, values)]

    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])
