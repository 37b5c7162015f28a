"""The simulator-view dataset: labels from the camera's ground truth, deterministic for a seed."""
from __future__ import annotations

import dataclasses
import pathlib
import sys

import cv2
import numpy as np
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import training.simview as simview  # noqa: E402
from train_fou.sim.camera import CameraRenderer, GroundTruth  # noqa: E402
from train_fou.sim.scenario import default_scenario_path, load_scenario  # noqa: E402
from training.dataset import read_labels  # noqa: E402
from training.simview import MIN_LABEL_PX, generate_simview, labels_for, render_world  # noqa: E402
from training.train import prepare_data  # noqa: E402


def _truth(kind, h=20.0, visible=1.0):
    return GroundTruth(kind, 5.0, 2.0, (100.0, 50.0, h, h), visible)


@pytest.mark.parametrize('truth,expected', [
    (_truth('speed_limit_30'), [(0, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('speed_limit_50'), [(1, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('stop'), [(2, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('danger_railway'), [(3, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('danger_children'), [(3, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('danger_workers'), [(3, (100.0, 50.0, 120.0, 70.0))]),
    (_truth('give_way'), []),                        # distractors are background
    (_truth('back_triangle'), []),
    (_truth('no_entry'), []),
    (_truth('stop', h=MIN_LABEL_PX - 0.5), []),      # a few pixels: unlabelled
    (_truth('stop', h=MIN_LABEL_PX), [(2, (100.0, 50.0, 100.0 + MIN_LABEL_PX, 50.0 + MIN_LABEL_PX))]),
    (_truth('danger_workers', visible=0.4), []),     # mostly cut off by the image border
])
def test_labels_follow_the_ground_truth_and_the_model_classes(truth, expected):
    assert labels_for([truth]) == expected


def test_render_world_is_deterministic_and_draws_frames_of_one_world():
    scenario = load_scenario(default_scenario_path())
    a = render_world(scenario, 1000, 'train', 3, frames=3)
    b = render_world(scenario, 1000, 'train', 3, frames=3)
    assert len(a) == 3
    for (img_a, lab_a), (img_b, lab_b) in zip(a, b):
        assert img_a.shape == (480, 640, 3)
        assert (img_a == img_b).all() and lab_a == lab_b
    other = render_world(scenario, 1000, 'val', 3, frames=1)[0][0]
    assert (other != a[0][0]).any()   # splits sample other worlds


def test_generate_simview_writes_a_yolo_dataset_with_labelled_signs(tmp_path):
    counts = {'train': 14, 'val': 2, 'test': 0}
    labels = generate_simview(tmp_path, counts, seed=1000)
    images = sorted((tmp_path / 'images' / 'train').glob('*.jpg'))
    assert len(images) == 14 and len(list((tmp_path / 'images' / 'val').glob('*.jpg'))) == 2
    total = 0
    for image in images:
        boxes = read_labels(tmp_path / 'labels' / 'train' / f'{image.stem}.txt', 640, 480)
        total += len(boxes)
        for cls, (x1, y1, x2, y2) in boxes:
            assert 0 <= cls <= 3 and 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    assert total == labels['train'] > 0
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text())
    assert data['simview']['seed'] == 1000 and data['names'][3] == 'danger'
    assert cv2.imread(str(images[0])).shape == (480, 640, 3)


def test_prepare_data_renders_the_simview_set_once_and_lists_it(tmp_path):
    cfg = {'data': {'simview': {'seed': 1000, 'train': 3, 'val': 1, 'test': 1}}}
    data_yaml, digest = prepare_data(cfg, tmp_path)
    data = yaml.safe_load(data_yaml.read_text())
    assert data['train'] == [str((tmp_path / 'simview' / 'images' / 'train').resolve())]
    stamp = (tmp_path / 'simview' / 'simview.json').stat().st_mtime_ns
    assert prepare_data(cfg, tmp_path)[1] == digest
    assert (tmp_path / 'simview' / 'simview.json').stat().st_mtime_ns == stamp   # not rendered again


#: A pixel changed when a channel differs from the sign-free frame by more than this; a label box
#: must be changed over at least MIN_CHANGED_SHARE of its area (a triangle fills half its box; the
#: default scenario's labelled boxes measured 0.54 and more, with and without the camera effects).
CHANGED_LEVELS = 6
MIN_CHANGED_SHARE = 0.3


def test_every_label_lies_on_a_sign_the_frame_shows(monkeypatch):
    """The same frames rendered from the same worlds without their signs (same positions, light,
    noise and camera effects): under every label the sign changed the picture, and nothing else did."""
    scenario = load_scenario(default_scenario_path())
    worlds = [render_world(scenario, 1000, 'train', world, frames=6) for world in range(3)]

    def without_signs(camera, track, look, sprite_fn=None):
        return CameraRenderer(camera, dataclasses.replace(track, signs=()), look, sprite_fn)
    monkeypatch.setattr(simview, 'CameraRenderer', without_signs)
    labels_seen = 0
    for world, frames in enumerate(worlds):
        for (image, labels), (clean, no_labels) in zip(frames, render_world(scenario, 1000, 'train', world, frames=6)):
            assert no_labels == []
            changed = np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2) > CHANGED_LEVELS
            inside = np.zeros(changed.shape, bool)
            for cls, (x1, y1, x2, y2) in labels:
                box = (slice(int(y1), int(np.ceil(y2))), slice(int(x1), int(np.ceil(x2))))
                assert changed[box].mean() >= MIN_CHANGED_SHARE, (world, cls, (x1, y1, x2, y2))
                inside[box] = True
                labels_seen += 1
            assert changed[~inside].mean() < 0.1   # poles, distractors and unlabelled far signs only
    assert labels_seen >= 20, labels_seen


@pytest.mark.parametrize('share', [0.25, 0.5, 1.0])
def test_the_distractor_pool_holds_the_hard_look_alikes_at_the_asked_share(share):
    from train_fou.render.signs import DISTRACTOR_KINDS, HARD_DISTRACTOR_KINDS
    pool = simview.distractor_pool(share)
    assert set(pool) <= set(DISTRACTOR_KINDS)
    hard = sum(k in HARD_DISTRACTOR_KINDS for k in pool) / len(pool)
    natural = sum(k in HARD_DISTRACTOR_KINDS for k in DISTRACTOR_KINDS) / len(DISTRACTOR_KINDS)
    assert hard == pytest.approx(share + (1 - share) * natural, abs=0.02)
    assert simview.distractor_pool(0.0) is None
    with pytest.raises(ValueError, match='hard_negative_p'):
        simview.distractor_pool(1.5)


def test_render_world_places_the_pool_s_distractors():
    from train_fou.render.signs import DISTRACTOR_KINDS, HARD_DISTRACTOR_KINDS
    scenario = load_scenario(default_scenario_path())
    pool = simview.distractor_pool(1.0)
    distractors = [s.kind for world in range(6) for s in scenario.sample(7, world, pool).track.signs
                   if s.kind in DISTRACTOR_KINDS]
    assert distractors and set(distractors) <= set(HARD_DISTRACTOR_KINDS)
