"""The shared procedural sign renderer (train_fou.render.signs)."""
from __future__ import annotations

import numpy as np
import pytest

from train_fou.render.signs import (
    ALL_KINDS, CLASS_KINDS, CLASS_NAMES, DISTRACTOR_KINDS, FONT_FILES, KIND_CLASS, RenderError, font_path,
    kind_class, render_sign, render_sign_layers,
)

DANGER_KINDS = [k for k in CLASS_KINDS if KIND_CLASS[k] == 3]
PICTOGRAM_TRIANGLES = ['danger_children', 'danger_railway', 'danger_workers', 'danger_general', 'danger_crossing']
OTHER_TRIANGLES = ['warning_children_other', 'warning_lights_other', 'warning_pedestrian_other']


def face(kind, height_px=200, rng=None):
    """The face crop (RGB int array) and its mask (bool) of a sign drawn without its pole."""
    layers = render_sign_layers(kind, height_px, rng, pole=False)
    x1, y1, x2, y2 = layers.box
    return layers.rgba[y1:y2, x1:x2, :3].astype(int), layers.face_mask[y1:y2, x1:x2] > 200


def radial(rgb, lo, hi):
    """Pixels of a round face between radii lo and hi (fractions of the radius)."""
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx + 0.5 - w / 2, yy + 0.5 - h / 2) / (min(h, w) / 2)
    return rgb[(d >= lo) & (d <= hi)]


def is_dark(rgb):
    return rgb.max(axis=-1) < 90


def is_yellow(rgb):
    return (rgb[..., 0] > 170) & (rgb[..., 1] > 140) & (rgb[..., 2] < 100)


def is_red(rgb):
    return (rgb[..., 0] > 160) & (rgb[..., 1] < 130) & (rgb[..., 2] < 130)


def is_white(rgb):
    return rgb.min(axis=-1) > 190


def test_class_kinds_map_onto_the_model_classes_in_order():
    assert CLASS_NAMES == ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')
    assert sorted(set(KIND_CLASS.values())) == [0, 1, 2, 3]
    assert not set(CLASS_KINDS) & set(DISTRACTOR_KINDS)
    assert set(ALL_KINDS) == set(CLASS_KINDS) | set(DISTRACTOR_KINDS)
    assert kind_class('no_entry') is None
    assert kind_class('danger_workers') == 3
    assert kind_class('speed_limit_30_other') == 0 and kind_class('speed_limit_50_other') == 1


def test_danger_is_the_yellow_lego_triangles_and_white_triangles_are_distractors():
    # the simulator (train_fou.sim.track.label_of) reads every 'danger_*' kind as class danger
    assert set(DANGER_KINDS) == {k for k in ALL_KINDS if k.startswith('danger_')}
    assert {'danger_children', 'danger_railway', 'danger_workers'} <= set(DANGER_KINDS)
    assert set(OTHER_TRIANGLES) | {'traffic_light', 'blank_triangle'} <= set(DISTRACTOR_KINDS)
    for kind in DANGER_KINDS:
        rgb, mask = face(kind)
        assert is_yellow(rgb)[mask].mean() > 0.35, kind
        assert (is_yellow(rgb) | is_dark(rgb))[mask].mean() > 0.85, kind   # yellow and black, no white or red
        assert not is_white(rgb)[mask].any() and is_red(rgb)[mask].mean() < 0.01, kind


@pytest.mark.parametrize('kind', PICTOGRAM_TRIANGLES)
def test_danger_triangles_carry_a_dark_pictogram_and_the_blank_triangle_none(kind):
    def centre_dark(k):
        rgb, _mask = face(k)
        h, w = rgb.shape[:2]
        return is_dark(rgb[int(0.55 * h):int(0.85 * h), int(0.35 * w):int(0.65 * w)]).mean()
    assert centre_dark(kind) > 0.1
    assert centre_dark('blank_triangle') < 0.01
    rgb, mask = face('blank_triangle')
    assert is_yellow(rgb)[mask].mean() > 0.5


@pytest.mark.parametrize('kind', OTHER_TRIANGLES)
def test_other_brands_warning_triangles_are_white_with_a_red_border(kind):
    rgb, mask = face(kind)
    assert is_white(rgb)[mask].mean() > 0.3
    assert is_red(rgb)[mask].mean() > 0.3
    assert is_yellow(rgb)[mask].mean() < 0.05   # (the lights' yellow lamp only)


def test_lego_speed_limits_have_a_thin_red_ring_inside_a_white_margin_and_dark_digits():
    for kind in ('speed_limit_30', 'speed_limit_50'):
        rgb, _mask = face(kind)
        assert is_red(radial(rgb, 0.83, 0.87)).mean() > 0.9, kind     # the ring
        assert is_white(radial(rgb, 0.93, 0.96)).mean() > 0.8, kind    # white margin outside it
        assert is_white(radial(rgb, 0.7, 0.76)).mean() > 0.8, kind     # white inside it
        assert is_red(radial(rgb, 0.0, 0.78)).mean() < 0.01, kind
        assert is_dark(radial(rgb, 0.0, 0.6)).mean() > 0.1, kind       # black digits


def test_the_canonical_30_is_heavy_bold_and_the_50_regular():
    rgb30, _ = face('speed_limit_30')
    rgb50, _ = face('speed_limit_50')
    assert rgb30.shape == rgb50.shape
    assert np.abs(rgb30 - rgb50).mean() > 5
    dark30, dark50 = is_dark(radial(rgb30, 0, 0.7)).sum(), is_dark(radial(rgb50, 0, 0.7)).sum()
    assert dark30 > 1.5 * dark50 > 0


