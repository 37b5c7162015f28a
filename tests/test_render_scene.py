"""Procedural backgrounds and compositing (train_fou.render.scene)."""
from __future__ import annotations

import numpy as np
import pytest

from train_fou.render.scene import BACKGROUND_KINDS, background, draw_brick, paste_rgba


@pytest.mark.parametrize('kind', BACKGROUND_KINDS)
def test_every_background_kind_is_deterministic_for_a_seed(kind):
    a, ga = background(kind, 160, 120, np.random.default_rng(11))
    b, gb = background(kind, 160, 120, np.random.default_rng(11))
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and ga == gb
    assert 0 <= ga < 120
    assert a.std() > 1.0   # not a flat colour


def test_unknown_background_is_refused_naming_it():
    with pytest.raises(ValueError, match='sky'):
        background('sky', 10, 10, np.random.default_rng(0))


def test_paste_rgba_blends_by_alpha_and_clips_at_the_borders():
    img = np.zeros((10, 10, 3), np.uint8)
    sprite = np.zeros((4, 4, 4), np.uint8)
    sprite[..., 0] = 200
    sprite[:2, :, 3] = 255     # top half opaque
    sprite[2:, :, 3] = 0       # bottom half transparent
    paste_rgba(img, sprite, 8, -1)   # partly outside: right and top cut off
    assert img[0, 8, 0] == 200 and img[0, 9, 0] == 200
    assert img[1, 8, 0] == 0         # sprite row 2: transparent
    assert img[:, :8].max() == 0
    paste_rgba(img, sprite, 20, 20)  # entirely outside: nothing happens, no error
    half = np.zeros((2, 2, 3), np.uint8)
    s = np.full((2, 2, 4), 128, np.uint8)
    s[..., :3] = 255
    paste_rgba(half, s, 0, 0)
    assert 126 <= half[0, 0, 0] <= 130


def test_draw_brick_paints_inside_its_box_only():
    img = np.zeros((60, 60, 3), np.uint8)
    draw_brick(img, 20, 30, 20, 10, (201, 26, 9), np.random.default_rng(0))
    ys, xs = np.nonzero(img.any(axis=2))
    assert xs.min() >= 19 and xs.max() <= 41 and ys.max() <= 41 and ys.min() >= 20
