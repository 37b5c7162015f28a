"""The speed-limit refiner: metadata contract, square crops, re-labelling rules, and the shipped classifier."""
import json
import pathlib

import cv2
import numpy as np
import pytest

from train_fou.paths import default_model
from train_fou.render.scene import paste_rgba
from train_fou.render.signs import render_sign
from train_fou.vision import ModelMetadataError, ModelNotFoundError, load_metadata
from train_fou.vision.detector import open_detector
from train_fou.vision.postprocess import Detection
from train_fou.vision.refine import Refiner, RefinerSpec, crop_square, crops_to_tensor, merge_group_scores
from helpers.models import make_model

NAMES = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')
GOOD = {'format': 'yolov8', 'names': list(NAMES), 'imgsz': [416, 416],
        'refiner': {'model': 'speed.onnx', 'names': ['speed_limit_30', 'speed_limit_50', 'other'],
                    'applies_to': ['speed_limit_30', 'speed_limit_50'], 'input_size': 32, 'margin': 0.15,
                    'overrule_p': 0.95}}


def write(tmp_path, data):
    path = tmp_path / 'signs.json'
    path.write_text(json.dumps(data))
    return path


def test_metadata_refiner_is_parsed_relative_to_the_metadata_file(tmp_path):
    spec = load_metadata(write(tmp_path, GOOD)).refiner
    assert spec == RefinerSpec(tmp_path / 'speed.onnx', ('speed_limit_30', 'speed_limit_50', 'other'),
                               ('speed_limit_30', 'speed_limit_50'), 32, 0.15, 0.95)
    assert load_metadata(write(tmp_path, dict(GOOD, refiner=None))).refiner is None
    checking = dict(GOOD['refiner'], verifies=['danger'], veto_p=0.9)
    spec = load_metadata(write(tmp_path, dict(GOOD, refiner=checking))).refiner
    assert spec.verifies == ('danger',) and spec.veto_p == 0.9 and spec.drop_p is None
    spec = load_metadata(write(tmp_path, dict(GOOD, refiner=dict(checking, drop_p=0.95)))).refiner
    assert spec.drop_p == 0.95 and spec.alternative_p is None
    spec = load_metadata(write(tmp_path, dict(GOOD, refiner=dict(checking, alternative_p=0.05)))).refiner
    assert spec.alternative_p == 0.05


@pytest.mark.parametrize('change, message', [
    ('x', '`refiner` must be an object'),
    ({'model': ''}, '`refiner.model` must be'),
    ({'names': ['one']}, '`refiner.names` must be at least two'),
    ({'names': ['a', 'a']}, '`refiner.names` must be at least two distinct'),
    ({'applies_to': ['give_way']}, '`refiner.applies_to` must list detector classes'),
    ({'applies_to': []}, '`refiner.applies_to`'),
    ({'input_size': 4}, '`refiner.input_size` must be an integer'),
    ({'input_size': True}, '`refiner.input_size`'),
    ({'margin': -0.1}, '`refiner.margin` must be a number'),
    ({'overrule_p': 0.5}, '`refiner.overrule_p` must be null or a number in'),
    ({'overrule_p': 'yes'}, '`refiner.overrule_p`'),
    ({'verifies': ['danger']}, '`refiner.veto_p` must be a number in'),
    ({'verifies': ['danger'], 'veto_p': 0.5}, '`refiner.veto_p` must be a number in'),
    ({'verifies': ['speed_limit_30'], 'veto_p': 0.9}, '`refiner.verifies` must list detector classes not in'),
    ({'verifies': ['give_way'], 'veto_p': 0.9}, '`refiner.verifies` must list detector classes'),
    ({'verifies': 'danger', 'veto_p': 0.9}, '`refiner.verifies`'),
    ({'verifies': ['danger'], 'veto_p': 0.9, 'names': ['speed_limit_30', 'speed_limit_50']},
     '`refiner.names` must hold a "not a sign" label'),
    ({'drop_p': 0.5}, '`refiner.drop_p` must be null or a number in'),
    ({'drop_p': 1.5}, '`refiner.drop_p` must be null or a number in'),
    ({'drop_p': True}, '`refiner.drop_p`'),
    ({'alternative_p': 0}, '`refiner.alternative_p` must be null or a number in'),
    ({'alternative_p': 0.6}, '`refiner.alternative_p` must be null or a number in'),
])
def test_metadata_refiner_errors_name_the_file_and_the_field(tmp_path, change, message):
    refiner = change if isinstance(change, str) else dict(GOOD['refiner'], **change)
    path = write(tmp_path, dict(GOOD, refiner=refiner))
    with pytest.raises(ModelMetadataError, match=message) as info:
        load_metadata(path)
    assert str(path) in str(info.value)