def test_other_brands_speed_limits_have_a_wide_orange_red_ring_and_grey_digits():
    for kind in ('speed_limit_30_other', 'speed_limit_50_other'):
        rgb, _mask = face(kind)
        ring = radial(rgb, 0.8, 0.95)
        assert is_red(ring).mean() > 0.9, kind
        r, g, b = np.median(ring, axis=0)
        assert r > 180 and 70 < g < 150 and b < 120, (kind, r, g, b)   # orange-red, not LEGO's pinkish red
        digits = radial(rgb, 0.0, 0.6)
        ink = digits[digits.max(axis=-1) < 150]
        assert len(ink) > 0.05 * len(digits), kind
        assert 60 < np.median(ink) < 140, kind                          # grey-black, not black
    lego, _ = face('speed_limit_30')
    other, _ = face('speed_limit_30_other')
    assert is_dark(radial(other, 0, 0.6)).sum() < 0.5 * is_dark(radial(lego, 0, 0.6)).sum()


def test_blank_discs_and_empty_rings_have_no_digits():
    for kind in ('blank_disc', 'ring_blank'):
        rgb, _mask = face(kind)
        assert not is_dark(radial(rgb, 0, 0.7)).any(), kind
    rgb, _ = face('blank_disc')
    assert not is_red(rgb).any()
    rgb, _ = face('ring_digits')
    assert is_dark(radial(rgb, 0, 0.6)).mean() > 0.05


def test_stands_black_lego_bar_and_the_other_brands_white_pole():
    def pole_pixels(kind):
        rgba, (x1, _y1, x2, y2) = render_sign(kind, 100)
        cx = (x1 + x2) // 2
        return rgba[y2 + 10:y2 + 60, cx - 2:cx + 3]
    lego, other = pole_pixels('speed_limit_30'), pole_pixels('speed_limit_30_other')
    assert (lego[..., 3] == 255).all() and (other[..., 3] == 255).all()
    assert np.median(lego[..., :3]) < 70
    assert np.median(other[..., :3]) > 170


def test_traffic_light_is_a_dark_housing_with_a_lit_lamp():
    rgb, mask = face('traffic_light')
    assert (rgb.max(axis=-1) < 110)[mask].mean() > 0.5
    assert (rgb.max(axis=-1) > 200).any()


@pytest.mark.parametrize('kind', ALL_KINDS)
@pytest.mark.parametrize('height_px', [6, 12, 20, 40, 150, 300])
def test_every_kind_renders_a_face_box_of_the_asked_height_inside_the_sprite(kind, height_px):
    rgba, box = render_sign(kind, height_px, np.random.default_rng(3))
    assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= rgba.shape[1] and 0 <= y1 < y2 <= rgba.shape[0]
    assert abs((y2 - y1) - height_px) <= max(2, 0.08 * height_px)
    assert rgba[y1:y2, x1:x2, 3].max() == 255
    # the pole and base hang below the face
    assert rgba.shape[0] > y2 + height_px // 2


@pytest.mark.parametrize('kind', ALL_KINDS)
def test_canonical_and_seeded_signs_are_deterministic(kind):
    a = render_sign_layers(kind, 48)
    b = render_sign_layers(kind, 48)
    assert a.box == b.box and np.array_equal(a.rgba, b.rgba) and np.array_equal(a.face_mask, b.face_mask)
    c = render_sign_layers(kind, 30, np.random.default_rng(7))
    d = render_sign_layers(kind, 30, np.random.default_rng(7))
    assert c.box == d.box and np.array_equal(c.rgba, d.rgba) and np.array_equal(c.face_mask, d.face_mask)


def test_seeded_digits_vary_in_face_weight_and_width():
    darks, widths = [], []
    for seed in range(16):
        rgb, _ = face('speed_limit_30', 120, np.random.default_rng(seed))
        darks.append(is_dark(radial(rgb, 0, 0.7)).sum())
        h, w = rgb.shape[:2]
        inner = rgb[int(0.2 * h):int(0.8 * h), int(0.15 * w):int(0.85 * w)]
        cols = np.nonzero(is_dark(inner).any(axis=0))[0]
        widths.append(cols.max() - cols.min())
    assert max(darks) > 1.4 * min(darks) > 0
    assert max(widths) > 1.15 * min(widths)


def test_small_speed_limits_keep_a_dark_centre_as_the_train_camera_sees_them():
    for kind in ('speed_limit_30', 'speed_limit_50'):
        for h in (16, 24):
            rgb, _ = face(kind, h)
            centre = rgb[h // 3:2 * h // 3, h // 3:2 * h // 3].mean()
            assert centre < 0.85 * np.median(radial(rgb, 0.6, 0.75)), (kind, h)


def test_font_files_resolve_and_render_digits():
    from PIL import ImageFont
    for name in FONT_FILES:
        path = font_path(name)
        assert path.is_file(), path
        box = ImageFont.truetype(str(path), 40).getbbox('30')
        assert box[2] - box[0] > 10 and box[3] - box[1] > 10, name
    with pytest.raises(RenderError, match='comic'):
        font_path('comic')


def test_sign_without_pole_is_only_the_face():
    rgba, box = render_sign('danger_railway', 60, pole=False)
    assert rgba.shape[0] - box[3] <= 3


@pytest.mark.parametrize('kind,height', [('speed_limit_40', 40), ('stop', 0), ('stop', 10**6)])
def test_bad_arguments_raise_render_error_naming_the_value(kind, height):
    with pytest.raises(RenderError, match=str(height) if kind == 'stop' else kind):
        render_sign(kind, height)
