"""Procedural LEGO City road signs (numpy + OpenCV only).

Shared by the synthetic training data (training/) and the closed-loop
simulator's virtual camera (train_fou.sim), so both see the same signs.

API
---
``render_sign(kind, height_px, rng=None, *, pole=True) -> (rgba, box)``
    ``rgba``: H x W x 4 uint8 sprite, channels R, G, B, A (straight alpha,
    0 = transparent). It holds the sign face on top, a black LEGO bar (pole)
    below it and a grey 2x2 base plate with studs at the bottom
    (``pole=False``: the face alone).
    ``box``: ``(x1, y1, x2, y2)`` of the sign face inside the sprite, in
    pixels, x2/y2 exclusive. This is what a detector label covers: the face
    only, never the pole. ``y2 - y1`` is about ``height_px``.
    ``rng``: a ``numpy.random.Generator`` randomises the look (print colours,
    ring width, font, gloss, pole length and colour, base plate); ``None``
    gives the canonical sign, identical on every call.
``render_sign_layers(...) -> SignLayers(rgba, box, face_mask)``
    the same plus the face's own alpha mask (H x W uint8), for callers that
    warp the sprite and need the tight box of the warped face.
``CLASS_NAMES``: the detector's classes, in model order.
``CLASS_KINDS``: kinds that are detector classes; ``KIND_CLASS[kind]`` is the
    class id (the three warning triangles are all class ``danger``).
``DISTRACTOR_KINDS``: signs that are not classes (no entry, bus stop, ...
    and the plain backs of signs); a detector must ignore them.

The sprite's pixel size grows with ``height_px``; faces are drawn
super-sampled and shrunk with area interpolation, so a 15 px sign looks like
a real small sign (soft edges, merged digits) rather than an aliased one.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import cv2
import numpy as np

CLASS_NAMES = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')

KIND_CLASS = {
    'speed_limit_30': 0,
    'speed_limit_50': 1,
    'stop': 2,
    'danger_railway': 3,
    'danger_children': 3,
    'danger_workers': 3,
}
CLASS_KINDS = tuple(KIND_CLASS)
DISTRACTOR_KINDS = (
    'no_entry', 'bus_stop', 'bicycle', 'car', 'parking', 'give_way',
    'no_parking', 'back_round', 'back_octagon', 'back_triangle',
)
ALL_KINDS = CLASS_KINDS + DISTRACTOR_KINDS

# LEGO colours (sRGB) of the printed signs and the parts.
WHITE = (242, 243, 242)
RED = (201, 26, 9)
YELLOW = (242, 205, 55)
BLACK = (27, 28, 30)
BLUE = (0, 85, 191)
LIGHT_GREY = (160, 165, 169)
DARK_GREY = (108, 110, 104)

MIN_HEIGHT_PX = 4
MAX_HEIGHT_PX = 2000


class RenderError(ValueError):
    """A sign cannot be rendered as asked (unknown kind, size out of range)."""


class SignLayers(NamedTuple):
    """A rendered sign sprite."""

    rgba: np.ndarray
    box: tuple[int, int, int, int]
    face_mask: np.ndarray


class _Style(NamedTuple):
    """Per-sign look; canonical when drawn without an rng."""

    white: tuple[int, int, int]
    red: tuple[int, int, int]
    yellow: tuple[int, int, int]
    black: tuple[int, int, int]
    blue: tuple[int, int, int]
    ring: float          # red ring width, fraction of the face diameter
    font: int            # cv2 Hershey font for digits
    stroke: float        # digit stroke, fraction of the face height
    digit_h: float       # digit height, fraction of the face height
    digit_aspect: float  # horizontal squeeze of the digits
    tri_fill: tuple[int, int, int]
    tri_border: tuple[int, int, int]
    gloss: float         # strength of the specular highlight, 0..1
    gloss_pos: tuple[float, float]
    rim: float           # visible plastic edge, fraction of face height
    rim_dir: tuple[float, float]
    pole_color: tuple[int, int, int]
    pole_len: float      # pole length below the face, in face heights
    pole_w: float        # pole width, fraction of the face width
    base_color: tuple[int, int, int]
    base_w: float        # base plate width, in face widths
    variant: int         # design variant for kinds that have several


def _jitter(rng: np.random.Generator, color, amount: float = 12.0):
    values = np.asarray(color, np.float64) + rng.normal(0.0, amount, 3)
    return tuple(int(v) for v in np.clip(values, 0, 255))


def _style(rng: np.random.Generator | None) -> _Style:
    if rng is None:
        return _Style(WHITE, RED, YELLOW, BLACK, BLUE, 0.13, cv2.FONT_HERSHEY_SIMPLEX,
                      0.085, 0.44, 1.0, YELLOW, BLACK, 0.35, (0.35, 0.3), 0.03, (0.4, 1.0),
                      BLACK, 1.6, 0.2, LIGHT_GREY, 1.1, 0)
    tri_white = rng.random() < 0.3
    pole = BLACK if rng.random() < 0.75 else (DARK_GREY if rng.random() < 0.6 else LIGHT_GREY)
    base = LIGHT_GREY if rng.random() < 0.6 else (DARK_GREY if rng.random() < 0.7 else (75, 151, 74))
    return _Style(
        white=_jitter(rng, WHITE, 6), red=_jitter(rng, RED, 14), yellow=_jitter(rng, YELLOW, 14),
        black=_jitter(rng, BLACK, 6), blue=_jitter(rng, BLUE, 14),
        ring=float(rng.uniform(0.09, 0.17)),
        font=int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX])),
        stroke=float(rng.uniform(0.06, 0.11)), digit_h=float(rng.uniform(0.36, 0.5)),
        digit_aspect=float(rng.uniform(0.8, 1.15)),
        tri_fill=_jitter(rng, WHITE if tri_white else YELLOW, 8),
        tri_border=_jitter(rng, RED if (tri_white or rng.random() < 0.4) else BLACK, 10),
        gloss=float(rng.uniform(0.0, 0.7)), gloss_pos=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.15, 0.6))),
        rim=float(rng.uniform(0.0, 0.06)), rim_dir=(float(rng.uniform(-1, 1)), float(rng.uniform(0.2, 1))),
        pole_color=_jitter(rng, pole, 5), pole_len=float(rng.uniform(0.6, 3.0)),
        pole_w=float(rng.uniform(0.14, 0.26)), base_color=_jitter(rng, base, 8),
        base_w=float(rng.uniform(0.9, 1.4)), variant=int(rng.integers(0, 1 << 16)),
    )


# --- face primitives (drawn on an S x S canvas, S = supersampled face height)

def _circle(img, mask, c, r, color):
    center = (int(round(c[0] * 16)), int(round(c[1] * 16)))
    cv2.circle(img, center, int(round(r * 16)), color, -1, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.circle(mask, center, int(round(r * 16)), 255, -1, cv2.LINE_AA, 4)


def _poly(img, mask, pts, color):
    p = np.round(np.asarray(pts, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [p], color, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.fillPoly(mask, [p], 255, cv2.LINE_AA, 4)


def _line(img, p0, p1, color, width):
    a = (int(round(p0[0] * 16)), int(round(p0[1] * 16)))
    b = (int(round(p1[0] * 16)), int(round(p1[1] * 16)))
    cv2.line(img, a, b, color, max(1, int(round(width))), cv2.LINE_AA, 4)


def _text(img, text, center, height, color, font, stroke, aspect, max_w=None):
    """Text of a given cap height centred at `center`, squeezed by `aspect`, shrunk to fit `max_w`."""
    thick = max(1, int(round(stroke)))
    (w, h), _ = cv2.getTextSize(text, font, 1.0, thick)
    scale = height / max(h, 1)
    thick = max(1, int(round(stroke)))
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    pad = thick + 2
    tile = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(tile, text, (pad, pad + h), font, scale, 255, thick, cv2.LINE_AA)
    ys, xs = np.nonzero(tile > 20)
    if len(xs) == 0:
        return
    tile = tile[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    th, tw = tile.shape
    new_w = max(1, int(round(tw * aspect * height / max(th, 1))))
    new_h = max(1, int(round(height)))
    if max_w is not None and new_w > max_w:
        new_h = max(1, int(round(new_h * max_w / new_w)))
        new_w = max(1, int(round(max_w)))
    tile = cv2.resize(tile, (new_w, new_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x0 = int(round(center[0] - new_w / 2))
    y0 = int(round(center[1] - new_h / 2))
    H, W = img.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + new_w, W), min(y0 + new_h, H)
    if xa >= xb or ya >= yb:
        return
    a = tile[ya - y0:yb - y0, xa - x0:xb - x0, None]
    region = img[ya:yb, xa:xb].astype(np.float32)
    img[ya:yb, xa:xb] = (region * (1 - a) + np.asarray(color, np.float32) * a).astype(np.uint8)


def _octagon(cx, cy, r):
    return [(cx + r * math.cos(math.radians(22.5 + 45 * i)), cy + r * math.sin(math.radians(22.5 + 45 * i)))
            for i in range(8)]


def _triangle(cx, top, side, up=True):
    h = side * math.sqrt(3) / 2
    if up:
        return [(cx, top), (cx + side / 2, top + h), (cx - side / 2, top + h)]
    return [(cx - side / 2, top), (cx + side / 2, top), (cx, top + h)]


def _rounded_triangle(img, mask, cx, top, side, radius, color, up=True):
    """Triangle with rounded corners whose outer edge spans `side`."""
    k = 2 * math.sqrt(3) * radius  # side lost by insetting all edges by `radius`
    inner_side = max(side - k, 1.0)
    h = side * math.sqrt(3) / 2
    inner_top = top + 2 * radius if up else top + radius
    pts = _triangle(cx, inner_top, inner_side, up)
    _poly(img, mask, pts, color)
    p = np.round(np.asarray(pts) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(img, [p], True, color, max(1, int(round(2 * radius))), cv2.LINE_AA, 4)
    if mask is not None:
        cv2.polylines(mask, [p], True, 255, max(1, int(round(2 * radius))), cv2.LINE_AA, 4)
    return h


# --- pictograms (black silhouettes in a unit box mapped to (x0, y0, size))

def _pict_railway(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    _poly(img, None, [P(0.08, 0.35), P(0.62, 0.35), P(0.62, 0.78), P(0.08, 0.78)], color)   # boiler
    _poly(img, None, [P(0.58, 0.1), P(0.92, 0.1), P(0.92, 0.78), P(0.58, 0.78)], color)     # cab
    _poly(img, None, [P(0.14, 0.12), P(0.28, 0.12), P(0.26, 0.35), P(0.16, 0.35)], color)   # chimney
    for u in (0.22, 0.5, 0.78):
        _circle(img, None, P(u, 0.84), 0.11 * s, color)
    _line(img, P(0.0, 0.97), P(1.0, 0.97), color, 0.06 * s)


def _pict_children(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    w = 0.1 * s
    for cx, top, size in ((0.33, 0.02, 1.0), (0.7, 0.22, 0.78)):
        _circle(img, None, P(cx, top + 0.1 * size), 0.1 * size * s, color)
        hip = P(cx, top + 0.58 * size)
        _line(img, P(cx, top + 0.22 * size), hip, color, w * size * 1.2)
        _line(img, hip, P(cx - 0.14 * size, 1.0), color, w * size)
        _line(img, hip, P(cx + 0.14 * size, 1.0), color, w * size)
        _line(img, P(cx, top + 0.3 * size), P(cx - 0.18 * size, top + 0.55 * size), color, w * size * 0.8)
        _line(img, P(cx, top + 0.3 * size), P(cx + 0.18 * size, top + 0.5 * size), color, w * size * 0.8)


def _pict_workers(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    w = 0.1 * s
    _circle(img, None, P(0.42, 0.12), 0.1 * s, color)
    _line(img, P(0.4, 0.25), P(0.3, 0.6), color, w * 1.3)          # bent back
    _line(img, P(0.3, 0.6), P(0.12, 1.0), color, w)                 # leg
    _line(img, P(0.3, 0.6), P(0.42, 1.0), color, w)                 # leg
    _line(img, P(0.38, 0.32), P(0.62, 0.5), color, w * 0.8)        # arms
    _line(img, P(0.5, 0.3), P(0.82, 0.88), color, w * 0.6)         # shovel handle
    _poly(img, None, [P(0.74, 0.82), P(0.92, 0.8), P(0.9, 0.98)], color)
    _poly(img, None, [P(0.6, 1.0), P(0.82, 0.72), P(1.02, 1.0)], color)  # heap


def _pict_bicycle(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    w = 0.07 * s
    for u in (0.22, 0.78):
        c = P(u, 0.68)
        cv2.circle(img, (int(c[0] * 16), int(c[1] * 16)), int(0.2 * s * 16), color,
                   max(1, int(w)), cv2.LINE_AA, 4)
    for a, b in (((0.22, 0.68), (0.45, 0.4)), ((0.45, 0.4), (0.72, 0.4)), ((0.72, 0.4), (0.78, 0.68)),
                 ((0.45, 0.4), (0.5, 0.68)), ((0.5, 0.68), (0.72, 0.4)), ((0.22, 0.68), (0.5, 0.68)),
                 ((0.45, 0.4), (0.4, 0.28)), ((0.72, 0.4), (0.68, 0.25))):
        _line(img, P(*a), P(*b), color, w)


def _pict_car(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    _poly(img, None, [P(0.02, 0.5), P(0.2, 0.48), P(0.32, 0.28), P(0.7, 0.28), P(0.82, 0.48),
                      P(0.98, 0.52), P(0.98, 0.72), P(0.02, 0.72)], color)
    for u in (0.24, 0.76):
        _circle(img, None, P(u, 0.74), 0.11 * s, color)


def _pict_bus(img, x0, y0, s, color):
    def P(u, v):
        return (x0 + u * s, y0 + v * s)
    _poly(img, None, [P(0.05, 0.25), P(0.95, 0.25), P(0.95, 0.75), P(0.05, 0.75)], color)
    for u in (0.25, 0.75):
        _circle(img, None, P(u, 0.76), 0.1 * s, color)


# --- faces: each draws into (img, mask) of size S x Wf and returns nothing

def _face_speed(digits: str) -> Callable:
    def draw(img, mask, S, st, rng):
        r = S / 2
        _circle(img, mask, (r, r), r, st.red)
        _circle(img, None, (r, r), r * (1 - 2 * st.ring), st.white)
        inner = S * (1 - 2 * st.ring)
        _text(img, digits, (r, r), st.digit_h * S, st.black, st.font, st.stroke * S, st.digit_aspect,
              max_w=0.8 * inner)
    return draw


def _face_stop(img, mask, S, st, rng):
    r = S / 2
    _poly(img, mask, _octagon(r, r, r / math.cos(math.radians(22.5))), st.red)
    _poly(img, None, _octagon(r, r, 0.93 * r / math.cos(math.radians(22.5))), st.white)
    _poly(img, None, _octagon(r, r, 0.86 * r / math.cos(math.radians(22.5))), st.red)
    _text(img, 'STOP', (r, r), 0.28 * S, st.white, st.font, 0.055 * S, 0.85 * st.digit_aspect, max_w=0.76 * S)


def _face_danger(pict: Callable) -> Callable:
    def draw(img, mask, S, st, rng):
        side = S / (math.sqrt(3) / 2)
        cx = img.shape[1] / 2
        _rounded_triangle(img, mask, cx, 0, side, 0.05 * S, st.tri_border)
        border = 0.13 * S
        _rounded_triangle(img, None, cx, border * 1.6, side - border * 2 * math.sqrt(3), 0.02 * S, st.tri_fill)
        size = 0.42 * S
        pict(img, cx - size / 2, 0.47 * S, size, st.black)
    return draw


def _face_no_entry(img, mask, S, st, rng):
    r = S / 2
    _circle(img, mask, (r, r), r, st.red)
    _poly(img, None, [(0.18 * S, 0.42 * S), (0.82 * S, 0.42 * S), (0.82 * S, 0.58 * S), (0.18 * S, 0.58 * S)],
          st.white)


def _face_bus_stop(img, mask, S, st, rng):
    W = img.shape[1]
    _poly(img, mask, [(0, 0), (W, 0), (W, S), (0, S)], st.blue if st.variant % 2 else st.yellow)
    inner = st.white if st.variant % 2 else (20, 120, 40)
    _poly(img, None, [(0.08 * W, 0.08 * S), (0.92 * W, 0.08 * S), (0.92 * W, 0.92 * S), (0.08 * W, 0.92 * S)], inner)
    fg = st.blue if st.variant % 2 else st.yellow
    if st.variant % 3 == 0:
        _text(img, 'BUS', (W / 2, S / 2), 0.3 * S, fg, cv2.FONT_HERSHEY_SIMPLEX, 0.06 * S, 1.0)
    else:
        _pict_bus(img, 0.15 * W, 0.15 * S, 0.7 * S, fg)


def _face_bicycle(img, mask, S, st, rng):
    r = S / 2
    _circle(img, mask, (r, r), r, st.blue)
    _pict_bicycle(img, 0.17 * S, 0.12 * S, 0.66 * S, st.white)


def _face_car(img, mask, S, st, rng):
    r = S / 2
    if st.variant % 2:  # no motor vehicles: red ring, black car
        _circle(img, mask, (r, r), r, st.red)
        _circle(img, None, (r, r), r * (1 - 2 * st.ring), st.white)
        _pict_car(img, 0.22 * S, 0.2 * S, 0.56 * S, st.black)
    else:               # blue square, white car
        _poly(img, mask, [(0, 0), (S, 0), (S, S), (0, S)], st.blue)
        _pict_car(img, 0.12 * S, 0.15 * S, 0.76 * S, st.white)


def _face_parking(img, mask, S, st, rng):
    _poly(img, mask, [(0, 0), (S, 0), (S, S), (0, S)], st.blue)
    _text(img, 'P', (S / 2, S / 2), 0.62 * S, st.white, cv2.FONT_HERSHEY_SIMPLEX, 0.12 * S, 1.0)


def _face_give_way(img, mask, S, st, rng):
    side = S / (math.sqrt(3) / 2)
    cx = img.shape[1] / 2
    _rounded_triangle(img, mask, cx, 0, side, 0.05 * S, st.red, up=False)
    border = 0.14 * S
    _rounded_triangle(img, None, cx, border, side - border * 2 * math.sqrt(3), 0.02 * S, st.white, up=False)


def _face_no_parking(img, mask, S, st, rng):
    r = S / 2
    _circle(img, mask, (r, r), r, st.red)
    _circle(img, None, (r, r), r * (1 - 2 * st.ring), st.blue)
    _line(img, (0.25 * S, 0.25 * S), (0.75 * S, 0.75 * S), st.red, st.ring * S)
    if st.variant % 2:
        _line(img, (0.75 * S, 0.25 * S), (0.25 * S, 0.75 * S), st.red, st.ring * S)


def _back(shape: str) -> Callable:
    def draw(img, mask, S, st, rng):
        color = st.white if st.variant % 3 else (200, 202, 204)
        r = S / 2
        if shape == 'round':
            _circle(img, mask, (r, r), r, color)
            _circle(img, None, (r, r), 0.88 * r, tuple(int(c * 0.93) for c in color))
        elif shape == 'octagon':
            _poly(img, mask, _octagon(r, r, r / math.cos(math.radians(22.5))), color)
        else:
            side = S / (math.sqrt(3) / 2)
            _rounded_triangle(img, mask, img.shape[1] / 2, 0, side, 0.05 * S, color)
        # the clip on the back of the part
        cw = 0.22 * S
        cx = img.shape[1] / 2
        _poly(img, None, [(cx - cw / 2, 0.45 * S), (cx + cw / 2, 0.45 * S), (cx + cw / 2, 0.9 * S),
                          (cx - cw / 2, 0.9 * S)], tuple(int(c * 0.8) for c in color))
    return draw


# kind -> (face drawer, face width / face height)
_FACES: dict[str, tuple[Callable, float]] = {
    'speed_limit_30': (_face_speed('30'), 1.0),
    'speed_limit_50': (_face_speed('50'), 1.0),
    'stop': (_face_stop, 1.0),
    'danger_railway': (_face_danger(_pict_railway), 2 / math.sqrt(3)),
    'danger_children': (_face_danger(_pict_children), 2 / math.sqrt(3)),
    'danger_workers': (_face_danger(_pict_workers), 2 / math.sqrt(3)),
    'no_entry': (_face_no_entry, 1.0),
    'bus_stop': (_face_bus_stop, 0.8),
    'bicycle': (_face_bicycle, 1.0),
    'car': (_face_car, 1.0),
    'parking': (_face_parking, 1.0),
    'give_way': (_face_give_way, 2 / math.sqrt(3)),
    'no_parking': (_face_no_parking, 1.0),
    'back_round': (_back('round'), 1.0),
    'back_octagon': (_back('octagon'), 1.0),
    'back_triangle': (_back('triangle'), 2 / math.sqrt(3)),
}


def _shade_face(img, mask, S, st):
    """LEGO plastic gloss: a soft specular highlight and a slight top-to-bottom falloff."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = st.gloss_pos
    d2 = ((xx - gx * w) / (0.35 * w)) ** 2 + ((yy - gy * h) / (0.25 * h)) ** 2
    spec = st.gloss * 0.55 * np.exp(-d2)[..., None]
    fall = (1.0 - 0.08 * yy / max(h, 1))[..., None]
    out = img.astype(np.float32) * fall
    out = out + (255.0 - out) * spec
    return np.clip(out, 0, 255).astype(np.uint8)