def gradient_image(h=120, w=160):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)


def test_crop_square_takes_the_box_plus_margin_as_a_square_around_its_centre():
    image = gradient_image()
    crop = crop_square(image, (40, 30, 60, 50), 20, 0.0)  # 20x20 box, no margin: the box itself
    assert crop.shape == (20, 20, 3) and np.array_equal(crop, image[30:50, 40:60])
    crop = crop_square(image, (40, 30, 50, 50), 20, 0.0)  # 10x20 box: square of its longer side
    assert np.array_equal(crop, image[30:50, 35:55])
    crop = crop_square(image, (40, 30, 60, 50), 32, 0.5)  # 40 px square shrunk to 32
    expected = cv2.resize(image[20:60, 30:70], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop, expected)


def test_crop_square_replicates_the_border_outside_the_image_and_survives_degenerate_boxes():
    image = gradient_image()
    crop = crop_square(image, (-10, -10, 10, 10), 20, 0.0)
    assert crop.shape == (20, 20, 3)
    assert np.array_equal(crop[10:, 10:], image[:10, :10])
    assert np.array_equal(crop[0, 10:], image[0, :10])  # replicated top row
    assert crop_square(image, (500, 500, 520, 520), 32, 0.15).sum() == 0  # entirely outside
    assert crop_square(image, (5, 5, 5, 5), 32, 0.15).shape == (32, 32, 3)  # zero-size box


def test_crops_to_tensor_is_rgb_nchw_in_0_1():
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0] = 255  # blue in BGR
    tensor = crops_to_tensor([crop, crop])
    assert tensor.shape == (2, 3, 4, 4) and tensor.dtype == np.float32
    assert tensor[:, 2].min() == 1.0 and tensor[:, :2].max() == 0.0


class ColourClassifier:
    """Backend stand-in: red crops are 30, blue crops 50, anything else `other` (p = 0.8)."""

    name = 'stand-in'
    input_hw = (32, 32)

    def __init__(self):
        self.calls = 0
        self.closed = False

    def infer(self, tensor):
        self.calls += 1
        r, g, b = tensor[0].mean(axis=(1, 2))
        k = 0 if r > max(g, b) else 1 if b > max(r, g) else 2
        probs = np.full((1, 3), 0.1, np.float32)
        probs[0, k] = 0.8
        return probs

    def close(self):
        self.closed = True


def refiner_and_image(overrule_p=None):
    spec = RefinerSpec(pathlib.Path('speed.onnx'), ('speed_limit_30', 'speed_limit_50', 'other'),
                       ('speed_limit_30', 'speed_limit_50'), 32, 0.0, overrule_p)
    image = np.zeros((100, 300, 3), np.uint8)
    image[10:40, 10:40] = (0, 0, 255)  # red square
    image[10:40, 110:140] = (255, 0, 0)  # blue square
    image[10:40, 210:240] = (0, 255, 0)  # green square
    return Refiner(ColourClassifier(), spec, NAMES), image


def det(label, score, x1, y1=10, size=30):
    return Detection(NAMES.index(label), score, x1, y1, x1 + size, y1 + size, label)


