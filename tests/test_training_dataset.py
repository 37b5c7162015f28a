"""YOLO label files, data hash, and import of real photos (YOLO directory, Label Studio export)."""
from __future__ import annotations

import json
import pathlib
import sys

import cv2
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training.dataset import (  # noqa: E402
    DatasetError, dataset_hash, import_labelstudio, import_yolo, load_mapping, read_labels, split_for, write_labels,
)

NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']


def _image(path: pathlib.Path, w=640, h=480):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


def test_labels_round_trip_in_pixels_and_are_clipped_to_the_image(tmp_path):
    path = tmp_path / 'a.txt'
    write_labels(path, [(1, (10, 20, 110, 70)), (3, (-5, 400, 30, 500)), (0, (5, 5, 5.5, 9))], 640, 480)
    lines = path.read_text().splitlines()
    assert lines[0] == '1 0.093750 0.093750 0.156250 0.104167'   # cx, cy, w, h of (10,20)-(110,70)
    assert len(lines) == 2                                         # the sub-pixel box is dropped
    boxes = read_labels(path, 640, 480)
    assert boxes[0][0] == 1 and np.allclose(boxes[0][1], (10, 20, 110, 70), atol=0.01)
    assert np.allclose(boxes[1][1], (0, 400, 30, 480), atol=0.01)


def test_read_labels_names_the_file_and_line_of_a_malformed_row(tmp_path):
    path = tmp_path / 'bad.txt'
    path.write_text('0 0.5 0.5 0.1\n')
    with pytest.raises(DatasetError, match='bad.txt:1'):
        read_labels(path, 640, 480)


def test_missing_label_file_is_an_image_without_objects(tmp_path):
    assert read_labels(tmp_path / 'none.txt', 640, 480) == []


def test_dataset_hash_changes_with_any_label(tmp_path):
    _image(tmp_path / 'images' / 'train' / 'a.jpg')
    write_labels(tmp_path / 'labels' / 'train' / 'a.txt', [(0, (1, 1, 50, 50))], 640, 480)
    first = dataset_hash(tmp_path)
    assert dataset_hash(tmp_path) == first
    write_labels(tmp_path / 'labels' / 'train' / 'a.txt', [(1, (1, 1, 50, 50))], 640, 480)
    assert dataset_hash(tmp_path) != first


def test_dataset_hash_ignores_the_label_cache_ultralytics_writes_when_training(tmp_path):
    _image(tmp_path / 'images' / 'train' / 'a.jpg')
    write_labels(tmp_path / 'labels' / 'train' / 'a.txt', [(0, (1, 1, 50, 50))], 640, 480)
    before = dataset_hash(tmp_path)
    (tmp_path / 'labels' / 'train.cache').write_bytes(b'ultralytics label cache')
    assert dataset_hash(tmp_path) == before
    _image(tmp_path / 'images' / 'train' / 'b.png')
    assert dataset_hash(tmp_path) != before   # a new image is new data


def test_split_for_is_stable_and_roughly_proportional():
    splits = [split_for(f'img_{i}.jpg', 0.2, 0.1) for i in range(2000)]
    assert splits == [split_for(f'img_{i}.jpg', 0.2, 0.1) for i in range(2000)]
    assert 0.05 < splits.count('test') / 2000 < 0.15
    assert 0.15 < splits.count('val') / 2000 < 0.25


def _labelstudio_full(ref, results):
    return {'id': 1, 'data': {'image': ref}, 'annotations': [{'was_cancelled': False, 'result': results}]}


def _rect(label, x, y, w, h):
    return {'type': 'rectanglelabels', 'original_width': 640, 'original_height': 480,
            'value': {'x': x, 'y': y, 'width': w, 'height': h, 'rotation': 0, 'rectanglelabels': [label]}}


def test_labelstudio_full_export_converts_percent_rectangles_with_the_class_mapping(tmp_path):
    _image(tmp_path / 'photos' / 'track1.jpg')
    export = tmp_path / 'export.json'
    export.write_text(json.dumps([_labelstudio_full('/data/upload/3/1a2b3c4d-track1.jpg', [
        _rect('Tempo 30', 10, 20, 5, 10),       # mapped onto speed_limit_30
        _rect('danger', 50, 50, 10, 10),        # already a class name
        _rect('bus stop', 0, 0, 5, 5),          # mapped to null: dropped
    ])]))
    counts = import_labelstudio(export, tmp_path / 'photos', tmp_path / 'out',
                                {'Tempo 30': 'speed_limit_30', 'bus stop': None}, NAMES)
    assert sum(counts.values()) == 1
    split = next(s for s, n in counts.items() if n)
    boxes = read_labels(tmp_path / 'out' / 'labels' / split / 'track1.txt', 640, 480)
    assert [b[0] for b in boxes] == [0, 3]
    assert np.allclose(boxes[0][1], (64, 96, 96, 144), atol=0.01)
    assert (tmp_path / 'out' / 'images' / split / 'track1.jpg').is_file()
    data = yaml.safe_load((tmp_path / 'out' / 'data.yaml').read_text())
    assert list(data['names'].values()) == NAMES


