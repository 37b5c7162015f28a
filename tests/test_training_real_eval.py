"""training/real_eval.py: Label Studio exports as they are, EXIF orientation, class maps, AP and the CLI.

Every export and photo is written by the tests (the real photos in ../shared are never needed).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.__main__ import main  # noqa: E402
from training.dataset import DatasetError  # noqa: E402
from training.evaluate import EvaluationError, Pred  # noqa: E402
from training.real_eval import (  # noqa: E402
    DEFAULT_CLASS_MAP, Photo, controller_min_scores, read_export, read_photo, resolve_class_map, score_photos,
)
from helpers.models import make_model  # noqa: E402

NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']
RED_RGB, GREY_RGB = (255, 0, 0), (90, 90, 90)
#: EXIF orientation -> the transpose that turns the picture as shown into the stored pixels
#: (the inverse of the one a viewer applies).
STORED_FROM_SHOWN = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                     8: Image.Transpose.ROTATE_270}


def _photo(path: pathlib.Path, size=(400, 300), orientation=1, red_box=None) -> pathlib.Path:
    """A grey JPEG that a viewer shows as `size` (w, h), red inside `red_box` (pixels as shown)."""
    shown = Image.new('RGB', size, GREY_RGB)
    if red_box is not None:
        shown.paste(RED_RGB, tuple(int(v) for v in red_box))
    transpose = STORED_FROM_SHOWN[orientation]
    stored = shown if transpose is None else shown.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, quality=95, exif=exif.tobytes())
    return path


def _rect(label, x, y, w, h, size=(400, 300), size_in_value=False):
    """A result of a full JSON export; the real export has original_width/height beside `value` or in it."""
    value = {'x': x, 'y': y, 'width': w, 'height': h, 'rotation': 0, 'rectanglelabels': [label]}
    result = {'type': 'rectanglelabels', 'from_name': 'label', 'to_name': 'image', 'value': value,
              'image_rotation': 0}
    sizes = {'original_width': size[0], 'original_height': size[1]}
    (value if size_in_value else result).update(sizes)
    return result


def _task(ref, results, cancelled=False):
    return {'id': 1, 'data': {'image': ref},
            'annotations': [{'was_cancelled': cancelled, 'result': results}]}


def _min_task(ref, results):
    """The JSON-MIN form of a task: the control's name (here `label`) holds flat rectangles."""
    return {'image': ref, 'id': 1, 'annotator': 1, 'annotation_id': 1,
            'label': [{**r['value'], **{k: r[k] for k in ('original_width', 'original_height') if k in r}}
                      for r in results]}


def _export(path: pathlib.Path, tasks) -> pathlib.Path:
    path.write_text(json.dumps(tasks))
    return path


# --- reading exports

@pytest.mark.parametrize('kind, ref', [
    ('json', 'https://minio-s3-minio.DOMAIN_NAME/data/traffic-sign-lego/photo.jpg'),   # a dead bucket
    ('json', '/data/upload/3/1a2b3c4d-photo.jpg'),                                      # an upload id prefix
    ('json-min', 'http://localhost:8080/data/local-files/?d=photos/photo.jpg'),
])
def test_read_export_finds_images_by_name_and_converts_percent_boxes_to_pixels(tmp_path, kind, ref):
    _photo(tmp_path / 'photos' / 'photo.jpg')
    results = [_rect('SpeedLimit', 10, 20, 5, 10), _rect('DangerAhead', 50, 50, 25, 20, size_in_value=True)]
    task = _task(ref, results) if kind == 'json' else _min_task(ref, results)
    photos, skipped = read_export(_export(tmp_path / 'e.json', [task]), tmp_path / 'photos')
    assert skipped == 0 and len(photos) == 1
    photo = photos[0]
    assert (photo.path.name, photo.width, photo.height, photo.orientation) == ('photo.jpg', 400, 300, 1)
    assert [label for label, _ in photo.boxes] == ['SpeedLimit', 'DangerAhead']
    assert np.allclose([box for _, box in photo.boxes], [(40, 60, 60, 90), (200, 150, 300, 210)])