def _draw_pole_and_base(canvas, alpha, cx, top, bottom, face_w, st):
    """A cylindrical bar from `top` to `bottom` and a 2x2 plate with studs whose front face ends at the bottom."""
    pw = max(2.0, st.pole_w * face_w)
    x0, x1 = cx - pw / 2, cx + pw / 2
    col = np.asarray(st.pole_color, np.float32)
    xs = np.arange(int(math.floor(x0)), int(math.ceil(x1)))
    bw = st.base_w * face_w
    plate_h = 0.2 * face_w
    top_h = 0.35 * bw
    plate_front_top = bottom - plate_h
    pole_bottom = int(round(plate_front_top - top_h / 2))
    # base plate: a top ellipse-ish parallelogram seen from slightly above, and the front face
    base = np.asarray(st.base_color, np.float32)
    front = [(cx - bw / 2, plate_front_top), (cx + bw / 2, plate_front_top), (cx + bw / 2, bottom), (cx - bw / 2, bottom)]
    topf = [(cx - bw / 2, plate_front_top), (cx + bw / 2, plate_front_top), (cx + bw / 2, plate_front_top - top_h),
            (cx - bw / 2, plate_front_top - top_h)]
    _poly(canvas, alpha, topf, tuple(int(c) for c in np.clip(base * 1.12, 0, 255)))
    _poly(canvas, alpha, front, tuple(int(c) for c in base * 0.78))
    stud_r = bw * 0.14
    for u in (-0.25, 0.25):
        for v in (0.3, 0.7):
            sx, sy = cx + u * bw, plate_front_top - top_h * v
            ell = (int(sx * 16), int(sy * 16))
            axes = (int(stud_r * 16), int(stud_r * 0.45 * 16))
            cv2.ellipse(canvas, (ell[0], ell[1] + int(stud_r * 0.3 * 16)), axes, 0, 0, 360,
                        tuple(int(c) for c in base * 0.7), -1, cv2.LINE_AA, 4)
            cv2.ellipse(canvas, ell, axes, 0, 0, 360, tuple(int(c) for c in np.clip(base * 1.25, 0, 255)),
                        -1, cv2.LINE_AA, 4)
    # the bar, drawn after the plate: it stands in the plate, its foot over the studs
    for x in xs:
        u = (x + 0.5 - cx) / (pw / 2)
        if abs(u) > 1:
            continue
        shade = 0.75 + 0.6 * math.exp(-((u + 0.35) / 0.25) ** 2) - 0.25 * u * u
        canvas[int(top):pole_bottom, x] = np.clip(col * shade + 18 * shade, 0, 255)
        alpha[int(top):pole_bottom, x] = 255