def test_labelstudio_min_export_is_understood(tmp_path):
    _image(tmp_path / 'photos' / 'p.jpg', 400, 300)
    export = tmp_path / 'min.json'
    export.write_text(json.dumps([{'image': 'http://localhost:8080/data/p.jpg', 'label': [
        {'x': 50, 'y': 50, 'width': 25, 'height': 20, 'rotation': 0, 'rectanglelabels': ['stop'],
         'original_width': 400, 'original_height': 300}]}]))
    counts = import_labelstudio(export, tmp_path / 'photos', tmp_path / 'out', {}, NAMES)
    split = next(s for s, n in counts.items() if n)
    boxes = read_labels(tmp_path / 'out' / 'labels' / split / 'p.txt', 400, 300)
    assert boxes[0][0] == 2 and np.allclose(boxes[0][1], (200, 150, 300, 210), atol=0.01)


def test_labelstudio_unknown_label_is_an_error_that_names_it(tmp_path):
    _image(tmp_path / 'photos' / 'q.jpg')
    export = tmp_path / 'e.json'
    export.write_text(json.dumps([_labelstudio_full('q.jpg', [_rect('giraffe', 1, 1, 5, 5)])]))
    with pytest.raises(DatasetError, match="'giraffe'"):
        import_labelstudio(export, tmp_path / 'photos', tmp_path / 'out', {}, NAMES)


def test_labelstudio_missing_image_is_an_error_that_names_it(tmp_path):
    (tmp_path / 'photos').mkdir()
    export = tmp_path / 'e.json'
    export.write_text(json.dumps([_labelstudio_full('/data/upload/1/abcd-gone.jpg', [])]))
    with pytest.raises(DatasetError, match='gone.jpg'):
        import_labelstudio(export, tmp_path / 'photos', tmp_path / 'out', {}, NAMES)


def test_import_yolo_maps_class_names_and_keeps_existing_splits(tmp_path):
    src = tmp_path / 'theirs'
    (src / 'data.yaml').parent.mkdir(parents=True)
    (src / 'data.yaml').write_text(yaml.safe_dump({'names': ['sign50', 'stopsign', 'tree']}))
    _image(src / 'images' / 'val' / 'x.jpg')
    write_labels(src / 'labels' / 'val' / 'x.txt', [(0, (10, 10, 50, 50)), (1, (100, 100, 150, 150)),
                                                      (2, (200, 10, 300, 200))], 640, 480)
    counts = import_yolo(src, tmp_path / 'ours', {'sign50': 'speed_limit_50', 'stopsign': 'stop', 'tree': None}, NAMES)
    assert counts == {'train': 0, 'val': 1, 'test': 0}
    boxes = read_labels(tmp_path / 'ours' / 'labels' / 'val' / 'x.txt', 640, 480)
    assert [b[0] for b in boxes] == [1, 2]


def test_import_yolo_flat_folder_with_classes_txt_is_split_by_name(tmp_path):
    src = tmp_path / 'flat'
    src.mkdir()
    (src / 'classes.txt').write_text('danger\n')
    for i in range(6):
        _image(src / f'im{i}.png', 64, 48)
        write_labels(src / f'im{i}.txt', [(0, (1, 1, 20, 20))], 64, 48)
    counts = import_yolo(src, tmp_path / 'ours', {}, NAMES)
    assert sum(counts.values()) == 6
    for split in counts:
        for label in (tmp_path / 'ours' / 'labels' / split).glob('*.txt'):
            assert read_labels(label, 64, 48)[0][0] == 3


def test_class_mapping_from_inline_text_and_file(tmp_path):
    assert load_mapping('a=stop, b=') == {'a': 'stop', 'b': None}
    f = tmp_path / 'map.yaml'
    f.write_text('Tempo 30: speed_limit_30\nbus: null\n')
    assert load_mapping(str(f)) == {'Tempo 30': 'speed_limit_30', 'bus': None}
    with pytest.raises(DatasetError, match='nonsense'):
        load_mapping('nonsense')


def test_prepare_data_with_a_relative_workdir_writes_absolute_split_paths(tmp_path, monkeypatch):
    """--workdir training/datasets/x used to give paths ultralytics read as <path>/training/datasets/x/..."""
    from training.train import prepare_data
    synth = tmp_path / 'work' / 'synth'
    for split in ('train', 'val', 'test'):
        _image(synth / 'images' / split / 'a.png')
    (synth / 'synth.json').write_text(json.dumps({'seed': 3, 'counts': {'train': 1, 'val': 1, 'test': 1}}))
    monkeypatch.chdir(tmp_path)
    cfg = {'data': {'synth': {'seed': 3, 'train': 1, 'val': 1, 'test': 1}, 'real': []}}
    data_yaml, _ = prepare_data(cfg, pathlib.Path('work'))
    written = yaml.safe_load(data_yaml.read_text())
    assert all(pathlib.Path(p).is_absolute() and pathlib.Path(p).is_dir()
               for key in ('train', 'val', 'test') for p in written[key])


def test_resume_without_an_interrupted_run_names_the_missing_checkpoint(tmp_path):
    from training.train import TrainError, train  # noqa: PLC0415
    with pytest.raises(TrainError, match=r'cannot resume: .*no_such_run_for_tests/weights/last\.pt not found'):
        train({'name': 'signs'}, tmp_path / 'data.yaml', run_name='no_such_run_for_tests', resume=True)
