"""The refiner's training data: crops labelled from the ground truth and from the detector's own mistakes."""
from __future__ import annotations

import json
import pathlib
import sys

import cv2
import onnx
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from train_fou.vision import load_metadata  # noqa: E402
from train_fou.vision.postprocess import Detection  # noqa: E402
from train_fou.vision.refine import crop_square  # noqa: E402
from training.dataset import write_labels  # noqa: E402
from training.refiner import (  # noqa: E402
    ALTERNATIVE_P, DANGER_CLASS, DROP_P, INPUT_SIZE, MARGIN, NAMES, OTHER, STOP_CLASS, VETO_P, RefinerMismatchError,
    attach_to_detector, collect_crops, confusion_by_band,
)

LIMIT_30, LIMIT_50, STOP = (40, 40, 80, 80), (200, 40, 260, 100), (400, 300, 430, 330)
DISTRACTOR = (500, 60, 540, 100)
DANGER = (100, 300, 140, 340)


def dataset(tmp_path: pathlib.Path) -> tuple[pathlib.Path, np.ndarray]:
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    (tmp_path / 'images' / 'train').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'images' / 'train' / 'a.png'), image)
    write_labels(tmp_path / 'labels' / 'train' / 'a.txt', [(0, LIMIT_30), (1, LIMIT_50), (2, STOP), (3, DANGER)],
                 640, 480)
    return tmp_path, image


class ScriptedDetector:
    """Detector stand-in: finds the 50 (as a 30), the stop sign (as a 50 and as a stop), a distractor (as
    a 30) and the danger sign (as a stop, and as danger)."""

    class Result:
        detections = [Detection(0, 0.6, 201, 41, 259, 99, 'speed_limit_30'),
                      Detection(1, 0.4, 401, 301, 429, 329, 'speed_limit_50'),
                      Detection(0, 0.3, *DISTRACTOR, 'speed_limit_30'),
                      Detection(2, 0.9, *STOP, 'stop'),
                      Detection(2, 0.2, 101, 301, 139, 339, 'stop'),
                      Detection(3, 0.8, *DANGER, 'danger')]

    def detect(self, image):
        return self.Result()


def test_labels_alone_give_each_refined_sign_exactly_and_jittered(tmp_path):
    root, image = dataset(tmp_path)
    crops, labels, heights = collect_crops([root], 'train', None, jitters=2)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, STOP_CLASS, STOP_CLASS, STOP_CLASS,
                               DANGER_CLASS, DANGER_CLASS, DANGER_CLASS]  # danger: checked, so learnt
    assert crops.shape == (12, INPUT_SIZE, INPUT_SIZE, 3)
    _, labels, _ = collect_crops([root], 'train', None, jitters=0)
    assert labels.tolist() == [0, 1, STOP_CLASS, DANGER_CLASS]
    assert np.array_equal(crops[0], crop_square(image, LIMIT_30, INPUT_SIZE, MARGIN))
    assert heights[0] == pytest.approx(40, abs=0.01) and heights[3] == pytest.approx(60, abs=0.01)


def test_detections_add_crops_labelled_by_the_truth_they_overlap(tmp_path):
    root, image = dataset(tmp_path)
    crops, labels, _ = collect_crops([root], 'train', ScriptedDetector(), jitters=0)
    # truth: 30, 50, stop, danger; detections: the 50 read as 30 -> 50, stop read as 50 -> stop,
    # distractor -> other, the stop -> stop, the danger sign read as stop -> danger (at runtime a limit
    # or stop box read as danger is dropped), the danger detection -> danger
    assert labels.tolist() == [0, 1, STOP_CLASS, DANGER_CLASS, 1, STOP_CLASS, OTHER, STOP_CLASS, DANGER_CLASS,
                               DANGER_CLASS]
    assert np.array_equal(crops[4], crop_square(image, (201, 41, 259, 99), INPUT_SIZE, MARGIN))


def test_an_empty_split_gives_no_crops(tmp_path):
    crops, labels, heights = collect_crops([tmp_path], 'val')
    assert crops.shape == (0, INPUT_SIZE, INPUT_SIZE, 3) and labels.size == 0 and heights.size == 0


def test_confusion_by_band_counts_signs_per_height_band():
    truth = np.array([0, 0, 1, 1, OTHER])
    pred = np.array([0, 1, 1, 1, 0])
    heights = np.array([10.0, 25.0, 25.0, 70.0, 30.0])
    report = confusion_by_band(truth, pred, heights)
    assert report['accuracy'] == 0.6 and report['crops'] == 5
    assert report['confusion_true_rows'] == [[1, 1, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0],
                                             [1, 0, 0, 0, 0]]
    bands = {tuple(b['height_px']): (b['sign_crops'], b['sign_accuracy']) for b in report['bands']}
    assert bands[(0, 16)] == (1, 1.0) and bands[(20, 30)] == (2, 0.5) and bands[(60, 10000)] == (1, 1.0)
    assert bands[(16, 20)] == (0, None)


def test_attach_names_the_refiner_in_metadata_the_runtime_accepts(tmp_path):
    meta = tmp_path / 'signs.json'
    meta.write_text(json.dumps({'names': ['speed_limit_30', 'speed_limit_50', 'stop', 'danger'],
                                'imgsz': [416, 416], 'data_hash': 'x'}))
    attach_to_detector(meta, classifier_onnx(tmp_path / 'signs_refine.onnx', len(NAMES)))
    spec = load_metadata(meta).refiner
    assert spec.model == tmp_path / 'signs_refine.onnx' and spec.names == NAMES
    assert spec.applies_to == ('speed_limit_30', 'speed_limit_50', 'stop') and spec.input_size == INPUT_SIZE
    assert spec.verifies == ('danger',) and spec.veto_p == VETO_P and spec.drop_p == DROP_P
    assert spec.alternative_p == ALTERNATIVE_P
    assert json.loads(meta.read_text())['data_hash'] == 'x'  # the rest is kept


def test_attach_refuses_a_refiner_trained_with_other_classes(tmp_path):
    meta = tmp_path / 'signs.json'
    meta.write_text(json.dumps({'names': ['speed_limit_30', 'speed_limit_50', 'stop', 'danger'],
                                'imgsz': [416, 416], 'data_hash': 'x'}))
    before = meta.read_text()
    with pytest.raises(RefinerMismatchError, match='4 outputs.*retrain'):
        attach_to_detector(meta, classifier_onnx(tmp_path / 'old_refine.onnx', 4))
    assert meta.read_text() == before


def classifier_onnx(path: pathlib.Path, classes: int) -> pathlib.Path:
    """A 1x3x32x32 -> 1x`classes` softmax graph (global pooling and a matmul), like the exported refiner."""
    from onnx import TensorProto, helper, numpy_helper
    weights = numpy_helper.from_array(np.ones((3, classes), np.float32), 'w')
    graph = helper.make_graph(
        [helper.make_node('GlobalAveragePool', ['images'], ['pooled']),
         helper.make_node('Flatten', ['pooled'], ['flat']),
         helper.make_node('MatMul', ['flat', 'w'], ['logits']),
         helper.make_node('Softmax', ['logits'], ['probs'], axis=1)],
        'refiner', [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info('probs', TensorProto.FLOAT, [1, classes])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), str(path))
    return path