def test_refiner_relabels_limits_drops_others_and_leaves_stop_and_danger_alone():
    refiner, image = refiner_and_image()
    out = refiner.refine(image, [det('speed_limit_50', 0.9, 10), det('speed_limit_30', 0.7, 110),
                                 det('speed_limit_30', 0.95, 210), det('stop', 0.5, 250, 60, 20)])
    assert [(d.label, d.class_id) for d in out] == [('speed_limit_30', 0), ('speed_limit_50', 1), ('stop', 2)]
    assert out[0].score == pytest.approx(0.9 * 0.8) and out[1].score == pytest.approx(0.7 * 0.8)
    assert out[0][2:6] == (10, 10, 40, 40)  # boxes unchanged
    assert refiner.backend.calls == 3  # one crop per speed-limit detection


def test_refiner_merges_one_sign_reported_as_both_limits():
    refiner, image = refiner_and_image()
    out = refiner.refine(image, [det('speed_limit_50', 0.6, 10), det('speed_limit_30', 0.5, 11)])
    assert len(out) == 1 and out[0].label == 'speed_limit_30' and out[0].score == pytest.approx(0.6 * 0.8)


@pytest.mark.parametrize('overrule_p, danger_score, danger_x, kept', [
    (0.75, 0.5, 12, False),  # sure 30 (p 0.8 >= 0.75), scored 0.72 over the danger's 0.5, same object
    (0.75, 0.9, 12, True),  # the danger detection scores higher
    (0.75, 0.5, 60, True),  # another object
    (0.85, 0.5, 12, True),  # the classifier is not sure enough
    (None, 0.5, 12, True),  # overruling disabled
])
def test_a_sure_re_read_sign_overrules_a_weaker_danger_on_the_same_object(overrule_p, danger_score, danger_x, kept):
    refiner, image = refiner_and_image(overrule_p)
    out = refiner.refine(image, [det('speed_limit_50', 0.9, 10), det('danger', danger_score, danger_x)])
    assert [d.label for d in out if d.label == 'danger'] == (['danger'] if kept else [])
    assert [d.label for d in out if d.label != 'danger'] == ['speed_limit_30']


class TriangleClassifier:
    """Backend stand-in naming (30, 50, stop, danger, other): yellow crops danger (p 0.8), white crops
    other (p 0.95), blue crops stop (p 0.9), anything else other (p 0.6, unsure)."""

    name = 'stand-in'
    input_hw = (32, 32)
    calls = 0

    def infer(self, tensor):
        self.calls += 1
        r, g, b = tensor[0].mean(axis=(1, 2))
        probs = np.full((1, 5), 0.01, np.float32)
        if r > 0.9 and g > 0.9 and b > 0.9:
            probs[0, 4] = 0.95
        elif r > 0.5 and g > 0.5 and b < 0.3:
            probs[0, 3] = 0.8
        elif b > max(r, g):
            probs[0, 2] = 0.9
        else:
            probs[0, 4] = 0.6
        return probs

    def close(self):
        pass


@pytest.mark.parametrize('colour, veto_p, kept', [
    ((255, 255, 255), 0.9, False),  # a white triangle, the classifier sure it is no sign: vetoed
    ((255, 255, 255), 0.97, True),  # not sure enough for this veto_p
    ((0, 220, 250), 0.9, True),  # yellow (BGR): a danger sign, kept as it was
    ((90, 90, 90), 0.9, True),  # unsure (other at p 0.6): kept
    ((250, 0, 0), 0.9, True),  # blue, read as a stop: a sign, but a danger box is never relabelled
])
def test_a_verified_danger_is_dropped_only_when_the_classifier_is_sure_it_is_no_sign(colour, veto_p, kept):
    spec = RefinerSpec(pathlib.Path('signs.onnx'), ('speed_limit_30', 'speed_limit_50', 'stop', 'danger', 'other'),
                       ('speed_limit_30', 'speed_limit_50', 'stop'), 32, 0.0, None, ('danger',), veto_p)
    refiner = Refiner(TriangleClassifier(), spec, NAMES)
    image = np.zeros((100, 300, 3), np.uint8)
    image[10:40, 10:40] = colour
    danger = det('danger', 0.45, 10)
    out = refiner.refine(image, [danger])
    assert out == ([danger] if kept else [])
    assert refiner.backend.calls == 1


