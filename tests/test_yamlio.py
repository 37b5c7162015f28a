"""Every YAML file the project reads fails the same way: one line naming the file."""
import pytest

from train_fou.params import ParamsFileError, load_params_file
from train_fou.policy import PolicyConfigError, load_policy
from train_fou.sim.errors import SimError
from train_fou.sim.scenario import load_scenario
from train_fou.yamlio import read_yaml

LOADERS = [
    pytest.param(load_params_file, ParamsFileError, 'parameter file', id='ROS parameter file'),
    pytest.param(load_policy, PolicyConfigError, 'policy file', id='policy'),
    pytest.param(load_scenario, SimError, 'scenario file', id='scenario'),
]


@pytest.mark.parametrize(('loader', 'error', 'what'), LOADERS)
def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path, loader, error, what):
    path = tmp_path / 'bad.yaml'
    path.write_text('a: 1\nb: [2\n')
    with pytest.raises(error) as info:
        loader(path)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'{path}: line 3, column 1: malformed YAML: ')


@pytest.mark.parametrize(('loader', 'error', 'what'), LOADERS)
def test_missing_file_says_which_kind_of_file(tmp_path, loader, error, what):
    with pytest.raises(error, match=f'nope.yaml: {what} not found'):
        loader(tmp_path / 'nope.yaml')


def test_read_yaml_returns_the_parsed_document(tmp_path):
    path = tmp_path / 'ok.yaml'
    path.write_text('speed: [30, 50]\n')
    assert read_yaml(path, 'test file', ValueError) == {'speed': [30, 50]}


def test_a_directory_is_an_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match='cannot read test file'):
        read_yaml(tmp_path, 'test file', ValueError)
