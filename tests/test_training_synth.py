"""Synthetic data generator (training/synth.py): deterministic, labels inside the image, YOLO files written.

Runs in the runtime venv: the generator uses numpy + OpenCV only, never torch.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training.dataset import read_labels  # noqa: E402
from training.synth import SynthConfig, generate_dataset, generate_image, preview_grid  # noqa: E402


def test_generate_image_is_deterministic_for_a_seed_and_differs_between_seeds():
    a, la = generate_image(5, 'train', 3)
    b, lb = generate_image(5, 'train', 3)
    c, _ = generate_image(6, 'train', 3)
    assert np.array_equal(a, b) and la == lb
    assert not np.array_equal(a, c)


def test_splits_draw_different_images_for_the_same_index():
    a, _ = generate_image(0, 'train', 0)
    b, _ = generate_image(0, 'test', 0)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_labels_lie_inside_the_image_and_use_the_model_classes():
    for i in range(12):
        img, labels = generate_image(1, 'train', i)
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape[2] == 3 and {w, h} == {640, 480}
        for cls, (x1, y1, x2, y2) in labels:
            assert cls in (0, 1, 2, 3)
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert y2 - y1 >= SynthConfig().min_face_px * 0.6


def test_some_images_have_no_class_sign_and_small_signs_dominate():
    heights, empty = [], 0
    for i in range(60):
        _, labels = generate_image(2, 'train', i)
        empty += not labels
        heights += [b[3] - b[1] for _, b in labels]
    assert empty >= 1
    assert np.mean(np.array(heights) <= 70) > 0.4


def test_generate_dataset_writes_yolo_splits_data_yaml_and_a_preview(tmp_path):
    counts = {'train': 3, 'val': 1, 'test': 2}
    per_split = generate_dataset(tmp_path, counts, seed=4)
    assert (tmp_path / 'data.yaml').is_file()
    for split, n in counts.items():
        images = sorted((tmp_path / 'images' / split).glob('*.jpg'))
        labels = sorted((tmp_path / 'labels' / split).glob('*.txt'))
        assert len(images) == len(labels) == n
        total = sum(len(read_labels(p, 640, 480)) for p in labels)
        assert total == per_split[split]
    png = preview_grid(tmp_path, tmp_path / 'preview.png', n=4)
    assert png.stat().st_size > 1000
