"""The launch files and the composition runner start the same nodes with the same parameters.

launch_ros is not installable here, so the launch files are executed against a
recording double of `launch` / `launch_ros`: what each `Node(...)` receives is
compared with `train_fou.pipelines`, the table the runner reads.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import pytest
import yaml

from train_fou import pipelines
from train_fou.nodes import NODE_CLASSES
from train_fou.params import load_params_file, params_for_node
from train_fou.paths import share_dir

LAUNCH_FILES = {'train': 'train.launch.py', 'replay': 'replay.launch.py', 'sim': 'sim.launch.py'}


class _Recorder:
    def __init__(self, kind):
        self.kind = kind

    def __call__(self, *args, **kwargs):
        return types.SimpleNamespace(kind=self.kind, args=args, kwargs=kwargs)


@pytest.fixture
def fake_launch(monkeypatch):
    launch = types.ModuleType('launch')
    launch.LaunchDescription = lambda entities: types.SimpleNamespace(entities=list(entities))
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = _Recorder('argument')
    actions.OpaqueFunction = _Recorder('opaque')
    launch.actions = actions
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = _Recorder('node')
    launch_ros.actions = ros_actions
    for name, module in (('launch', launch), ('launch.actions', actions), ('launch_ros', launch_ros),
                         ('launch_ros.actions', ros_actions)):
        monkeypatch.setitem(sys.modules, name, module)


def load_launch_module(pipeline: str):
    path = share_dir() / 'launch' / LAUNCH_FILES[pipeline]
    spec = importlib.util.spec_from_file_location(f'launch_{pipeline}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launched_nodes(pipeline: str, configurations: dict[str, str]):
    description = load_launch_module(pipeline).generate_launch_description()
    declared = {e.args[0]: e.kwargs['default_value'] for e in description.entities if e.kind == 'argument'}
    [opaque] = [e for e in description.entities if e.kind == 'opaque']
    context = types.SimpleNamespace(launch_configurations={**declared, **configurations})
    return declared, opaque.kwargs['function'](context)


def merge_like_launch_ros(node_name: str, parameters) -> dict:
    values: dict = {}
    for layer in parameters:
        if isinstance(layer, dict):
            values.update(layer)
        else:
            values.update(params_for_node([load_params_file(layer)], node_name))
    return values


@pytest.mark.parametrize('pipeline', sorted(LAUNCH_FILES))
def test_launch_file_imports_without_launch_ros_and_names_its_pipeline(pipeline):
    module = load_launch_module(pipeline)
    assert module.PIPELINE == pipeline


@pytest.mark.parametrize('pipeline', sorted(LAUNCH_FILES))
def test_launch_file_starts_the_runner_nodes_with_the_runner_parameters(fake_launch, pipeline, tmp_path):
    extra = tmp_path / 'extra.yaml'
    extra.write_text('/**:\n  ros__parameters:\n    extra_flag: 7\n')
    args = {'namespace': 'train1', 'params_file': str(extra), 'model': '/models/custom.onnx'}
    declared, nodes = launched_nodes(pipeline, args)
    expected = pipelines.pipeline(pipeline)
    assert set(pipelines.COMMON_ARGUMENTS) | set(expected.arguments) == set(declared)
    assert [n.kwargs['executable'] for n in nodes] == list(pipelines.pipeline_nodes(pipeline, args))
    runner_params = pipelines.node_parameters(pipeline, args)
    for node in nodes:
        name = node.kwargs['name']
        assert name in NODE_CLASSES
        assert node.kwargs['package'] == 'train_fou' and node.kwargs['namespace'] == 'train1'
        assert merge_like_launch_ros(name, node.kwargs['parameters']) == runner_params[name]
        assert runner_params[name]['extra_flag'] == 7
    assert runner_params['detector_node']['model_path'] == '/models/custom.onnx'


#: What each launch file must start, written out by hand from the launch files' docstrings and the
#: README (not read from train_fou.pipelines, which the launch files and the runner both use): the
#: executables in order, the launch arguments beyond namespace, domain_id, params_file, model,
#: foxglove_port and metrics_port, and the parameters the pipeline itself sets over config/<node>.yaml.
#: On the train the live view and the metrics are on by default (docs/monitoring.md).
LAUNCHED = {
    'train': (['camera_node', 'detector_node', 'speed_controller', 'hub_node', 'foxglove_bridge', 'metrics_exporter'],
              {'hub_address', 'hub_name'},
              {'hub_node': {'backend': 'ble'}, 'foxglove_bridge': {'port': 8765}, 'metrics_exporter': {'port': 9464}}),
    'replay': (['bag_player', 'detector_node', 'speed_controller', 'hub_node'], {'bag', 'topic', 'rate'},
               {'hub_node': {'backend': 'sim'}}),
    'sim': (['track_sim', 'detector_node', 'speed_controller', 'hub_node'], {'scenario', 'seed'},
            {'track_sim': {'lockstep': True}, 'detector_node': {'use_sim_time': True},
             'speed_controller': {'use_sim_time': True},
             'hub_node': {'backend': 'sim', 'deadman_timeout_s': 5.0, 'use_sim_time': True}}),
}


def _flat(prefix, value, out):
    if isinstance(value, dict):
        for key, sub in value.items():
            _flat(f'{prefix}.{key}' if prefix else key, sub, out)
    else:
        out[prefix] = value
    return out


def _file_parameters(path, node):
    """What a ROS 2 parameter file gives `node` (`/**` first, then its own section), read with plain yaml."""
    data = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    values = {}
    for section in ('/**', node):
        _flat('', (data.get(section) or {}).get('ros__parameters') or {}, values)
    return values


@pytest.mark.parametrize('pipeline', sorted(LAUNCHED))
def test_launch_file_starts_the_nodes_written_out_here_with_their_parameters(fake_launch, pipeline, tmp_path):
    """config/<node>.yaml, then the pipeline's own values, then the user's file, then the arguments."""
    executables, arguments, fixed = LAUNCHED[pipeline]
    extra = tmp_path / 'extra.yaml'
    extra.write_text('/**:\n  ros__parameters:\n    extra_flag: 7\n'
                     'detector_node:\n  ros__parameters:\n    model_path: /from/the/file.onnx\n')
    declared, nodes = launched_nodes(pipeline, {'namespace': 'train1', 'params_file': str(extra),
                                                'model': '/models/custom.onnx'})
    common = {'namespace', 'domain_id', 'params_file', 'model', 'foxglove_port', 'metrics_port'}
    assert set(declared) == common | arguments
    assert [n.kwargs['executable'] for n in nodes] == executables
    for node in nodes:
        name = node.kwargs['executable']
        assert node.kwargs['name'] == name and node.kwargs['namespace'] == 'train1'
        got = {}
        for layer in node.kwargs['parameters']:   # launch_ros applies them in order, later wins
            got.update(layer if isinstance(layer, dict) else _file_parameters(layer, name))
        expected = {**_file_parameters(share_dir() / 'config' / f'{name}.yaml', name), **fixed.get(name, {}),
                    'extra_flag': 7}
        if name == 'detector_node':
            expected['model_path'] = '/models/custom.onnx'   # the argument wins over the file
        assert got == expected, name


def test_every_pipeline_node_has_a_launcher_and_a_config_file():
    cmake = (share_dir() / '..' / '..').resolve()
    for p in pipelines.PIPELINES.values():
        for node in (*p.nodes, *pipelines.MONITORING.values()):
            assert (cmake / 'lib' / 'train_fou' / node).exists(), node
            assert pipelines.config_file(node).is_file(), f'config/{node}.yaml missing'


def test_sim_pipeline_runs_every_node_but_the_simulator_on_sim_time():
    params = pipelines.node_parameters('sim', {'seed': '5'})
    assert 'use_sim_time' not in params['track_sim'] and params['track_sim']['seed'] == 5
    assert all(params[n]['use_sim_time'] is True for n in ('detector_node', 'speed_controller', 'hub_node'))
    assert params['hub_node']['backend'] == 'sim'


def test_train_pipeline_drives_the_ble_hub_at_the_given_address():
    params = pipelines.node_parameters('train', {'hub_address': '90:84:2B:00:11:22'})
    assert params['hub_node']['backend'] == 'ble' and params['hub_node']['hub_address'] == '90:84:2B:00:11:22'


@pytest.mark.parametrize('compressed, message_type, through, expected', [
    (False, None, 'argument', 'raw'),
    (True, None, 'argument', 'compressed'),
    (True, None, 'params_file', 'compressed'),  # the bag named in a parameter file decides too
    (True, 'raw', 'argument', 'raw'),  # no raw topic in the bag: the player reports it; the default stays
])
def test_the_replay_detector_listens_where_the_bag_player_publishes(tmp_path, fake_launch, compressed, message_type,
                                                                    through, expected):
    """A compressed bag's frames go to camera/image_raw/compressed: the detector must subscribe there."""
    from helpers.models import write_image_bag
    bag = write_image_bag(tmp_path / 'bag', count=2, compressed=compressed)
    player = {'bag_path': str(bag), **({'message_type': message_type} if message_type else {})}
    if through == 'argument':
        args = {'bag': str(bag)}
        if message_type:
            extra = tmp_path / 'extra.yaml'
            extra.write_text(yaml.safe_dump({'bag_player': {'ros__parameters': {'message_type': message_type}}}))
            args['params_file'] = str(extra)
    else:
        extra = tmp_path / 'extra.yaml'
        extra.write_text(yaml.safe_dump({'bag_player': {'ros__parameters': player}}))
        args = {'params_file': str(extra)}
    params = pipelines.node_parameters('replay', args)
    assert params['detector_node']['input_transport'] == expected
    _declared, nodes = launched_nodes('replay', args)  # ros2 launch starts the same
    detector = next(n for n in nodes if n.kwargs['name'] == 'detector_node')
    assert merge_like_launch_ros('detector_node', detector.kwargs['parameters'])['input_transport'] == expected


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(pipelines.PipelineError, match='unknown pipeline `nope`'):
        pipelines.node_parameters('nope')
    with pytest.raises(pipelines.PipelineError, match='argument `seed`'):
        pipelines.node_parameters('sim', {'seed': 'many'})