@pytest.mark.parametrize('orientation', [1, 3, 6, 8])
def test_exif_rotated_photos_are_read_as_a_viewer_shows_them_so_the_labels_fit(tmp_path, orientation):
    # a red patch at the top left of the picture as shown, labelled there; stored turned by EXIF
    red = (40, 30, 100, 90)
    _photo(tmp_path / 'photos' / 'turned.jpg', orientation=orientation, red_box=red)
    export = _export(tmp_path / 'e.json', [_task('turned.jpg', [_rect('DangerAhead', 10, 10, 15, 20)])])
    (photo,), _ = read_export(export, tmp_path / 'photos')
    assert (photo.width, photo.height, photo.orientation) == (400, 300, orientation)
    label, box = photo.boxes[0]
    assert np.allclose(box, red)
    bgr = read_photo(photo.path)
    assert bgr.shape == (300, 400, 3) and bgr.dtype == np.uint8
    x1, y1, x2, y2 = (int(v) for v in box)
    inside = bgr[y1 + 5:y2 - 5, x1 + 5:x2 - 5].reshape(-1, 3).mean(axis=0)
    assert np.allclose(inside, (0, 0, 255), atol=12)            # BGR: the label's box is on the red patch
    assert np.allclose(bgr[-40:, -40:].reshape(-1, 3).mean(axis=0), GREY_RGB, atol=12)


@pytest.mark.parametrize('orientation, labelled_size, error', [
    (1, (400, 300), None),
    (3, (400, 300), None),
    (6, (400, 300), None),   # shown 400x300 (stored 300x400): labelled as shown
    (6, (300, 400), r'labelled on a 300x400 image, but the file shows 400x300 \(EXIF orientation 6 applied\)'),
    (1, (640, 480), r'turned.jpg\): labelled on a 640x480 image, but the file shows 400x300: '),
])
def test_the_labelled_size_must_be_the_size_the_photo_shows(tmp_path, orientation, labelled_size, error):
    _photo(tmp_path / 'photos' / 'turned.jpg', orientation=orientation)
    export = _export(tmp_path / 'e.json', [_task('turned.jpg', [_rect('SpeedLimit', 1, 1, 5, 5, labelled_size)])])
    if error is None:
        (photo,), _ = read_export(export, tmp_path / 'photos')
        assert (photo.width, photo.height) == (400, 300)
    else:
        with pytest.raises(DatasetError, match=error):
            read_export(export, tmp_path / 'photos')


def test_cancelled_annotations_and_unlabelled_tasks_are_skipped(tmp_path):
    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        _photo(tmp_path / 'photos' / name)
    two = _task('b.jpg', [_rect('DangerAhead', 50, 50, 10, 10)], cancelled=True)
    two['annotations'].append({'was_cancelled': False, 'result': [_rect('SpeedLimit', 0, 0, 10, 10)]})
    tasks = [_task('a.jpg', [_rect('DangerAhead', 1, 1, 5, 5)], cancelled=True),   # skipped
             two,                                                                  # its completed annotation
             {'id': 3, 'data': {'image': 'c.jpg'}, 'annotations': []}]             # nobody labelled it
    photos, skipped = read_export(_export(tmp_path / 'e.json', tasks), tmp_path / 'photos')
    assert skipped == 2
    assert [(p.path.name, [label for label, _ in p.boxes]) for p in photos] == [('b.jpg', ['SpeedLimit'])]


@pytest.mark.parametrize('change, error', [
    ({'rotation': 15}, 'rotated rectangles are not supported'),
    ({'rectanglelabels': ['SpeedLimit', 'DangerAhead']}, 'exactly one label'),
    ({'image_rotation': 90}, 'image_rotation 90'),
    ({'x': 'left'}, 'numeric x/y/width/height'),
])
def test_rectangles_that_cannot_be_boxes_are_errors_naming_the_task(tmp_path, change, error):
    _photo(tmp_path / 'photos' / 'p.jpg')
    rect = _rect('SpeedLimit', 1, 1, 5, 5)
    rect['value'].update(change)
    export = _export(tmp_path / 'e.json', [_task('p.jpg', [rect])])
    with pytest.raises(DatasetError, match=rf'e.json: task 0 \(p.jpg\): .*{error}'):
        read_export(export, tmp_path / 'photos')


