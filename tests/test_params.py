"""Parameter files: ROS 2 format in, flat dicts out, one clear error line otherwise."""
import pytest

from train_fou.params import ParamsFileError, load_params_file, params_for_node


def write(tmp_path, text, name='params.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_nested_parameters_are_flattened_to_dotted_names(tmp_path):
    path = write(tmp_path, 'detector_node:\n  ros__parameters:\n    model: m.onnx\n    nms:\n      iou: 0.5\n')
    assert load_params_file(path) == {'detector_node': {'model': 'm.onnx', 'nms.iou': 0.5}}


def test_wildcard_section_applies_to_every_node_and_later_files_win(tmp_path):
    first = load_params_file(write(tmp_path, '/**:\n  ros__parameters:\n    rate: 1\n    a: x\n', 'a.yaml'))
    second = load_params_file(write(tmp_path, 'hub_node:\n  ros__parameters:\n    rate: 2\n', 'b.yaml'))
    assert params_for_node([first, second], 'hub_node') == {'rate': 2, 'a': 'x'}
    assert params_for_node([first, second], 'other') == {'rate': 1, 'a': 'x'}


def test_leading_slash_in_node_name_is_ignored(tmp_path):
    path = write(tmp_path, '/hub_node:\n  ros__parameters:\n    port: A\n')
    assert load_params_file(path) == {'hub_node': {'port': 'A'}}


def test_empty_file_means_no_parameters(tmp_path):
    assert load_params_file(write(tmp_path, '')) == {}


@pytest.mark.parametrize('text, expected', [
    ('hub_node:\n  ros__parameters:\n    port: [A\n', 'malformed YAML'),
    ('- just\n- a list\n', 'expected a mapping'),
    ('hub_node:\n  port: A\n', 'no `ros__parameters`'),
    ('hub_node:\n  ros__parameters: 3\n', 'must be a mapping'),
])
def test_bad_files_raise_one_line_naming_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ParamsFileError) as info:
        load_params_file(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert '\n' not in message


def test_malformed_yaml_error_names_the_line(tmp_path):
    path = write(tmp_path, 'hub_node:\n  ros__parameters:\n    port: [A\n')
    with pytest.raises(ParamsFileError, match=r'line \d+, column \d+'):
        load_params_file(path)


def test_missing_file_is_reported_by_name(tmp_path):
    with pytest.raises(ParamsFileError, match='nope.yaml: parameter file not found'):
        load_params_file(tmp_path / 'nope.yaml')