def test_rviz_config_shows_the_annotated_image():
    config = yaml.safe_load((share_dir() / 'config' / 'train_fou.rviz').read_text())
    displays = config['Visualization Manager']['Displays']
    images = {d['Topic']['Value']: d for d in displays if d['Class'] == 'rviz_default_plugins/Image'}
    assert images['/signs/annotated']['Enabled'] is True
    assert images['/signs/annotated']['Topic']['Reliability Policy'] == 'Best Effort'  # SPEC §4: sensor data


def test_rqt_perspective_opens_image_view_robot_monitor_and_plots():
    import ast
    import json

    doc = json.loads((share_dir() / 'config' / 'train_fou.perspective').read_text())
    manager = doc['groups']['pluginmanager']
    running = ast.literal_eval(manager['keys']['running-plugins']['repr'])
    assert {'rqt_image_view/ImageView', 'rqt_robot_monitor/RobotMonitorPlugin', 'rqt_plot/Plot'} <= set(running)
    view = manager['groups']['plugin__rqt_image_view__ImageView__1']['groups']['plugin']['keys']
    assert ast.literal_eval(view['topic']['repr']) == '/signs/annotated'
    plot = manager['groups']['plugin__rqt_plot__Plot__1']['groups']['plugin']['keys']
    assert '/train/speed_command/power' in ast.literal_eval(plot['topics']['repr'])


