"""The shared procedural sign renderer (train_fou.render.signs)."""
from __future__ import annotations

import numpy as np
import pytest

from train_fou.render.signs import (
    ALL_KINDS, CLASS_KINDS, CLASS_NAMES, DISTRACTOR_KINDS, KIND_CLASS, RenderError, kind_class,
    render_sign, render_sign_layers,
)


def test_class_kinds_map_onto_the_model_classes_in_order():
    assert CLASS_NAMES == ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')
    assert sorted(set(KIND_CLASS.values())) == [0, 1, 2, 3]
    assert not set(CLASS_KINDS) & set(DISTRACTOR_KINDS)
    assert kind_class('no_entry') is None
    assert kind_class('danger_workers') == 3


@pytest.mark.parametrize('kind', ALL_KINDS)
@pytest.mark.parametrize('height_px', [12, 40, 150])
def test_every_kind_renders_a_face_box_of_the_asked_height_inside_the_sprite(kind, height_px):
    rgba, box = render_sign(kind, height_px, np.random.default_rng(3))
    assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= rgba.shape[1] and 0 <= y1 < y2 <= rgba.shape[0]
    assert abs((y2 - y1) - height_px) <= max(2, 0.08 * height_px)
    assert rgba[y1:y2, x1:x2, 3].max() == 255
    # the pole and base plate hang below the face
    assert rgba.shape[0] > y2 + height_px // 2


def test_canonical_sign_is_identical_on_every_call_and_seeded_signs_are_deterministic():
    a, box_a = render_sign('speed_limit_30', 48)
    b, box_b = render_sign('speed_limit_30', 48)
    assert box_a == box_b and np.array_equal(a, b)
    c = render_sign_layers('stop', 30, np.random.default_rng(7))
    d = render_sign_layers('stop', 30, np.random.default_rng(7))
    assert c.box == d.box and np.array_equal(c.rgba, d.rgba) and np.array_equal(c.face_mask, d.face_mask)


def test_sign_without_pole_is_only_the_face():
    rgba, box = render_sign('danger_railway', 60, pole=False)
    assert rgba.shape[0] - box[3] <= 3


def test_speed_limit_faces_differ_in_their_digits():
    a, _ = render_sign('speed_limit_30', 64, pole=False)
    b, _ = render_sign('speed_limit_50', 64, pole=False)
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1


@pytest.mark.parametrize('kind,height', [('speed_limit_40', 40), ('stop', 0), ('stop', 10**6)])
def test_bad_arguments_raise_render_error_naming_the_value(kind, height):
    with pytest.raises(RenderError, match=str(height) if kind == 'stop' else kind):
        render_sign(kind, height)