def test_a_missing_image_is_one_error_naming_it(tmp_path, capsys):
    (tmp_path / 'photos').mkdir()
    export = _export(tmp_path / 'e.json', [_task('https://bucket.example/data/gone.jpg', [])])
    with pytest.raises(DatasetError, match="image 'https://bucket.example/data/gone.jpg' of the export not found"):
        read_export(export, tmp_path / 'photos')
    rc = main(['eval-real', str(tmp_path / 'no_model.onnx'), '--export', str(export),
               '--images', str(tmp_path / 'photos'), '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert rc == 2 and err.count('\n') == 1 and 'gone.jpg' in err


# --- classes and metrics (hand-made predictions, no model)

def _score(preds, boxes, names=NAMES, class_map=DEFAULT_CLASS_MAP, min_scores=None, labels=None):
    """score_photos over one 640x480 photo labelled with `boxes`."""
    photo = Photo(pathlib.Path('p.jpg'), 640, 480, 1, tuple(boxes))
    cmap = resolve_class_map(names, class_map, labels or {label for label, _ in boxes})
    mins = {'speed_limit_30': 0.5, 'speed_limit_50': 0.5, 'stop': 0.5, 'danger': 0.4} if min_scores is None \
        else min_scores
    return score_photos([preds], [photo], names, cmap, mins, 0.25, 0.45)


SIGN_A, SIGN_B, ELSEWHERE = (100, 100, 140, 140), (300, 100, 340, 140), (500, 300, 540, 340)


@pytest.mark.parametrize('preds, label, ap50', [
    # a 30 and a 50 on the same sign are one SpeedLimit (merged), so AP stays 1; counted apart, the
    # 50 would be a false positive above the second sign's 50: (51 * 1 + 50 * 2/3) / 101
    ([Pred(0, 0.9, SIGN_A), Pred(1, 0.8, SIGN_A), Pred(1, 0.7, SIGN_B)], 'SpeedLimit', 1.0),
    # only one of the two signs found: recall 0.5, AP 51/101
    ([Pred(1, 0.9, SIGN_A)], 'SpeedLimit', 51 / 101),
    # a false positive scored above the true positive halves precision at full recall
    ([Pred(3, 0.9, ELSEWHERE), Pred(3, 0.5, SIGN_B)], 'DangerAhead', 0.5),
    # a stop detection, even scored highest and on a labelled sign, is no false positive
    ([Pred(2, 0.95, ELSEWHERE), Pred(2, 0.9, SIGN_B), Pred(3, 0.5, SIGN_B)], 'DangerAhead', 1.0),
    # a SpeedLimit sign read as danger is a danger false positive and a SpeedLimit miss
    ([Pred(3, 0.9, SIGN_A), Pred(3, 0.5, SIGN_B)], 'DangerAhead', 0.5),
])
def test_ap50_per_label_class_on_hand_computed_cases(preds, label, ap50):
    boxes = [('SpeedLimit', SIGN_A), ('SpeedLimit', SIGN_B)] if label == 'SpeedLimit' else [
        ('SpeedLimit', SIGN_A), ('DangerAhead', SIGN_B)]
    report = _score(preds, boxes)
    assert report['per_class'][label]['AP50'] == pytest.approx(ap50)
    assert report['ignored_model_classes'] == ['stop']


def test_map50_is_the_mean_over_the_label_classes_and_merged_duplicates_are_one_detection():
    report = _score([Pred(0, 0.9, SIGN_A), Pred(1, 0.8, SIGN_A)], [('SpeedLimit', SIGN_A), ('DangerAhead', SIGN_B)])
    assert report['per_class']['SpeedLimit']['detections'] == 1
    assert report['per_class']['SpeedLimit']['model_classes'] == ['speed_limit_30', 'speed_limit_50']
    assert report['per_class']['DangerAhead']['AP50'] == 0.0
    assert report['mAP50'] == pytest.approx(0.5)


@pytest.mark.parametrize('preds, min_scores, controller, deployed', [
    # danger at 0.45 and 0.35: the controller's 0.4 keeps one, the deployed 0.25 both
    ([Pred(3, 0.45, SIGN_A), Pred(3, 0.35, SIGN_B)], None,
     {'tp': 1, 'fp': 0, 'fn': 1, 'precision': 1.0, 'recall': 0.5},
     {'tp': 2, 'fp': 0, 'fn': 0, 'precision': 1.0, 'recall': 1.0}),
    # a false positive over the threshold, stop detections never counted
    ([Pred(3, 0.6, SIGN_A), Pred(3, 0.5, ELSEWHERE), Pred(2, 0.9, SIGN_B)], None,
     {'tp': 1, 'fp': 1, 'fn': 1, 'precision': 0.5, 'recall': 0.5},
     {'tp': 1, 'fp': 1, 'fn': 1, 'precision': 0.5, 'recall': 0.5}),
    # nothing over the threshold: precision undefined
    ([Pred(3, 0.3, SIGN_A)], None,
     {'tp': 0, 'fp': 0, 'fn': 2, 'precision': None, 'recall': 0.0},
     {'tp': 1, 'fp': 0, 'fn': 1, 'precision': 1.0, 'recall': 0.5}),
    # a class the controller has no rule for never acts
    ([Pred(3, 0.9, SIGN_A)], {'speed_limit_30': 0.5},
     {'tp': 0, 'fp': 0, 'fn': 2, 'precision': None, 'recall': 0.0},
     {'tp': 1, 'fp': 0, 'fn': 1, 'precision': 1.0, 'recall': 0.5}),
])
def test_precision_and_recall_at_the_controller_and_deployed_thresholds(preds, min_scores, controller, deployed):
    report = _score(preds, [('DangerAhead', SIGN_A), ('DangerAhead', SIGN_B)], min_scores=min_scores)
    danger = report['per_class']['DangerAhead']
    assert {k: danger['controller'][k] for k in controller} == controller
    assert {k: danger['deployed'][k] for k in deployed} == deployed


def test_controller_thresholds_apply_per_model_class_before_the_merge():
    # the controller acts on the 30 (0.55 >= 0.5); the 50 on the same sign scores more but not its 0.7
    mins = {'speed_limit_30': 0.5, 'speed_limit_50': 0.7, 'danger': 0.4}
    report = _score([Pred(0, 0.55, SIGN_A), Pred(1, 0.6, SIGN_A)], [('SpeedLimit', SIGN_A)], min_scores=mins)
    limit = report['per_class']['SpeedLimit']
    assert (limit['controller']['tp'], limit['controller']['fp']) == (1, 0)
    assert limit['controller']['min_score'] == {'speed_limit_30': 0.5, 'speed_limit_50': 0.7}


def test_an_unmapped_model_class_is_ignored_unless_the_labels_use_its_name():
    names = NAMES + ['give_way']
    report = _score([Pred(4, 0.9, SIGN_B), Pred(3, 0.5, SIGN_A)], [('DangerAhead', SIGN_A)], names=names)
    assert report['ignored_model_classes'] == ['stop', 'give_way']
    assert report['per_class']['DangerAhead']['controller']['precision'] == 1.0
    # labels named like the model classes need no map
    same = _score([Pred(3, 0.9, SIGN_A)], [('danger', SIGN_A), ('bus', SIGN_B)], class_map={})
    assert list(same['per_class']) == ['danger'] and same['per_class']['danger']['AP50'] == 1.0
    assert same['unevaluated_labels'] == {'bus': 1}


def test_a_class_map_naming_a_class_the_model_lacks_is_an_error():
    with pytest.raises(EvaluationError, match=r"'speed_limt_30', not a class of the model"):
        resolve_class_map(NAMES, {'speed_limt_30': 'SpeedLimit'}, {'SpeedLimit'})


# --- the speed controller's thresholds

def _policy(path: pathlib.Path, danger: float, stop_action: str = 'stop') -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({'signs': {
        'speed_limit_30': {'action': 'limit', 'limit_pct': 30, 'min_score': 0.5},
        'speed_limit_50': {'action': 'limit', 'limit_pct': 50, 'min_score': 0.5},
        'stop': {'action': stop_action, 'min_score': 0.5},
        'danger': {'action': 'danger', 'min_score': danger}}}))
    return path


def test_controller_min_scores_follow_the_policy_file_and_parameter_overrides(tmp_path):
    _policy(tmp_path / 'policy.yaml', danger=0.3, stop_action='ignore')   # a class that does nothing: absent
    controller = tmp_path / 'speed_controller.yaml'
    controller.write_text(yaml.safe_dump({'speed_controller': {'ros__parameters': {
        'policy_file': '', 'signs': {'speed_limit_50': {'min_score': 0.7}}}}}))
    assert controller_min_scores(controller) == {'speed_limit_30': 0.5, 'speed_limit_50': 0.7, 'danger': 0.3}


def test_the_default_controller_thresholds_are_those_of_config_policy_yaml():
    from train_fou.policy import load_policy
    policy = load_policy(ROOT / 'config' / 'policy.yaml')
    assert controller_min_scores()['danger'] == policy.signs['danger'].min_score


# --- the command, end to end, on the tiny stand-in model of helpers.models

def _e2e_data(tmp_path):
    """Two photos the size of the model's input: a white one (the model sees a stop at the left and a
    danger sign at the right, see helpers.models.default_anchors) and a black one (nothing)."""
    (tmp_path / 'models').mkdir()
    model = make_model(tmp_path / 'models', imgsz=(96, 128))
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.new('RGB', (128, 96), (255, 255, 255)).save(photos / 'white.png')   # lossless: scores exactly 0.9, 0.8
    Image.new('RGB', (128, 96), (0, 0, 0)).save(photos / 'black.png')
    danger = (71, 23, 121, 73)     # the model's danger box in pixels
    pct = lambda b: (b[0] / 1.28, b[1] / 0.96, (b[2] - b[0]) / 1.28, (b[3] - b[1]) / 0.96)  # noqa: E731
    export = _export(tmp_path / 'export.json', [
        _task('s3://bucket/white.png', [_rect('DangerAhead', *pct(danger), size=(128, 96)),
                                        _rect('SpeedLimit', *pct((90, 80, 100, 90)), size=(128, 96))]),
        _task('s3://bucket/black.png', [])])
    _policy(tmp_path / 'config' / 'policy.yaml', danger=0.4)
    controller = tmp_path / 'config' / 'speed_controller.yaml'
    controller.write_text(yaml.safe_dump({'speed_controller': {'ros__parameters': {'policy_file': ''}}}))
    return model, export, photos, controller


@pytest.mark.parametrize('extra, danger_ap, danger_min_score, danger_precision', [
    ([], 1.0, '0.4', 1.0),                 # the stop detection (0.9) is dropped
    (['--no-refine'], 1.0, '0.4', 1.0),
    # stop counted as danger: a false positive above the true positive; stop's own threshold applies to it
    (['--map', 'speed_limit_30=SpeedLimit,speed_limit_50=SpeedLimit,danger=DangerAhead,stop=DangerAhead'],
     0.5, '0.4/0.5', 0.5),
])
def test_eval_real_command_prints_the_table_and_writes_the_report_and_picture(tmp_path, capsys, extra, danger_ap,
                                                                             danger_min_score, danger_precision):
    model, export, photos, controller = _e2e_data(tmp_path)
    out = tmp_path / 'out'
    rc = main(['eval-real', str(model), '--export', str(export), '--images', str(photos), '--out', str(out),
               '--controller', str(controller), *extra])
    printed = capsys.readouterr().out
    assert rc == 0
    assert f'| DangerAhead | 1 | {danger_ap:.3f} | {danger_min_score} | {danger_precision:.3f}' in printed
    assert '| SpeedLimit | 1 | 0.000 | 0.5 | - (0/0) | 0.000 (0/1) |' in printed
    assert f'| **mAP50** | 2 | **{(danger_ap + 0) / 2:.3f}** |' in printed
    report = json.loads((out / 'report.json').read_text())
    assert report['photos'] == 2 and report['refiner'] is None
    assert report['per_class']['DangerAhead']['AP50'] == pytest.approx(danger_ap)
    assert report['per_class']['DangerAhead']['controller']['precision'] == pytest.approx(danger_precision)
    assert [p['image'] for p in report['per_photo']] == ['white.png', 'black.png']
    sheet = Image.open(out / 'detections.jpg')
    assert sheet.size == (2 * (128 + 4), 96 + 22 + 4)