def test_run_pipeline_choices_are_the_pipelines():
    from train_fou.cli import run_cmd
    assert set(run_cmd.PIPELINE_NAMES) == set(pipelines.PIPELINES)


def test_each_train_takes_its_ros_domain_from_the_launch_argument_or_its_parameter_file(fake_launch, tmp_path):
    train = tmp_path / 'train_a.yaml'
    train.write_text('/**:\n  ros__parameters:\n    ros_domain_id: 17\nhub_node:\n  ros__parameters:\n'
                     '    hub_name: Train A\n')
    _declared, nodes = launched_nodes('train', {'params_file': str(train)})
    assert {n.kwargs['additional_env']['ROS_DOMAIN_ID'] for n in nodes} == {'17'}
    _declared, nodes = launched_nodes('train', {'params_file': str(train), 'domain_id': '42'})
    assert {n.kwargs['additional_env']['ROS_DOMAIN_ID'] for n in nodes} == {'42'}  # the argument wins
    _declared, nodes = launched_nodes('train', {})
    assert {n.kwargs['additional_env'] for n in nodes} == {None}  # neither: the environment's domain
    params = pipelines.node_parameters('train', {'params_file': str(train)})
    assert pipelines.domain_id(params) == 17 and pipelines.domain_id(params, '3') == 3
    assert pipelines.domain_id(pipelines.node_parameters('train')) is None