def render_sign_layers(kind: str, height_px: int, rng: np.random.Generator | None = None, *,
                       pole: bool = True) -> SignLayers:
    """Render one sign; see the module docstring."""
    if kind not in _FACES:
        raise RenderError(f'unknown sign kind {kind!r}; supported: {", ".join(ALL_KINDS)}')
    if not MIN_HEIGHT_PX <= int(height_px) <= MAX_HEIGHT_PX:
        raise RenderError(f'height_px {height_px} out of range [{MIN_HEIGHT_PX}, {MAX_HEIGHT_PX}]')
    height_px = int(height_px)
    st = _style(rng)
    draw, aspect = _FACES[kind]
    S = int(min(max(4 * height_px, 96), max(400, height_px)))   # supersampled face height
    Wf = int(round(S * aspect))
    rim = st.rim * S
    pole_len = st.pole_len * S if pole else 0.0
    base_h = (0.2 * Wf + 0.35 * st.base_w * Wf) if pole else 0.0
    margin = int(math.ceil(rim + 2))
    bw = st.base_w * Wf if pole else 0
    W = int(math.ceil(max(Wf, bw))) + 2 * margin
    H = int(math.ceil(S + pole_len + base_h)) + 2 * margin
    canvas = np.zeros((H, W, 3), np.uint8)
    alpha = np.zeros((H, W), np.uint8)
    fx0 = (W - Wf) // 2
    fy0 = margin
    cx = fx0 + Wf / 2
    if pole:
        _draw_pole_and_base(canvas, alpha, cx, fy0 + S * 0.5, fy0 + S + pole_len + base_h, Wf, st)
    face = np.zeros((S, Wf, 3), np.uint8)
    fmask = np.zeros((S, Wf), np.uint8)
    draw(face, fmask, S, st, rng)
    face = _shade_face(face, fmask, S, st)
    if rim >= 0.5:   # plastic thickness seen at an angle: a darker copy of the outline, offset
        dx, dy = st.rim_dir
        norm = math.hypot(dx, dy) or 1.0
        ox, oy = int(round(rim * dx / norm)), int(round(rim * dy / norm))
        edge = tuple(int(c * 0.55) for c in (st.white if kind.startswith('back') else (200, 200, 200)))
        _paste(canvas, alpha, np.full_like(face, edge), fmask, fx0 + ox, fy0 + oy)
    _paste(canvas, alpha, face, fmask, fx0, fy0)
    face_mask = np.zeros((H, W), np.uint8)
    face_mask[fy0:fy0 + S, fx0:fx0 + Wf] = fmask
    scale = height_px / S
    out_w, out_h = max(1, int(round(W * scale))), max(1, int(round(H * scale)))
    rgba = np.dstack([canvas, alpha])
    # premultiply before shrinking so transparent pixels do not bleed black into the edges
    pre = rgba.astype(np.float32)
    pre[..., :3] *= pre[..., 3:4] / 255.0
    pre = cv2.resize(pre, (out_w, out_h), interpolation=cv2.INTER_AREA)
    a = pre[..., 3:4]
    rgb = np.where(a > 0, pre[..., :3] * 255.0 / np.maximum(a, 1e-6), 0)
    rgba = np.dstack([np.clip(rgb, 0, 255), np.clip(a, 0, 255)]).round().astype(np.uint8)
    fm = cv2.resize(face_mask, (out_w, out_h), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(fm >= 96)
    if len(xs) == 0:
        ys, xs = np.nonzero(fm > 0)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return SignLayers(rgba, box, fm)


def _paste(canvas, alpha, img, mask, x0, y0):
    h, w = mask.shape
    H, W = alpha.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    m = mask[ya - y0:yb - y0, xa - x0:xb - x0, None].astype(np.float32) / 255.0
    src = img[ya - y0:yb - y0, xa - x0:xb - x0].astype(np.float32)
    dst = canvas[ya:yb, xa:xb].astype(np.float32)
    canvas[ya:yb, xa:xb] = np.clip(dst * (1 - m) + src * m, 0, 255).astype(np.uint8)
    alpha[ya:yb, xa:xb] = np.maximum(alpha[ya:yb, xa:xb], mask[ya - y0:yb - y0, xa - x0:xb - x0])


def render_sign(kind: str, height_px: int, rng: np.random.Generator | None = None, *,
                pole: bool = True) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """RGBA sprite of one sign and the box of its face; see the module docstring."""
    layers = render_sign_layers(kind, height_px, rng, pole=pole)
    return layers.rgba, layers.box


def kind_class(kind: str) -> int | None:
    """Class id of a kind, or None for a distractor."""
    if kind not in _FACES:
        raise RenderError(f'unknown sign kind {kind!r}; supported: {", ".join(ALL_KINDS)}')
    return KIND_CLASS.get(kind)