def test_a_limit_box_the_classifier_reads_as_a_triangle_is_dropped_not_relabelled():
    spec = RefinerSpec(pathlib.Path('signs.onnx'), ('speed_limit_30', 'speed_limit_50', 'stop', 'danger', 'other'),
                       ('speed_limit_30', 'speed_limit_50', 'stop'), 32, 0.0, None, ('danger',), 0.9)
    refiner = Refiner(TriangleClassifier(), spec, NAMES)
    image = np.zeros((100, 300, 3), np.uint8)
    image[10:40, 10:40] = (0, 220, 250)  # yellow: the classifier says danger
    image[10:40, 110:140] = (250, 0, 0)  # blue: stop
    out = refiner.refine(image, [det('speed_limit_30', 0.7, 10), det('speed_limit_50', 0.6, 110)])
    assert [(d.label, d.x1) for d in out] == [('stop', 110)]


class FixedClassifier:
    """Backend stand-in that gives every crop the same probabilities."""

    name = 'stand-in'
    input_hw = (32, 32)

    def __init__(self, probs):
        self.probs = np.array([probs], np.float32)

    def infer(self, tensor):
        return self.probs

    def close(self):
        pass


FIVE = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger', 'other')


@pytest.mark.parametrize('probs, drop_p, expected', [
    ((0.05, 0.10, 0.05, 0.00, 0.80), None, None),  # `other` likeliest: dropped without drop_p
    ((0.05, 0.10, 0.05, 0.00, 0.80), 0.95, ('speed_limit_50', 0.10)),  # not sure enough: the likeliest sign
    ((0.01, 0.01, 0.01, 0.00, 0.97), 0.95, None),  # sure it is no re-read sign
    ((0.02, 0.02, 0.01, 0.60, 0.35), 0.95, None),  # triangle and other together reach drop_p
    ((0.30, 0.05, 0.05, 0.60, 0.00), None, None),  # read as a triangle: dropped, never relabelled danger
    ((0.30, 0.05, 0.05, 0.60, 0.00), 0.95, ('speed_limit_30', 0.30)),
    ((0.60, 0.30, 0.10, 0.00, 0.00), 0.95, ('speed_limit_30', 0.60)),
    ((0.10, 0.20, 0.70, 0.00, 0.00), None, ('stop', 0.70)),
])
def test_drop_p_drops_a_re_read_box_only_when_the_classifier_is_that_sure_it_is_none_of_them(probs, drop_p, expected):
    spec = RefinerSpec(pathlib.Path('signs.onnx'), FIVE, FIVE[:3], 32, 0.0, None, ('danger',), 0.9, drop_p)
    refiner = Refiner(FixedClassifier(probs), spec, NAMES)
    out = refiner.refine(np.zeros((100, 300, 3), np.uint8), [det('speed_limit_30', 0.9, 10)])
    if expected is None:
        assert out == []
    else:
        [d] = out
        assert (d.label, d.class_id) == (expected[0], NAMES.index(expected[0]))
        assert d.score == pytest.approx(0.9 * expected[1]) and d[2:6] == (10, 10, 40, 40)


@pytest.mark.parametrize('probs, alternative_p, expected', [
    ((0.45, 0.40, 0.05, 0.05, 0.05), None, [('speed_limit_30', 0.45)]),
    ((0.45, 0.40, 0.05, 0.05, 0.05), 0.2, [('speed_limit_30', 0.45), ('speed_limit_50', 0.40)]),
    ((0.45, 0.40, 0.05, 0.05, 0.05), 0.05, [('speed_limit_30', 0.45), ('speed_limit_50', 0.40), ('stop', 0.05)]),
    ((0.90, 0.04, 0.03, 0.03, 0.00), 0.05, [('speed_limit_30', 0.90)]),  # sure: one reading
    ((0.01, 0.01, 0.01, 0.00, 0.97), 0.05, []),  # dropped: no readings at all
    ((0.02, 0.30, 0.08, 0.60, 0.00), 0.05, [('speed_limit_50', 0.30), ('stop', 0.08)]),  # never a danger reading
])
def test_alternative_p_reports_an_unsure_box_as_each_reading_it_may_be(probs, alternative_p, expected):
    spec = RefinerSpec(pathlib.Path('signs.onnx'), FIVE, FIVE[:3], 32, 0.0, None, ('danger',), 0.9, 0.95,
                       alternative_p)
    out = Refiner(FixedClassifier(probs), spec, NAMES).refine(np.zeros((100, 300, 3), np.uint8),
                                                              [det('speed_limit_50', 0.8, 10)])
    assert [(d.label, d.class_id) for d in out] == [(label, NAMES.index(label)) for label, _ in expected]
    assert [d.score for d in out] == pytest.approx([0.8 * q for _, q in expected])
    assert all(d[2:6] == (10, 10, 40, 40) for d in out)
    # two readings of one box never both reach the controller's 0.5 (their probabilities sum to <= 1)
    assert sum(d.score >= 0.5 for d in out) <= 1


