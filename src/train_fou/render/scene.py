"""Procedural backgrounds and compositing helpers (numpy + OpenCV only).

Used by the synthetic training data (training/synth.py) and available to the
simulator's virtual camera. All images are RGB uint8, H x W x 3.

``background(kind, width, height, rng) -> (rgb, ground_y)``
    one of ``BACKGROUND_KINDS``: ``table`` (wood grain in perspective below a
    wall), ``floor`` (carpet, tiles or parquet), ``room`` (walls, floor,
    furniture, windows), ``rails`` (a LEGO track in the train camera's view),
    ``baseplate`` (a studded LEGO plate), ``clutter`` (bricks everywhere),
    ``plain`` (smooth gradients: a photo backdrop). ``ground_y`` is the row
    of the horizon / back edge of the ground plane (0 when the ground fills
    the frame), so callers can stand objects on the ground.
    Keyword options (the training data's domain randomisation; left out, the
    result is exactly what it was without them): ``wall`` an RGB image
    (height x width x 3) seen above the ground plane instead of the
    procedural wall (a photograph, a random texture); ``ground_texture``
    ``f(rng, h, w) -> float RGB`` for the ground plane instead of the kind's
    own (any size: it is stretched over the plane); ``track`` ``(sleeper_rgb,
    rail_rgb)`` colours of the LEGO track; ``ground_y`` the horizon row
    instead of the kind's random one.
``draw_brick(rgb, x, y, w, h, color, rng)``: a LEGO brick seen from the front
    and slightly above (studs on top), used as clutter and occluders.
``paste_rgba(rgb, sprite, x, y)``: alpha-composite a sprite in place.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

#: LEGO brick colours (sRGB) used for clutter; red and yellow ones on purpose.
BRICK_COLORS = (
    (201, 26, 9), (242, 205, 55), (0, 85, 191), (35, 120, 65), (242, 243, 242), (27, 42, 52),
    (160, 165, 169), (108, 110, 104), (254, 138, 24), (88, 42, 18), (75, 159, 74), (228, 173, 200),
    (10, 52, 99), (145, 80, 28), (215, 197, 153), (187, 233, 11), (255, 240, 58), (114, 14, 15),
)


def _noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth value noise in [-1, 1] with features about `scale` pixels wide."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fractal(rng, h, w, scales=(64, 16, 4)):
    out = np.zeros((h, w), np.float32)
    for i, s in enumerate(scales):
        out += _noise(rng, h, w, s) / (i + 1)
    return out / sum(1 / (i + 1) for i in range(len(scales)))


def _color(rng, base, jitter=20.0):
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, jitter, 3), 0, 255)


def _texture_wood(rng, h, w):
    base = _color(rng, rng.choice([(150, 100, 60), (190, 150, 100), (110, 70, 40), (210, 180, 140), (90, 60, 40)]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = _noise(rng, h, w, 80) * 30
    period = rng.uniform(6, 20)
    grain = np.sin((yy + warp + _noise(rng, h, w, 300) * 60) / period * 2 * math.pi)
    fine = _noise(rng, h, w, 3) * 0.3
    v = 1 + 0.12 * grain + 0.06 * fine + 0.08 * _noise(rng, h, w, 40)
    img = base[None, None, :] * v[..., None]
    if rng.random() < 0.5:  # planks
        plank = int(rng.uniform(40, 120))
        img[(yy.astype(int) % plank) < 2] *= 0.6
    return img


def _texture_carpet(rng, h, w):
    base = _color(rng, rng.choice([(120, 120, 130), (150, 60, 50), (60, 80, 120), (170, 160, 140), (70, 70, 70),
                                    (100, 120, 80)]), 30)
    v = 1 + 0.25 * _noise(rng, h, w, 1.5) + 0.1 * _noise(rng, h, w, 30)
    return base[None, None, :] * v[..., None]


def _texture_tiles(rng, h, w):
    a = _color(rng, rng.choice([(200, 200, 195), (180, 170, 150), (90, 90, 95), (220, 215, 200)]), 20)
    img = np.tile(a, (h, w, 1)) * (1 + 0.05 * _noise(rng, h, w, 8))[..., None]
    t = int(rng.uniform(40, 140))
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.4:
        checker = ((yy // t + xx // t) % 2).astype(bool)
        img[checker] *= rng.uniform(0.6, 0.9)
    grout = ((yy % t) < 2) | ((xx % t) < 2)
    img[grout] = img[grout] * 0.7
    return img


def _texture_plain(rng, h, w):
    a, b = _color(rng, rng.uniform(30, 230, 3), 0), _color(rng, rng.uniform(30, 230, 3), 0)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = a * (1 - t) + b * t
    return np.broadcast_to(img, (h, w, 3)).copy() * (1 + 0.04 * _noise(rng, h, w, 50))[..., None]


def _texture_baseplate(rng, h, w):
    color = _color(rng, rng.choice([(75, 151, 74), (160, 165, 169), (108, 110, 104), (35, 120, 65),
                                    (228, 205, 158)]), 10)
    img = np.tile(color, (h, w, 1)).astype(np.float32)
    pitch = rng.uniform(6, 22)
    r = pitch * 0.3
    y = rng.uniform(0, pitch)
    while y < h + pitch:
        x = rng.uniform(0, pitch)
        while x < w + pitch:
            cv2.circle(img, (int(x + r * 0.25), int(y + r * 0.25)), max(1, int(r)), tuple(color * 0.75), -1,
                       cv2.LINE_AA)
            cv2.circle(img, (int(x), int(y)), max(1, int(r)), tuple(np.minimum(color * 1.15, 255)), -1, cv2.LINE_AA)
            x += pitch
        y += pitch
    return img


_GROUND: dict[str, Callable] = {
    'wood': _texture_wood, 'carpet': _texture_carpet, 'tiles': _texture_tiles, 'baseplate': _texture_baseplate,
}


def _ground_plane(rng, width, height, ground_y, texture):
    """A texture on the ground plane in perspective, from the horizon row `ground_y` down."""
    tex = texture(rng, height * 2, width * 2)
    th, tw = tex.shape[:2]
    h = height - ground_y
    spread = rng.uniform(0.25, 0.9)
    shift = rng.uniform(-0.3, 0.3) * width
    src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
    top_w = width * spread
    cx = width / 2 + shift
    dst = np.float32([[cx - top_w, 0], [cx + top_w, 0], [width * 1.6, h], [-width * 0.6, h]])
    m = cv2.getPerspectiveTransform(src, dst)
    plane = cv2.warpPerspective(np.clip(tex, 0, 255).astype(np.float32), m, (width, max(h, 1)),
                                flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return plane


def _wall(rng, width, height):
    base = _color(rng, rng.choice([(225, 220, 205), (200, 210, 220), (180, 190, 170), (240, 240, 235),
                                   (150, 130, 110), (90, 100, 120)]), 25)
    img = np.tile(base, (height, width, 1)).astype(np.float32)
    img *= (1 + 0.04 * _noise(rng, height, width, 100))[..., None]
    for _ in range(int(rng.integers(0, 5))):  # furniture, doors, shelves, windows
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 0.9) * height
        w, h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.1, 1.0) * height
        if rng.random() < 0.25:  # window: bright, sometimes blown out
            c = _color(rng, (235, 240, 250), 15)
        else:
            c = _color(rng, rng.uniform(20, 230, 3), 0)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(v) for v in c), -1)
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(v) * 0.6 for v in c),
                          int(rng.integers(1, 6)))
    return img


def _rails(rng, img, ground_y, track=None):
    """A LEGO track (dark grey sleepers, grey rails; or `track` colours) running away from the camera."""
    height, width = img.shape[:2]
    vx = width * rng.uniform(0.3, 0.7)
    gauge_near = width * rng.uniform(0.35, 0.8)
    cx_near = width / 2 + rng.uniform(-0.15, 0.15) * width
    curve = rng.uniform(-0.3, 0.3) * width
    sleeper = _color(rng, (60, 62, 60), 10)
    rail = _color(rng, (150, 152, 155), 15)
    if track is not None:
        sleeper, rail = (np.asarray(c, np.float32) for c in track)
    n = 40
    ts = np.linspace(0, 1, n)  # 0 at the bottom of the image, 1 at the horizon

    def at(t, side):
        y = height - (height - ground_y) * (1 - (1 - t) ** 2.2)
        cx = cx_near * (1 - t) + vx * t + curve * t * t
        half = gauge_near / 2 * (1 - t) ** 1.6
        return cx + side * half, y, half
    depth = 0.0
    while depth < 0.97:
        xl, y, half = at(depth, -1.4)
        xr, _, _ = at(depth, 1.4)
        th = max(1.0, half * 0.22)
        cv2.rectangle(img, (int(xl), int(y - th)), (int(xr), int(y)), tuple(float(v) for v in sleeper), -1)
        depth += 0.08 * (1 - depth) + 0.004
    for side in (-1, 1):
        pts = [at(t, side) for t in ts]
        for (x0, y0, h0), (x1, y1, _) in zip(pts, pts[1:]):
            cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), tuple(float(v) for v in rail),
                     max(1, int(h0 * 0.09)), cv2.LINE_AA)


def draw_brick(rgb: np.ndarray, x: float, y: float, w: float, h: float, color, rng: np.random.Generator) -> None:
    """A brick front face at (x, y, w, h) with a lighter top and studs; in place on float or uint8 RGB."""
    color = np.asarray(color, np.float32)
    top_h = h * rng.uniform(0.15, 0.4)
    cv2.rectangle(rgb, (int(x), int(y)), (int(x + w), int(y + h)), tuple(float(v) for v in color * 0.85), -1)
    cv2.rectangle(rgb, (int(x), int(y - top_h)), (int(x + w), int(y)),
                  tuple(float(v) for v in np.minimum(color * 1.1, 255)), -1)
    studs = max(1, int(round(w / max(h * 0.8, 4))))
    sw = w / studs
    for i in range(studs):
        sx = x + sw * (i + 0.5)
        cv2.ellipse(rgb, (int(sx), int(y - top_h * 0.5)), (max(1, int(sw * 0.3)), max(1, int(top_h * 0.3))), 0,
                    0, 360, tuple(float(v) for v in np.minimum(color * 1.25, 255)), -1, cv2.LINE_AA)


def _clutter(rng, img, ground_y, count):
    height, width = img.shape[:2]
    for _ in range(count):
        y = rng.uniform(max(ground_y, 1), height * 1.05)
        depth = (y - ground_y) / max(height - ground_y, 1)
        size = (8 + 120 * depth) * rng.uniform(0.4, 1.6)
        color = BRICK_COLORS[int(rng.integers(len(BRICK_COLORS)))]
        if rng.random() < 0.15:  # round parts: plates, dishes, balls
            cv2.circle(img, (int(rng.uniform(0, width)), int(y)), int(size * 0.5), tuple(float(v) for v in color), -1,
                       cv2.LINE_AA)
        else:
            draw_brick(img, rng.uniform(-size, width), y - size * 0.6, size * rng.uniform(0.6, 2.5),
                       size * rng.uniform(0.3, 0.8), color, rng)


BACKGROUND_KINDS = ('table', 'floor', 'room', 'rails', 'baseplate', 'clutter', 'plain')


def background(kind: str, width: int, height: int, rng: np.random.Generator, *,
               wall: np.ndarray | None = None, ground_texture: Callable | None = None,
               track=None, ground_y: int | None = None) -> tuple[np.ndarray, int]:
    """A background image and the row where its ground plane starts; see the module docstring."""
    if kind not in BACKGROUND_KINDS:
        raise ValueError(f'unknown background {kind!r}; supported: {", ".join(BACKGROUND_KINDS)}')
    if kind == 'plain':
        return np.clip(_texture_plain(rng, height, width), 0, 255).astype(np.uint8), 0
    if ground_y is not None:
        ground_y = int(min(max(ground_y, 0), height - 1))
    elif kind == 'baseplate':
        ground_y = 0 if rng.random() < 0.5 else int(height * rng.uniform(0.1, 0.4))
    elif kind == 'rails':
        ground_y = int(height * rng.uniform(0.25, 0.55))
    else:
        ground_y = int(height * rng.uniform(0.0, 0.6))
    if ground_y <= 0:
        img = np.zeros((height, width, 3), np.float32)
    elif wall is not None:
        img = np.asarray(wall, np.float32).copy()
    else:
        img = _wall(rng, width, height)
    if ground_texture is not None:
        texture = ground_texture
    elif kind == 'table':
        texture = _texture_wood if rng.random() < 0.7 else _texture_plain
    elif kind == 'baseplate':
        texture = _texture_baseplate
    else:
        texture = _GROUND[rng.choice(['wood', 'carpet', 'tiles', 'baseplate'], p=[0.35, 0.3, 0.25, 0.1])]
    img[ground_y:] = _ground_plane(rng, width, height, ground_y, texture)
    if kind == 'table' and ground_y > 0:  # the table's front edge and its shadowed side
        edge = int(ground_y + (height - ground_y) * rng.uniform(0.6, 1.2))
        if edge < height:
            img[edge:] = img[edge:] * rng.uniform(0.3, 0.6)
    if kind == 'rails' or (kind in ('table', 'floor', 'baseplate') and rng.random() < 0.3):
        _rails(rng, img, ground_y, track)
    n_clutter = {'clutter': int(rng.integers(10, 40)), 'room': int(rng.integers(0, 8))}.get(
        kind, int(rng.integers(0, 6)))
    _clutter(rng, img, ground_y, n_clutter)
    return np.clip(img, 0, 255).astype(np.uint8), ground_y


def paste_rgba(rgb: np.ndarray, sprite: np.ndarray, x: int, y: int, opacity: float = 1.0) -> None:
    """Alpha-composite an RGBA sprite onto an RGB uint8 image at top-left (x, y), clipped at the borders."""
    h, w = sprite.shape[:2]
    H, W = rgb.shape[:2]
    xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if xa >= xb or ya >= yb:
        return
    s = sprite[ya - y:yb - y, xa - x:xb - x].astype(np.float32)
    a = s[..., 3:4] * (opacity / 255.0)
    dst = rgb[ya:yb, xa:xb].astype(np.float32)
    rgb[ya:yb, xa:xb] = np.clip(dst * (1 - a) + s[..., :3] * a, 0, 255).astype(np.uint8)
