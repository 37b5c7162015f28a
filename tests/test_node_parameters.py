"""Every declared parameter of every node is checked at start-up: a node starts, or refuses with one line.

A wrong type, a value out of range, NaN or infinity gives one ParameterError line
naming the node, the parameter, the value and what is allowed; a node that
refuses to start leaves nothing behind that fails later (rclpy's context destroys
the nodes it tracks on shutdown, and used to trip over half-built ones).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import rclpy
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rcl_interfaces.msg import ParameterType
from rclpy.context import Context

from train_fou.errors import TrainFouError
from train_fou.nodes import NODE_CLASSES, ParameterError
from train_fou.nodes.runner import create_nodes, destroy_nodes
from train_fou.params import load_params_file

NODES = sorted(NODE_CLASSES)
NUMBERS = (ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_DOUBLE)


def _new_context() -> Context:
    context = Context()
    rclpy.init(context=context, args=[])
    return context


@pytest.fixture(scope='module')
def declared():
    """{node: {parameter: (default value, descriptor)}} from one instance of each node with its defaults."""
    context = _new_context()
    table = {}
    try:
        for name in NODES:
            node = create_nodes([name], context=context)[0]
            try:
                names = node.list_parameters([], 0).names
                table[name] = {p: (node.get_parameter(p).value, d)
                               for p, d in zip(names, node.describe_parameters(names))}
            finally:
                destroy_nodes([node])
    finally:
        rclpy.shutdown(context=context)
    return table


def test_every_number_parameter_of_every_node_has_a_range(declared):
    """rclpy then refuses NaN, infinity and out-of-range values at run time too (`ros2 param set`)."""
    unranged = [f'{node}.{name}' for node, params in declared.items() for name, (_v, d) in params.items()
                if d.type in NUMBERS and not (d.integer_range or d.floating_point_range)]
    assert unranged == []


def _values_for(default, descriptor):
    """Random values for one parameter: the default, values of its own type (in and out of range), others."""
    same = []
    if descriptor.type == ParameterType.PARAMETER_DOUBLE:
        if descriptor.floating_point_range:
            r = descriptor.floating_point_range[0]
            same.append(st.floats(r.from_value, r.to_value))
        same.append(st.floats(allow_nan=True, allow_infinity=True))
    elif descriptor.type == ParameterType.PARAMETER_INTEGER:
        if descriptor.integer_range:
            r = descriptor.integer_range[0]
            same.append(st.integers(r.from_value, r.to_value))
        same.append(st.integers(-2**40, 2**40))
    elif descriptor.type == ParameterType.PARAMETER_STRING and descriptor.additional_constraints.startswith('one of '):
        same.append(st.sampled_from(descriptor.additional_constraints[len('one of '):].split(', ')))
    others = st.one_of(
        st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True),
        st.text(st.characters(codec='utf-8', exclude_categories=('Cs', 'Cc')), max_size=8),
        st.lists(st.integers(-5, 5), max_size=3), st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
        st.none())
    return st.one_of(st.just(default), *same, others)


@st.composite
def parameter_files(draw, params):
    """A ROS 2 parameter file (as text) that changes a random subset of `params`."""
    chosen = draw(st.lists(st.sampled_from(sorted(params)), min_size=1, max_size=4, unique=True))
    return {name: draw(_values_for(*params[name])) for name in chosen}


def _check_starts_or_refuses_with_one_line(tmp_path, node_name, values):
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({node_name: {'ros__parameters': values}}))
    params = load_params_file(path)  # the CLI's and the launch files' reader
    context = _new_context()
    try:
        try:
            nodes = create_nodes([node_name], params, context=context)
        except TrainFouError as err:
            message = str(err)
            assert '\n' not in message, message
            if isinstance(err, ParameterError):
                assert message.startswith(f'{node_name}: parameter '), message
                assert ': expected ' in message, message
        else:
            destroy_nodes(nodes)
    finally:
        rclpy.shutdown(context=context)  # destroys what the context still tracks: must not raise either


#: Examples per node; the detector loads its model whenever it starts, the others are quick.
EXAMPLES = {'detector_node': 15}


@pytest.mark.parametrize('node_name', NODES)
def test_random_parameter_files_start_the_node_or_give_one_line(node_name, declared, tmp_path_factory):
    params = declared[node_name]
    tmp_path = tmp_path_factory.mktemp(node_name)

    @settings(max_examples=EXAMPLES.get(node_name, 40), deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(values=parameter_files(params))
    def check(values):
        _check_starts_or_refuses_with_one_line(tmp_path, node_name, values)

    check()


@pytest.mark.parametrize(('node_name', 'values', 'line'), [
    ('speed_controller', {'confirm_hits': 'two'},
     "speed_controller: parameter confirm_hits = 'two' (a string): expected an integer from 1 to 30"),
    ('speed_controller', {'detections_timeout_s': -1.0},
     'speed_controller: parameter detections_timeout_s = -1.0: expected a number from 0.1 to 5'),
    ('speed_controller', {'detections_timeout_s': 1},
     'speed_controller: parameter detections_timeout_s = 1 (an integer): expected a number from 0.1 to 5 '
     '(write 1.0: ROS parameters do not turn an integer into a number)'),
    ('hub_node', {'port': 'Z'}, "hub_node: parameter port = 'Z': expected A, B, C, D or a port number 0..255"),
    ('hub_node', {'deadman_timeout_s': 'soon'},
     "hub_node: parameter deadman_timeout_s = 'soon' (a string): expected a number from 0.1 to 10"),
    ('hub_node', {'deadman_timeout_s': math.nan}, 'hub_node: parameter deadman_timeout_s = nan: '
                                                  'expected a number from 0.1 to 10'),
    ('hub_node', {'backend': 'usb'}, "hub_node: parameter backend = 'usb': expected one of sim, ble"),
    ('hub_node', {'backend': 'ble'}, "hub_node: parameter hub_name = '': expected the name (or hub_address: the "
                                     'address) of the hub to drive with backend ble; train_fou never connects to '
                                     'whichever hub is in range (`train-fou hub scan` lists them)'),
    ('bag_player', {'rate': math.inf}, 'bag_player: parameter rate = inf: expected a number from 0 to 100'),
    ('detector_node', {'conf_threshold': -0.5},
     'detector_node: parameter conf_threshold = -0.5: expected a number from 0 to 1, or -1 (from the model metadata)'),
    ('track_sim', {'use_sim_time': 'yes'}, "track_sim: parameter use_sim_time = 'yes' (a string): "
                                           'expected true or false'),
])
def test_the_cli_reports_a_bad_parameter_in_one_line_and_exits_2(node_name, values, line, tmp_path, capfd):
    from train_fou.cli import main
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump({node_name: {'ros__parameters': values}}))
    assert main(['run', '--nodes', node_name, '--params', str(path)]) == 2
    err = capfd.readouterr().err
    assert err.splitlines() == [f'train-fou run: error: {line}'], err


def test_a_node_executable_reports_a_bad_parameter_in_one_line():
    code = 'import sys; from train_fou.nodes import run_node; sys.exit(run_node("hub_node"))'
    done = subprocess.run([sys.executable, '-c', code, '--ros-args', '-p', 'port:=Z'], capture_output=True,
                          text=True, timeout=60, env=os.environ)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["hub_node: parameter port = 'Z': expected A, B, C, D or a port number 0..255"]


@pytest.mark.parametrize(('node_name', 'values'), [
    ('bag_player', {'rate': 'fast'}),       # was: AttributeError: 'BagPlayer' object has no attribute '_stop'
    ('hub_node', {'deadman_timeout_s': 'soon'}),  # was: ... 'HubNode' object has no attribute '_stopped'
    ('camera_node', {'source': 'usb'}),
    ('detector_node', {'backend': 'cuda'}),
    ('hub_node', {'use_sim_time': 3}),      # refused inside rclpy's own Node.__init__
])
def test_a_node_that_refuses_to_start_raises_no_second_error_when_rclpy_shuts_down(node_name, values):
    context = _new_context()
    try:
        with pytest.raises(ParameterError):
            create_nodes([node_name], {node_name: values}, context=context)
    finally:
        rclpy.shutdown(context=context)  # destroys every node the context still tracks