def test_refiner_without_limits_runs_no_classifier():
    refiner, image = refiner_and_image()
    dets = [det('danger', 0.9, 10)]
    assert refiner.refine(image, dets) == dets and refiner.backend.calls == 0
    assert refiner.refine(image, []) == []


def test_refiner_rejects_a_classifier_whose_input_size_disagrees_with_the_metadata():
    backend = ColourClassifier()
    backend.input_hw = (48, 48)
    spec = RefinerSpec(pathlib.Path('speed.onnx'), ('a', 'b'), ('speed_limit_30',), 32, 0.1)
    with pytest.raises(ModelMetadataError, match='classifier input is 48x48 but the metadata says input_size 32'):
        Refiner(backend, spec, NAMES)


def test_open_detector_names_a_missing_refiner_model_and_can_run_without_it(tmp_path):
    model = make_model(tmp_path)
    meta_path = model.with_suffix('.json')
    data = json.loads(meta_path.read_text())
    data['refiner'] = GOOD['refiner']
    meta_path.write_text(json.dumps(data))
    with pytest.raises(ModelNotFoundError, match=r'speed\.onnx: refiner model not found \(named by .*signs\.json\)'):
        open_detector(model, backend='onnxruntime-cpu')
    detector, _ = open_detector(model, backend='onnxruntime-cpu', refine=False)
    assert detector.refiner is None
    detector.close()


# --- the shipped classifier -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shipped():
    """The shipped refiner, opened once for the module's many parametrized cases."""
    meta = load_metadata(default_model().with_suffix('.json'))
    if meta.refiner is None:
        pytest.fail('models/signs.json names no refiner')
    from train_fou.vision.detector import open_refiner
    refiner = open_refiner(meta, 'onnxruntime-cpu')
    yield refiner
    refiner.close()


def scene_with(kind, height_px, background=(96, 110, 120)):
    """A 640x480 frame with one canonical sign on a plain background, and the sign face's box."""
    image = np.empty((480, 640, 3), np.uint8)
    image[:] = background
    rgba, (x1, y1, x2, y2) = render_sign(kind, height_px)
    rgb = image[..., ::-1].copy()
    paste_rgba(rgb, rgba, 300, 100)
    return np.ascontiguousarray(rgb[..., ::-1]), (300 + x1, 100 + y1, 300 + x2, 100 + y2)


