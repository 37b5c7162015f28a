"""mAP and confusion matrix of training/evaluate.py on hand-made predictions (no model, no torch)."""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training.evaluate import (  # noqa: E402
    Pred, Truth, average_precision, box_iou, compute_metrics, confusion_matrix, format_table, save_confusion_png,
)

NAMES = ['speed_limit_30', 'speed_limit_50', 'stop', 'danger']


def test_box_iou_of_identical_disjoint_and_half_overlapping_boxes():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]])
    assert np.allclose(iou, [[1.0, 0.0, 1 / 3]])


def test_perfect_predictions_give_map_one_for_every_present_class():
    images = [([Pred(0, 0.9, (10, 10, 50, 50)), Pred(2, 0.8, (100, 100, 140, 150))],
               [Truth(0, (10, 10, 50, 50)), Truth(2, (100, 100, 140, 150))])]
    m = compute_metrics(images, NAMES)
    assert m['mAP50'] == pytest.approx(1.0) and m['mAP50-95'] == pytest.approx(1.0)
    assert np.isnan(m['per_class']['speed_limit_50']['mAP50'])  # absent classes do not count
    assert m['per_class']['stop']['instances'] == 1


def test_a_false_positive_scored_below_every_true_positive_costs_nothing():
    images = [([Pred(3, 0.9, (0, 0, 20, 20)), Pred(3, 0.1, (200, 200, 220, 220))], [Truth(3, (0, 0, 20, 20))])]
    assert compute_metrics(images, NAMES)['mAP50'] == pytest.approx(1.0)


def test_a_false_positive_scored_above_the_true_positive_halves_precision():
    images = [([Pred(3, 0.9, (200, 200, 220, 220)), Pred(3, 0.5, (0, 0, 20, 20))], [Truth(3, (0, 0, 20, 20))])]
    assert compute_metrics(images, NAMES)['mAP50'] == pytest.approx(0.5)


def test_half_the_objects_found_gives_about_half_the_ap():
    images = [([Pred(1, 0.9, (0, 0, 20, 20))], [Truth(1, (0, 0, 20, 20)), Truth(1, (50, 50, 70, 70))])]
    assert compute_metrics(images, NAMES)['mAP50'] == pytest.approx(51 / 101)


def test_wrong_class_is_no_match_and_iou_0575_counts_only_at_thresholds_050_and_055():
    wrong = [([Pred(1, 0.9, (0, 0, 20, 20))], [Truth(0, (0, 0, 20, 20))])]
    assert compute_metrics(wrong, NAMES)['per_class']['speed_limit_30']['mAP50'] == 0.0
    # a 20x20 truth and a 20x11.5 box inside it: IoU 0.575
    loose = [([Pred(0, 0.9, (0, 0, 20, 11.5))], [Truth(0, (0, 0, 20, 20))])]
    m = compute_metrics(loose, NAMES)['per_class']['speed_limit_30']
    assert m['mAP50'] == pytest.approx(1.0) and m['mAP50-95'] == pytest.approx(0.2)


def test_one_truth_matches_one_detection_only():
    images = [([Pred(2, 0.9, (0, 0, 20, 20)), Pred(2, 0.8, (0, 0, 20, 20))], [Truth(2, (0, 0, 20, 20))])]
    m = compute_metrics(images, NAMES)['per_class']['stop']
    assert m['detections'] == 2 and m['mAP50'] == pytest.approx(1.0)


def test_average_precision_without_detections_is_zero_and_without_truth_nan():
    assert average_precision(np.zeros(0), np.zeros(0), 3) == 0.0
    assert np.isnan(average_precision(np.ones(1), np.ones(1), 0))


def test_confusion_matrix_counts_confusions_misses_and_background_detections(tmp_path):
    images = [
        ([Pred(0, 0.9, (0, 0, 20, 20)), Pred(1, 0.8, (50, 50, 70, 70)), Pred(2, 0.7, (300, 300, 320, 320)),
          Pred(3, 0.1, (400, 400, 420, 420))],                      # below the threshold: ignored
         [Truth(0, (0, 0, 20, 20)), Truth(0, (50, 50, 70, 70)), Truth(3, (100, 100, 130, 130))]),
    ]
    m = confusion_matrix(images, 4, conf_threshold=0.25)
    expected = np.zeros((5, 5), int)
    expected[0, 0] = 1   # correct
    expected[1, 0] = 1   # a 30 taken for a 50
    expected[2, 4] = 1   # a stop on the background
    expected[4, 3] = 1   # a danger sign missed
    assert np.array_equal(m, expected)
    save_confusion_png(m, NAMES, tmp_path / 'cm.png')
    assert (tmp_path / 'cm.png').stat().st_size > 1000


def test_format_table_lists_every_class_and_the_mean():
    report = {'per_class': {n: {'instances': 2, 'mAP50': 1.0, 'mAP50-95': 0.5} for n in NAMES},
              'mAP50': 1.0, 'mAP50-95': 0.5}
    table = format_table(report)
    assert all(n in table for n in NAMES) and '**1.000**' in table


def test_boxes_below_the_minimum_height_are_ignored_not_counted_as_misses_or_false_positives():
    images = [([Pred(0, 0.95, (300, 300, 310, 310)),     # a 10 px detection on nothing: ignored
                Pred(0, 0.9, (0, 0, 40, 40)),            # found the big sign
                Pred(0, 0.8, (100, 100, 110, 110))],     # found the small sign: ignored
               [Truth(0, (0, 0, 40, 40)), Truth(0, (100, 100, 110, 110)), Truth(0, (200, 200, 212, 212))])]
    gated = compute_metrics(images, NAMES, min_height_px=20)['per_class']['speed_limit_30']
    assert gated['instances'] == 1 and gated['mAP50'] == pytest.approx(1.0)
    ungated = compute_metrics(images, NAMES)['per_class']['speed_limit_30']
    assert ungated['instances'] == 3 and ungated['mAP50'] < 0.7
