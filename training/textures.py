"""Random procedural textures for walls, tables, fabrics and clutter (numpy + OpenCV only).

``random_texture(rng, h, w)`` draws one texture from one of ``TEXTURE_KINDS``
(fractal noise, stripes, checks, plaid / fabric weave, wood grain, gradients,
blobs, random polygons, dots, brushed / fibre) with colours from a random
palette (analogous, complementary, greys, earth tones, LEGO colours, random),
all parameters drawn from ``rng``: the number of distinct textures is bounded
only by the generator's state, not by a list (domain randomisation needs many
thousands of them: Tobin et al. 2017 saw fewer than 1000 textures hurt,
Tremblay et al. 2018 lost 4.7 AP without random textures).

Textures are float32 RGB in [0, 255], H x W x 3. Large ones are drawn at
about 640x480 and resized, which keeps one under ~10 ms.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from train_fou.render.scene import BRICK_COLORS

TEXTURE_KINDS = ('noise', 'stripes', 'checks', 'plaid', 'weave', 'wood', 'gradient', 'blobs', 'polygons', 'dots',
                 'fibre')

_EARTH = ((120, 85, 55), (160, 120, 80), (90, 70, 50), (200, 180, 150), (70, 60, 50), (140, 130, 110),
          (180, 150, 110), (60, 45, 35))
_MAX_PIXELS = 400 * 300


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """One colour from hue in [0, 1), saturation and value in [0, 1] -> RGB float in [0, 255]."""
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return np.array([r, g, b], np.float32) * 255.0


def palette(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """n (2..5) colours, n x 3 float RGB, from a random colour scheme."""
    n = int(rng.integers(2, 6)) if n is None else n
    scheme = rng.choice(6, p=[0.25, 0.15, 0.15, 0.15, 0.1, 0.2])
    hue = rng.random()
    if scheme == 0:    # analogous hues
        cols = [_hsv((hue + rng.normal(0, 0.05)) % 1, rng.uniform(0.1, 0.9), rng.uniform(0.1, 1.0)) for _ in range(n)]
    elif scheme == 1:  # complementary
        cols = [_hsv((hue + 0.5 * (i % 2) + rng.normal(0, 0.03)) % 1, rng.uniform(0.2, 1.0), rng.uniform(0.15, 1.0))
                for i in range(n)]
    elif scheme == 2:  # greys, slightly tinted
        cols = [_hsv(hue, rng.uniform(0, 0.12), rng.uniform(0.05, 0.98)) for _ in range(n)]
    elif scheme == 3:  # earth tones
        cols = [np.asarray(_EARTH[int(rng.integers(len(_EARTH)))], np.float32) * rng.uniform(0.6, 1.3)
                for _ in range(n)]
    elif scheme == 4:  # LEGO colours
        cols = [np.asarray(BRICK_COLORS[int(rng.integers(len(BRICK_COLORS)))], np.float32) for _ in range(n)]
    else:              # anything
        cols = [rng.uniform(0, 255, 3) for _ in range(n)]
    return np.clip(np.array(cols, np.float32) + rng.normal(0, 6, (n, 3)), 0, 255).astype(np.float32)


def noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth value noise in about [-1, 1] with features about `scale` pixels wide."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal(rng: np.random.Generator, h: int, w: int, base: float, octaves: int = 4, gain: float = 0.5) -> np.ndarray:
    """Fractal (fBm) value noise, normalised to [0, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, scale = 1.0, base
    for _ in range(octaves):
        out += amp * noise(rng, h, w, max(scale, 1.0))
        amp *= gain
        scale /= 2.0
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _map(t: np.ndarray, cols: np.ndarray, smooth: bool = True) -> np.ndarray:
    """Map a scalar field in [0, 1] through the palette: a smooth gradient map or hard bands."""
    lut = np.empty((256, 3), np.float32)
    x = np.linspace(0, 1, 256)
    n = len(cols)
    if smooth:
        stops = np.linspace(0, 1, n)
        for c in range(3):
            lut[:, c] = np.interp(x, stops, cols[:, c])
    else:
        lut[:] = cols[np.minimum((x * n).astype(int), n - 1)]
    idx = np.clip(t * 255.0, 0, 255).astype(np.uint8)
    return cv2.LUT(cv2.merge([idx, idx, idx]), lut.astype(np.uint8).reshape(256, 1, 3)).astype(np.float32)


def _coords(rng, h, w):
    """Rotated coordinates (u along a random direction, v across it)."""
    ang = rng.uniform(0, math.pi)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    c, s = math.cos(ang), math.sin(ang)
    return xs * c + ys * s, -xs * s + ys * c


def _tex_noise(rng, h, w, cols):
    t = fractal(rng, h, w, rng.uniform(8, max(9.0, max(h, w) * 0.6)), int(rng.integers(2, 6)), rng.uniform(0.35, 0.75))
    if rng.random() < 0.3:  # ridged / marble-like
        t = 1 - np.abs(2 * t - 1)
    return _map(t, cols, smooth=rng.random() < 0.8)


def _tex_stripes(rng, h, w, cols):
    u, _ = _coords(rng, h, w)
    period = rng.uniform(3, max(8.0, min(h, w) / 3))
    if rng.random() < 0.3:
        u = u + noise(rng, h, w, rng.uniform(20, 200)) * period * rng.uniform(0.2, 1.5)
    phase = (u / period) % 1.0
    if rng.random() < 0.5:  # soft (sine) stripes
        t = 0.5 + 0.5 * np.sin(phase * 2 * math.pi)
        return _map(t, cols[:2] if len(cols) > 2 else cols)
    return _map(phase, cols, smooth=False)


def _tex_checks(rng, h, w, cols):
    u, v = _coords(rng, h, w) if rng.random() < 0.4 else (np.arange(w, dtype=np.float32)[None, :],
                                                          np.arange(h, dtype=np.float32)[:, None])
    su = rng.uniform(4, max(8.0, min(h, w) / 3))
    sv = su * rng.uniform(0.5, 2.0) if rng.random() < 0.4 else su
    cell = (np.floor(u / su) + np.floor(v / sv))
    k = min(len(cols), int(rng.integers(2, 4)))
    t = (np.mod(cell, k) + 0.5) / k
    img = _map(np.broadcast_to(t, (h, w)).astype(np.float32), cols[:k], smooth=False)
    if rng.random() < 0.5:  # grout lines
        g = ((np.mod(u, su) < 1.5) | (np.mod(v, sv) < 1.5))
        img[np.broadcast_to(g, (h, w))] *= rng.uniform(0.4, 0.8)
    return img


def _tex_plaid(rng, h, w, cols):
    """Tartan: bands of colour across and along, mixed, with a twill texture."""
    def bands(n):
        out = np.zeros(n, np.float32)
        x = 0
        while x < n:
            width = int(rng.integers(2, max(3, n // 6)))
            out[x:x + width] = rng.random()
            x += width
        return out
    hor, ver = bands(h)[:, None], bands(w)[None, :]
    mix = 0.5 * (hor + ver)
    img = _map(np.broadcast_to(mix, (h, w)).astype(np.float32), cols)
    twill = (np.add.outer(np.arange(h), np.arange(w)) % 4 < 2).astype(np.float32)
    return img * (1 + rng.uniform(0.03, 0.15) * (twill[..., None] - 0.5))


def _tex_weave(rng, h, w, cols):
    """Basket / plain weave: alternating over-under threads."""
    p = rng.uniform(2, 12)
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    over = ((np.floor(xs / p) + np.floor(ys / p)) % 2).astype(np.float32)
    thread = 0.5 + 0.5 * np.where(over > 0, np.sin(xs / p * math.pi) ** 2, np.sin(ys / p * math.pi) ** 2)
    a, b = cols[0], cols[1 % len(cols)]
    base = np.where(over[..., None] > 0, a, b).astype(np.float32)
    return base * (0.65 + 0.45 * thread[..., None]) * (1 + 0.1 * noise(rng, h, w, 2)[..., None])


def _tex_wood(rng, h, w, cols):
    if rng.random() < 0.6:
        cols = np.array([_EARTH[int(rng.integers(len(_EARTH)))] for _ in range(3)], np.float32) * rng.uniform(0.4, 1.3)
    u, v = _coords(rng, h, w)
    if rng.random() < 0.5:  # rings around an off-image centre
        cx, cy = rng.uniform(-2, 3) * w, rng.uniform(-2, 3) * h
        ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    else:
        d = v + 0 * u
    d = d + noise(rng, h, w, rng.uniform(30, 200)) * rng.uniform(5, 40)
    period = rng.uniform(3, 25)
    t = 0.5 + 0.5 * np.sin(d / period * 2 * math.pi)
    t = t ** rng.uniform(0.5, 3)
    img = _map(np.clip(t, 0, 1).astype(np.float32), np.clip(cols, 0, 255))
    return img * (1 + 0.08 * noise(rng, h, w, 2)[..., None])


def _tex_gradient(rng, h, w, cols):
    if rng.random() < 0.6:
        u, _ = _coords(rng, h, w)
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
        t = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / max(h, w)
    return _map(np.broadcast_to(np.clip(t, 0, 1), (h, w)).astype(np.float32), cols)


def _tex_blobs(rng, h, w, cols):
    img = np.empty((h, w, 3), np.float32)
    img[:] = cols[0]
    for _ in range(int(rng.integers(5, 60))):
        c = tuple(float(x) for x in cols[int(rng.integers(len(cols)))])
        r = rng.uniform(0.02, 0.3) * max(h, w)
        cv2.ellipse(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                    (max(1, int(r)), max(1, int(r * rng.uniform(0.3, 1.0)))), rng.uniform(0, 180), 0, 360, c, -1,
                    cv2.LINE_AA)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1, max(1.5, 0.05 * max(h, w))))
    return img


def _tex_polygons(rng, h, w, cols):
    img = np.empty((h, w, 3), np.float32)
    img[:] = cols[0]
    for _ in range(int(rng.integers(4, 40))):
        n = int(rng.integers(3, 7))
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.4) * max(h, w)
        pts = np.stack([cx + r * rng.uniform(0.3, 1, n) * np.cos(np.sort(rng.uniform(0, 2 * math.pi, n))),
                        cy + r * rng.uniform(0.3, 1, n) * np.sin(np.sort(rng.uniform(0, 2 * math.pi, n)))], 1)
        cv2.fillPoly(img, [pts.astype(np.int32)], tuple(float(x) for x in cols[int(rng.integers(len(cols)))]),
                     cv2.LINE_AA)
    return img


def _tex_dots(rng, h, w, cols):
    img = np.empty((h, w, 3), np.float32)
    img[:] = cols[0]
    pitch = rng.uniform(6, max(10.0, min(h, w) / 4))
    r = pitch * rng.uniform(0.15, 0.45)
    stagger = rng.random() < 0.5
    c = tuple(float(x) for x in cols[1 % len(cols)])
    for j, y in enumerate(np.arange(rng.uniform(0, pitch), h + pitch, pitch)):
        off = pitch / 2 if stagger and j % 2 else 0
        for x in np.arange(rng.uniform(0, pitch) + off, w + pitch, pitch):
            cv2.circle(img, (int(x), int(y)), max(1, int(r)), c, -1, cv2.LINE_AA)
    return img


def _tex_fibre(rng, h, w, cols):
    """Brushed metal, carpet, felt: anisotropic fine noise."""
    k = int(rng.integers(5, 40))
    base = rng.standard_normal((h, w), dtype=np.float32)
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    t = cv2.filter2D(base, -1, kernel / max(float(kernel.sum()), 1e-6))
    t = 0.5 + t * rng.uniform(0.2, 0.6) + 0.3 * noise(rng, h, w, rng.uniform(20, 150))
    return _map(np.clip(t, 0, 1).astype(np.float32), cols)


_KINDS = {'noise': _tex_noise, 'stripes': _tex_stripes, 'checks': _tex_checks, 'plaid': _tex_plaid,
          'weave': _tex_weave, 'wood': _tex_wood, 'gradient': _tex_gradient, 'blobs': _tex_blobs,
          'polygons': _tex_polygons, 'dots': _tex_dots, 'fibre': _tex_fibre}
assert tuple(_KINDS) == TEXTURE_KINDS


def random_texture(rng: np.random.Generator, h: int, w: int, kind: str | None = None) -> np.ndarray:
    """One random texture (float32 RGB in [0, 255], h x w x 3); `kind` one of TEXTURE_KINDS or random."""
    if kind is None:
        kind = TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    elif kind not in _KINDS:
        raise ValueError(f'unknown texture {kind!r}; supported: {", ".join(TEXTURE_KINDS)}')
    h, w = max(int(h), 1), max(int(w), 1)
    f = math.sqrt(_MAX_PIXELS / (h * w))
    dh, dw = (h, w) if f >= 1 else (max(1, int(h * f)), max(1, int(w * f)))
    img = _KINDS[kind](rng, dh, dw, palette(rng))
    if rng.random() < 0.5:  # overall shading and grain on top of any pattern
        img = img * (1 + rng.uniform(0.05, 0.3) * noise(rng, dh, dw, rng.uniform(30, 300)))[..., None]
    if rng.random() < 0.3:
        img = img + rng.uniform(2, 12) * noise(rng, dh, dw, rng.uniform(1, 3))[..., None]
    if (dh, dw) != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0, 255).astype(np.float32)


def toned(img: np.ndarray, mean: float, contrast: float) -> np.ndarray:
    """`img` with its mean brightness moved to `mean` and its deviations scaled by `contrast`."""
    m = float(img.mean())
    return np.clip((img - m) * contrast + mean, 0, 255).astype(np.float32)