@pytest.mark.parametrize('value', ['-1', '233', 'seven', '1.5'])
def test_a_bad_domain_id_is_one_clear_error(value):
    with pytest.raises(pipelines.PipelineError) as caught:
        pipelines.domain_id({}, value)
    assert str(caught.value) == f"domain_id = {value!r}: expected a ROS domain id, an integer from 0 to 232"


@pytest.mark.parametrize('pipeline', ['replay', 'sim'])
def test_monitoring_is_off_unless_asked_and_on_at_the_given_ports(fake_launch, pipeline):
    _declared, nodes = launched_nodes(pipeline, {})
    assert not {'foxglove_bridge', 'metrics_exporter'} & {n.kwargs['executable'] for n in nodes}
    _declared, nodes = launched_nodes(pipeline, {'foxglove_port': '9000', 'metrics_port': '9001'})
    started = {n.kwargs['executable']: merge_like_launch_ros(n.kwargs['name'], n.kwargs['parameters']) for n in nodes}
    assert started['foxglove_bridge']['port'] == 9000 and started['metrics_exporter']['port'] == 9001
    if pipeline == 'sim':  # a viewer's clock: the monitoring nodes stay on wall time
        assert 'use_sim_time' not in started['foxglove_bridge'] and 'use_sim_time' not in started['metrics_exporter']


def test_the_train_launch_serves_metrics_and_live_view_by_default_and_either_can_be_turned_off(fake_launch):
    declared, nodes = launched_nodes('train', {})
    assert declared['metrics_port'] == '9464' and declared['foxglove_port'] == '8765'
    assert {'foxglove_bridge', 'metrics_exporter'} <= {n.kwargs['executable'] for n in nodes}
    _declared, nodes = launched_nodes('train', {'metrics_port': 'off', 'foxglove_port': ''})
    assert not {'foxglove_bridge', 'metrics_exporter'} & {n.kwargs['executable'] for n in nodes}
    with pytest.raises(pipelines.PipelineError, match='argument `metrics_port`'):
        pipelines.node_parameters('train', {'metrics_port': 'ninety'})


def test_the_live_view_watches_the_topic_the_detector_listens_to(tmp_path):
    from helpers.models import write_image_bag
    bag = write_image_bag(tmp_path / 'bag', count=2, compressed=True)
    params = pipelines.node_parameters('replay', {'bag': str(bag), 'foxglove_port': '0'})
    assert params['foxglove_bridge']['input_transport'] == params['detector_node']['input_transport'] == 'compressed'


@pytest.mark.parametrize('command', ['run', 'replay', 'sim'])
def test_the_cli_takes_foxglove_with_an_optional_port_and_metrics_with_one(command):
    from train_fou.cli import build_parser
    parser = build_parser()
    first = ['bags/x.mcap'] if command == 'replay' else []
    args = parser.parse_args([command, *first])
    assert args.foxglove is None and args.metrics is None  # off by default
    args = parser.parse_args([command, *first, '--foxglove', '--metrics', '9100'])
    assert args.foxglove == 8765 and args.metrics == 9100
    args = parser.parse_args([command, *first, '--foxglove', '9000'])
    assert args.foxglove == 9000
