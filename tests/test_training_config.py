"""Training configs (training/configs/*.yaml) validate; bad values are named."""
from __future__ import annotations

import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.config import ConfigError, export_size, load, validate  # noqa: E402


@pytest.mark.parametrize('name', sorted(p.name for p in (ROOT / 'training' / 'configs').glob('*.yaml')))
def test_shipped_configs_are_valid_and_never_mirror_images(name):
    cfg = load(ROOT / 'training' / 'configs' / name)
    assert cfg['fliplr'] == 0.0      # mirrored "30"/"50"/"STOP" are not those signs
    assert cfg['imgsz'] % 32 == 0


@pytest.mark.parametrize('key,value,message', [
    ('imgsz', 400, 'multiple of 32'),
    ('epochs', 0, '>= 1'),
    ('cos_lr', 'yes', 'true/false'),
    ('weights', 'https://example.com/yolov8n.pt', 'local .pt'),
    ('time', -1, 'hours'),
    ('export_imgsz', 500, 'multiple of 32'),
    ('export_imgsz', True, 'multiple of 32'),
    ('export_imgsz', [384, 500], 'multiple of 32'),
    ('export_imgsz', [384], 'multiple of 32'),
    ('export_imgsz', [384, 512, 3], 'multiple of 32'),
    ('export_imgsz', [True, 512], 'multiple of 32'),
    ('backbone', 'resnet', "one of \\['imagenet'\\]"),
    ('freeze', -1, 'number of layers'),
    ('freeze', [], 'number of layers'),
    ('freeze', [True], 'number of layers'),
    ('freeze', 'all', 'number of layers'),
])
def test_bad_values_are_refused_naming_the_key(key, value, message):
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg[key] = value
    with pytest.raises(ConfigError, match=f'`{key}`.*{message}'):
        validate(cfg, 'smoke.yaml')


def test_backbone_and_weights_are_exclusive_and_freeze_takes_names_or_a_count():
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    with pytest.raises(ConfigError, match='`backbone` and `weights` both set'):
        validate({**cfg, 'backbone': 'imagenet', 'weights': 'x.pt'})
    assert validate({**cfg, 'backbone': 'imagenet', 'weights': None})['backbone'] == 'imagenet'
    assert validate({**cfg, 'freeze': ['0.m.0', '0.m.1']})['freeze'] == ['0.m.0', '0.m.1']
    assert validate({**cfg, 'freeze': 3})['freeze'] == 3


def test_the_tensorrt_operator_list_flags_what_it_does_not_hold():
    onnx = pytest.importorskip('onnx')
    from onnx import helper  # noqa: PLC0415

    from training.export import unsupported_ops  # noqa: PLC0415
    nodes = [helper.make_node(op, ['x'], ['y']) for op in ('Conv', 'Clip', 'NonMaxSuppression', 'Conv', 'TopK')]
    graph = helper.make_graph(nodes, 'g', [], [])
    assert unsupported_ops(helper.make_model(graph)) == ['NonMaxSuppression', 'TopK']
    shipped = onnx.load(str(ROOT / 'models' / 'signs.onnx'))
    assert unsupported_ops(shipped) == []


def test_the_export_size_defaults_to_the_training_size():
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg.pop('export_imgsz', None)
    assert export_size(validate(cfg)) == (cfg['imgsz'], cfg['imgsz'])
    assert export_size(validate({**cfg, 'export_imgsz': 512})) == (512, 512)
    # height, width: a 4:3 input for the 640x480 camera
    assert export_size(validate({**cfg, 'export_imgsz': [384, 512]})) == (384, 512)


def test_missing_key_and_missing_data_are_refused():
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    del cfg['batch']
    with pytest.raises(ConfigError, match='missing key `batch`'):
        validate(cfg)
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg['data'] = {'real': []}
    with pytest.raises(ConfigError, match='names no dataset'):
        validate(cfg)


@pytest.mark.parametrize('simview,message', [
    ({'seed': 1000, 'train': 10, 'val': 2}, '`data.simview.test` must be an integer'),
    ({'seed': 1000, 'train': -1, 'val': 2, 'test': 2}, '`data.simview.train` must be an integer >= 0'),
    ([1000, 10, 2, 2], '`data.simview` must be a mapping'),
    ({'seed': 1000, 'train': 10, 'val': 2, 'test': 2, 'hard_negative_p': 1.5},
     '`data.simview.hard_negative_p` must be a number in'),
    ({'seed': 1000, 'train': 10, 'val': 2, 'test': 2, 'photo_p': 0.5}, 'unknown key `data.simview.photo_p`'),
])
def test_a_bad_simview_section_is_refused_naming_the_key(simview, message):
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg['data'] = {'simview': simview}
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_simview_alone_is_a_dataset():
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg['data'] = {'simview': {'seed': 1000, 'train': 6, 'val': 2, 'test': 2}}
    assert validate(cfg)['data']['simview']['seed'] == 1000


def test_the_torch_free_training_modules_never_import_torch():
    import subprocess
    code = ('import sys; import training.synth, training.simview, training.dataset, training.evaluate, '
            'training.engine, '
            'training.config, training.model_card, train_fou.render.signs, train_fou.render.scene; '
            'print("torch" in sys.modules or "ultralytics" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


def test_export_refuses_a_refiner_outside_the_output_folder_before_exporting(tmp_path, capsys):
    from training.__main__ import main
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'signs_refine.onnx').write_bytes(b'onnx')
    for refiner in (tmp_path / 'models' / 'missing.onnx', elsewhere / 'signs_refine.onnx'):
        argv = ['export', str(tmp_path / 'never_read.pt'), '--config', str(ROOT / 'training/configs/smoke.yaml'),
                '--out-dir', str(tmp_path / 'models'), '--refiner', str(refiner)]
        assert main(argv) == 1
        assert '--refiner' in capsys.readouterr().err
    assert not (tmp_path / 'models').exists()


@pytest.mark.parametrize('sides', [['500'], ['384', '500'], ['384', '512', '3']])
def test_export_imgsz_override_is_validated_like_the_config(tmp_path, capsys, sides):
    from training.__main__ import main
    argv = ['export', str(tmp_path / 'never_read.pt'), '--config', str(ROOT / 'training/configs/smoke.yaml'),
            '--out-dir', str(tmp_path), '--imgsz', *sides]
    assert main(argv) == 2
    assert '`export_imgsz` must be a multiple of 32' in capsys.readouterr().err