def red_disc_scene(diameter_px=30):
    """The closed loop's false stop: a brownish-red disc on a wall (sim run 5 of seed 1)."""
    image = np.empty((480, 640, 3), np.uint8)
    image[:] = (190, 170, 230)
    cv2.circle(image, (300, 100), diameter_px // 2, (40, 70, 160), -1, cv2.LINE_AA)
    r = diameter_px / 2
    return image, (300 - r, 100 - r, 300 + r, 100 + r)


@pytest.mark.parametrize('kind, height_px, detected_as, expected', [
    ('speed_limit_30', 22, 'speed_limit_50', 'speed_limit_30'),
    ('speed_limit_30', 40, 'speed_limit_50', 'speed_limit_30'),
    ('speed_limit_30', 90, 'speed_limit_50', 'speed_limit_30'),
    ('speed_limit_50', 22, 'speed_limit_30', 'speed_limit_50'),
    ('speed_limit_50', 40, 'speed_limit_30', 'speed_limit_50'),
    ('speed_limit_50', 90, 'speed_limit_30', 'speed_limit_50'),
    ('stop', 22, 'stop', 'stop'), ('stop', 60, 'speed_limit_30', 'stop'),
    ('no_entry', 40, 'speed_limit_30', None), ('no_parking', 40, 'speed_limit_50', None),
    ('red_disc', 30, 'stop', None),
])
def test_shipped_refiner_reads_rendered_signs_and_rejects_red_distractors(kind, height_px, detected_as, expected,
                                                                          shipped):
    image, box = red_disc_scene(height_px) if kind == 'red_disc' else scene_with(kind, height_px)
    out = shipped.refine(image, [Detection(NAMES.index(detected_as), 0.9, *box, detected_as)])
    assert [d.label for d in out] == ([expected] if expected else [])


@pytest.mark.parametrize('kind', ['danger_railway', 'danger_children', 'danger_workers'])
@pytest.mark.parametrize('height_px', [20, 40])
def test_shipped_refiner_never_lets_a_false_limit_or_stop_overrule_a_danger_triangle(kind, height_px, shipped):
    """Safety: the detector also calls the triangle a 30 or a stop, scored higher than its danger box."""
    image, box = scene_with(kind, height_px)
    for wrong in ('speed_limit_30', 'speed_limit_50', 'stop'):
        out = shipped.refine(image, [Detection(NAMES.index(wrong), 0.95, *box, wrong),
                                     Detection(NAMES.index('danger'), 0.45, *box, 'danger')])
        assert [d.label for d in out] == ['danger'], wrong


@pytest.mark.parametrize('kind', ['warning_pedestrian_other', 'warning_children_other', 'warning_lights_other'])
@pytest.mark.parametrize('height_px', [40, 70])
def test_shipped_refiner_vetoes_other_brands_white_triangles_detected_as_danger(kind, height_px, shipped):
    """The closed loop's false danger latch (sim seed 1, runs 24 and 97): a white pedestrian triangle."""
    image, box = scene_with(kind, height_px)
    assert shipped.refine(image, [Detection(NAMES.index('danger'), 0.45, *box, 'danger')]) == []


@pytest.mark.parametrize('kind', ['danger_railway', 'danger_children', 'danger_workers', 'danger_general',
                                  'danger_crossing'])
@pytest.mark.parametrize('height_px', [16, 20, 40, 90])
@pytest.mark.parametrize('background', [(96, 110, 120), (30, 30, 30), (200, 200, 200), (40, 160, 200)])
def test_shipped_refiner_never_vetoes_a_danger_triangle(kind, height_px, background, shipped):
    image, box = scene_with(kind, height_px, background)
    danger = Detection(NAMES.index('danger'), 0.45, *box, 'danger')
    assert shipped.refine(image, [danger]) == [danger]


def test_merge_group_scores_combines_the_limits_by_noisy_or_into_the_first_class():
    output = np.zeros((1, 8, 3), np.float32)  # 4 box rows + 4 classes, 3 anchors
    output[0, 4:, 0] = (0.45, 0.42, 0.1, 0.0)  # unsure between 30 and 50
    output[0, 4:, 1] = (0.0, 0.0, 0.9, 0.0)  # a stop sign
    output[0, 4:, 2] = (0.0, 0.6, 0.0, 0.3)  # a 50
    merged = merge_group_scores(output, (0, 1), 4)
    assert merged.shape == (8, 3)
    assert merged[4, 0] == pytest.approx(1 - 0.55 * 0.58) and merged[5, 0] == 0.0
    assert merged[4, 2] == pytest.approx(0.6) and merged[5].max() == 0.0
    assert merged[6, 1] == pytest.approx(0.9) and merged[7, 2] == pytest.approx(0.3)
    assert output[0, 5, 0] == pytest.approx(0.42)  # the backend's output is left alone

