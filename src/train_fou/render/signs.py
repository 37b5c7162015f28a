"""Procedural road signs of a LEGO layout (numpy + OpenCV + Pillow).

Shared by the synthetic training data (training/) and the closed-loop
simulator's virtual camera (train_fou.sim), so both see the same signs.
Calibrated by eye against photos of the real signs
(``tools/signs_vs_reference.py``; the photos themselves stay out of the
repository).

What is drawn
-------------
- LEGO speed limits (``speed_limit_30``, ``speed_limit_50``): white disc, a
  thin red ring set in from the edge, black digits: the 30 in a heavy bold
  face, the 50 in a regular weight (TrueType digits, see Fonts). They stand
  on a black ribbed LEGO bar with a round black base, sometimes on a grey
  2x2 plate.
- Another toy brand's speed limits (``speed_limit_30_other``,
  ``speed_limit_50_other``): a wide orange-red ring, thinner grey-black
  digits, a white pole on a round white base. Still classes 0 and 1.
- ``stop``: a red octagon with white STOP (randomised: also LEGO's round red
  STOP disc).
- Class ``danger``: only the yellow LEGO warning triangles (rounded corners,
  a black border set in from the edge, a black pictogram):
  ``danger_children`` (two children running), ``danger_railway`` (steam
  locomotive with smoke), ``danger_workers`` (a worker digging a pile with a
  shovel), and two more seen on the real layout: ``danger_general`` ("!")
  and ``danger_crossing`` (a gated level crossing). The white, red-bordered
  warning triangles, which earlier versions also called ``danger``, are the
  other brand's and are **distractors** now (the real labels call only the
  yellow triangles DangerAhead).
- Distractors (drawn, never labelled): no entry, bus stop, bicycle, car,
  parking, give way, no parking, the plain backs of round, octagonal and
  triangular signs, the other brand's white warning triangles (children,
  traffic lights ahead, pedestrian crossing) and traffic lights (grey
  housing, red/yellow/green lamps) on white or grey poles, yellow triangles
  with no pictogram, white discs with no ring, red rings with no digits or
  with digits other than 30 and 50.

API
---
``render_sign(kind, height_px, rng=None, *, pole=True) -> (rgba, box)``
    ``rgba``: H x W x 4 uint8 sprite, channels R, G, B, A (straight alpha,
    0 = transparent). It holds the sign face on top and its stand below
    (``pole=False``: the face alone).
    ``box``: ``(x1, y1, x2, y2)`` of the sign face inside the sprite, in
    pixels, x2/y2 exclusive. This is what a detector label covers: the face
    only, never the pole. ``y2 - y1`` is about ``height_px``.
    ``rng``: a ``numpy.random.Generator`` randomises the look (print colours,
    ring width, font face, weight, width and spacing of the digits, gloss,
    pole length and colour, base and plate); ``None`` gives the canonical
    sign, identical on every call.
``render_sign_layers(...) -> SignLayers(rgba, box, face_mask)``
    the same plus the face's own alpha mask (H x W uint8), for callers that
    warp the sprite and need the tight box of the warped face.
``CLASS_NAMES``: the detector's classes, in model order (a contract).
``CLASS_KINDS``: kinds that are detector classes; ``KIND_CLASS[kind]`` is the
    class id.
``DISTRACTOR_KINDS``: signs that are not classes; a detector must ignore them.
``font_path(name)``: the TrueType file of one of ``FONT_FILES``.

Fonts
-----
Text is TrueType, rendered with Pillow from the DejaVu and Computer Modern
Sans fonts that matplotlib ships in ``mpl-data/fonts/ttf`` (matplotlib and
pillow are pinned in both the runtime and the training environments; no
system font is used). Loaded fonts and glyph-run masks are cached.

The sprite's pixel size grows with ``height_px``; faces are drawn
super-sampled and shrunk with area interpolation, so a 15 px sign looks like
a real small sign (soft edges, merged digits) rather than an aliased one.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import threading
from pathlib import Path
from typing import NamedTuple
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from train_fou.errors import TrainFouError

CLASS_NAMES = ('speed_limit_30', 'speed_limit_50', 'stop', 'danger')

KIND_CLASS = {
    'speed_limit_30': 0,
    'speed_limit_50': 1,
    'stop': 2,
    'danger_railway': 3,
    'danger_children': 3,
    'danger_workers': 3,
    'danger_general': 3,
    'danger_crossing': 3,
    'speed_limit_30_other': 0,
    'speed_limit_50_other': 1,
}
CLASS_KINDS = tuple(KIND_CLASS)
DISTRACTOR_KINDS = (
    'no_entry', 'bus_stop', 'bicycle', 'car', 'parking', 'give_way',
    'no_parking', 'back_round', 'back_octagon', 'back_triangle',
    'warning_children_other', 'warning_lights_other', 'warning_pedestrian_other',
    'traffic_light', 'blank_triangle', 'blank_disc', 'ring_blank', 'ring_digits',
)
ALL_KINDS = CLASS_KINDS + DISTRACTOR_KINDS
#: the distractors a detector most often takes for a class: white, red-bordered and blank triangles
#: (danger) and red rings with digits or nothing inside (the limits); training can draw them more often
HARD_DISTRACTOR_KINDS = (
    'warning_children_other', 'warning_lights_other', 'warning_pedestrian_other', 'back_triangle',
    'blank_triangle', 'give_way', 'ring_digits', 'ring_blank',
)

# Colours (sRGB), sampled by eye from photos of the real signs.
WHITE = (244, 240, 234)         # LEGO print white (slightly warm)
RING_RED = (228, 46, 70)        # LEGO speed-limit ring
RED = (206, 30, 36)             # stop, no entry
YELLOW = (240, 203, 22)         # LEGO warning triangle
BLACK = (26, 22, 19)
BLUE = (0, 85, 191)
OTHER_WHITE = (240, 241, 240)
OTHER_RING = (229, 110, 76)     # the other brand's orange-red
OTHER_RED = (178, 14, 34)       # the other brand's deep red (children triangle)
OTHER_GREY = (92, 86, 84)       # the other brand's digits
HOUSING = (84, 80, 76)          # traffic light housing
LIGHT_GREY = (160, 165, 169)
PLATE_GREY = (150, 152, 152)
DARK_GREY = (108, 110, 104)
POLE_WHITE = (236, 236, 232)
POLE_GREY = (186, 188, 182)

MIN_HEIGHT_PX = 4
MAX_HEIGHT_PX = 2000

#: TrueType faces (files in matplotlib's mpl-data/fonts/ttf).
FONT_FILES = {
    'sans': 'DejaVuSans.ttf',
    'sans_bold': 'DejaVuSans-Bold.ttf',
    'mono': 'DejaVuSansMono.ttf',
    'mono_bold': 'DejaVuSansMono-Bold.ttf',
    'cm_sans': 'cmss10.ttf',
}
_REGULAR_FACES = ('sans', 'sans', 'mono', 'cm_sans')
_BOLD_FACES = ('sans_bold', 'sans_bold', 'mono_bold')


class RenderError(TrainFouError, ValueError):
    """A sign cannot be rendered as asked (unknown kind, size out of range, missing font)."""


class SignLayers(NamedTuple):
    """A rendered sign sprite."""

    rgba: np.ndarray
    box: tuple[int, int, int, int]
    face_mask: np.ndarray


# --- fonts -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def font_dir() -> Path:
    """matplotlib's TrueType folder (found without importing matplotlib, which is slow to import)."""
    spec = importlib.util.find_spec('matplotlib')
    for loc in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(loc) / 'mpl-data' / 'fonts' / 'ttf'
        if folder.is_dir():
            return folder
    try:
        import matplotlib
    except ImportError as err:
        raise RenderError('the sign renderer needs matplotlib for its DejaVu fonts') from err
    return Path(matplotlib.get_data_path()) / 'fonts' / 'ttf'


def font_path(name: str) -> Path:
    """The TrueType file of face `name` (a key of FONT_FILES)."""
    if name not in FONT_FILES:
        raise RenderError(f'unknown font {name!r}; supported: {", ".join(FONT_FILES)}')
    path = font_dir() / FONT_FILES[name]
    if not path.is_file():
        raise RenderError(f'font file {path} not found (matplotlib install incomplete?)')
    return path


@functools.lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


@functools.lru_cache(maxsize=16)
def _cap_ratio(name: str) -> float:
    """Ink height of the digits per font size unit."""
    _l, t, _r, b = _font(name, 200).getbbox('0123456789', anchor='ls')
    return (b - t) / 200.0


_CAP_BUCKETS = (24, 48, 96, 192, 384, 768)
_FREETYPE_LOCK = threading.Lock()   # one FreeType face is not safe to rasterise from two threads at once


@functools.lru_cache(maxsize=384)
def _text_mask(name: str, text: str, cap: int, weight_q: int, gap_q: int) -> np.ndarray:
    """Tight 8-bit ink mask of `text` about `cap` px tall.

    weight_q: extra stroke in 1/100 of the cap height (negative: thinner);
    gap_q: space between glyphs' ink in 1/100 of the cap height.
    """
    with _FREETYPE_LOCK:
        return _set_text(name, text, cap, weight_q, gap_q)


def _set_text(name: str, text: str, cap: int, weight_q: int, gap_q: int) -> np.ndarray:
    font = _font(name, max(4, int(round(cap / _cap_ratio(name)))))
    weight = weight_q / 100.0 * cap
    stroke = max(0.0, weight)
    ascent, descent = font.getmetrics()
    pad = int(math.ceil(stroke)) + 2
    height = ascent + descent + 2 * pad
    columns = []
    for ch in text:
        if ch == ' ':
            columns.append(np.zeros((height, max(1, int(0.3 * cap))), np.uint8))
            continue
        width = int(math.ceil(font.getlength(ch))) + 2 * pad + int(0.2 * cap)
        tile = Image.new('L', (width, height), 0)
        ImageDraw.Draw(tile).text((pad, pad + ascent), ch, font=font, anchor='ls', fill=255,
                                  stroke_width=stroke, stroke_fill=255)
        a = np.asarray(tile)
        if weight < 0:
            k = max(1, int(round(-weight)))
            a = cv2.erode(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
        xs = np.nonzero(a.max(axis=0) > 40)[0]
        if len(xs):
            columns.append(a[:, xs.min():xs.max() + 1])
    gap = np.zeros((height, max(0, int(round(gap_q / 100.0 * cap)))), np.uint8)
    parts = []
    for i, col in enumerate(columns):
        if i:
            parts.append(gap)
        parts.append(col)
    if not parts:
        return np.zeros((1, 1), np.uint8)
    run = np.concatenate(parts, axis=1)
    ys = np.nonzero(run.max(axis=1) > 40)[0]
    return np.ascontiguousarray(run[ys.min():ys.max() + 1]) if len(ys) else run[:1]


class _Type(NamedTuple):
    """How a line of text is set."""

    font: str
    weight: float     # extra stroke, fraction of the cap height (negative: thinner)
    condense: float   # horizontal scale
    gap: float        # space between glyphs, fraction of the cap height


def _text(img, text, center, height, color, typ: _Type, max_w=None):
    """`text` with ink `height` px tall centred at `center`, set in `typ`, shrunk to fit `max_w`."""
    if height < 1:
        return
    cap = next((b for b in _CAP_BUCKETS if b >= height), _CAP_BUCKETS[-1])
    tile = _text_mask(typ.font, text, cap, int(round(typ.weight * 100)), int(round(typ.gap * 100)))
    th, tw = tile.shape
    new_h = max(1, int(round(height)))
    new_w = max(1, int(round(tw * typ.condense * height / max(th, 1))))
    if max_w is not None and new_w > max_w:
        new_h = max(1, int(round(new_h * max_w / new_w)))
        new_w = max(1, int(round(max_w)))
    interp = cv2.INTER_AREA if new_h <= th else cv2.INTER_LINEAR
    tile = cv2.resize(tile, (new_w, new_h), interpolation=interp).astype(np.float32) / 255.0
    x0 = int(round(center[0] - new_w / 2))
    y0 = int(round(center[1] - new_h / 2))
    _blend(img, tile, x0, y0, color)


def _blend(img, alpha, x0, y0, color):
    H, W = img.shape[:2]
    h, w = alpha.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if xa >= xb or ya >= yb:
        return
    a = alpha[ya - y0:yb - y0, xa - x0:xb - x0, None]
    region = img[ya:yb, xa:xb].astype(np.float32)
    img[ya:yb, xa:xb] = (region * (1 - a) + np.asarray(color, np.float32) * a + 0.5).astype(np.uint8)


# --- style -------------------------------------------------------------------------------------

class _Style(NamedTuple):
    """Per-sign look; canonical when drawn without an rng."""

    white: tuple[int, int, int]
    ring_red: tuple[int, int, int]
    red: tuple[int, int, int]
    yellow: tuple[int, int, int]
    black: tuple[int, int, int]
    blue: tuple[int, int, int]
    o_white: tuple[int, int, int]
    o_ring: tuple[int, int, int]
    o_red: tuple[int, int, int]
    o_grey: tuple[int, int, int]
    ring: float          # LEGO ring width, fraction of the radius
    ring_margin: float   # white margin outside the LEGO ring, fraction of the radius
    o_ring_w: float      # other brand's ring width, fraction of the radius
    typ: _Type           # digits
    digit_h: float       # digit ink height, fraction of the face height
    digit_dy: float      # vertical offset of the digits, fraction of the face height
    tri_margin: float    # yellow margin outside the black border, fraction of the face height
    tri_band: float      # black border width, fraction of the face height
    tri_corner: float    # corner radius, fraction of the face height
    gloss: float         # strength of the specular highlight, 0..1
    gloss_pos: tuple[float, float]
    rim: float           # visible plastic edge, fraction of face height
    rim_dir: tuple[float, float]
    pole_color: tuple[int, int, int]
    pole_len: float      # pole length below the face, in face heights
    pole_w: float        # pole width, fraction of the face height
    base_color: tuple[int, int, int]
    base_w: float        # round base diameter, fraction of the face height
    plate: bool          # LEGO stand on a 2x2 plate
    plate_color: tuple[int, int, int]
    plate_w: float       # plate width, in face widths
    variant: int         # design variant for kinds that have several


_OTHER_KINDS = frozenset({'speed_limit_30_other', 'speed_limit_50_other', 'warning_children_other',
                          'warning_lights_other', 'warning_pedestrian_other'})


def _stand_of(kind: str, variant: int) -> str:
    """'lego' (black bar, round black base), 'other' (white pole and base) or 'grey' (traffic light)."""
    if kind in _OTHER_KINDS:
        return 'other'
    if kind == 'traffic_light':
        return 'grey' if variant % 3 else 'other'
    if kind in ('ring_digits', 'blank_disc') and variant % 2:
        return 'other'
    return 'lego'


def _jitter(rng: np.random.Generator, color, amount: float = 12.0):
    values = np.asarray(color, np.float64) + rng.normal(0.0, amount, 3)
    return tuple(int(v) for v in np.clip(values, 0, 255))


def _jitter_grey(rng: np.random.Generator, color, amount: float = 8.0):
    """Lighter or darker, barely tinted: whites, greys and blacks stay neutral."""
    values = np.asarray(color, np.float64) + rng.normal(0.0, amount) + rng.normal(0.0, amount / 4, 3)
    return tuple(int(v) for v in np.clip(values, 0, 255))


def _digit_type(kind: str, rng: np.random.Generator | None) -> tuple[_Type, float]:
    """Typeface of a speed limit's digits and their height (fraction of the face height)."""
    lego = not kind.endswith('_other') and kind != 'ring_digits'
    if rng is None:
        if kind == 'speed_limit_30':
            return _Type('sans_bold', 0.06, 0.78, 0.08), 0.41
        if kind == 'speed_limit_50':
            return _Type('sans', 0.0, 0.84, 0.1), 0.40
        return _Type('sans', 0.01, 0.86, 0.1), 0.44
    heavy = (rng.random() < 0.75) if kind == 'speed_limit_30' else (lego and rng.random() < 0.25)
    if heavy:
        typ = _Type(str(rng.choice(_BOLD_FACES)), float(rng.uniform(0.01, 0.09)),
                    float(rng.uniform(0.7, 0.95)), float(rng.uniform(0.03, 0.14)))
    else:
        typ = _Type(str(rng.choice(_REGULAR_FACES)), float(rng.uniform(-0.02, 0.035)),
                    float(rng.uniform(0.74, 1.02)), float(rng.uniform(0.04, 0.16)))
    return typ, float(rng.uniform(0.35, 0.46))


def _style(kind: str, rng: np.random.Generator | None) -> _Style:
    typ, digit_h = _digit_type(kind, rng)
    if rng is None:
        lego = _stand_of(kind, 0) == 'lego'
        return _Style(
            WHITE, RING_RED, RED, YELLOW, BLACK, BLUE, OTHER_WHITE, OTHER_RING, OTHER_RED, OTHER_GREY,
            ring=0.11, ring_margin=0.1, o_ring_w=0.25, typ=typ, digit_h=digit_h, digit_dy=0.0,
            tri_margin=0.045, tri_band=0.075, tri_corner=0.06,
            gloss=0.25, gloss_pos=(0.35, 0.3), rim=0.03, rim_dir=(0.4, 1.0),
            pole_color=BLACK if lego else (POLE_GREY if kind == 'traffic_light' else POLE_WHITE),
            pole_len=1.7 if lego else 1.15, pole_w=0.2 if lego else 0.17,
            base_color=BLACK if lego else (POLE_GREY if kind == 'traffic_light' else POLE_WHITE),
            base_w=0.4 if lego else 0.78, plate=False, plate_color=PLATE_GREY, plate_w=1.1, variant=0)
    variant = int(rng.integers(0, 1 << 16))
    stand = _stand_of(kind, variant)
    if stand == 'lego':
        pole = BLACK if rng.random() < 0.88 else (DARK_GREY if rng.random() < 0.6 else LIGHT_GREY)
        base = BLACK if rng.random() < 0.85 else pole
        pole_len, pole_w, base_w = rng.uniform(1.2, 2.0), rng.uniform(0.16, 0.23), rng.uniform(0.34, 0.46)
    else:
        pole = POLE_GREY if stand == 'grey' else (POLE_WHITE if rng.random() < 0.8 else LIGHT_GREY)
        base = pole
        pole_len, pole_w, base_w = rng.uniform(0.85, 1.4), rng.uniform(0.14, 0.2), rng.uniform(0.65, 0.9)
    plate_base = PLATE_GREY if rng.random() < 0.7 else (DARK_GREY if rng.random() < 0.7 else (75, 151, 74))
    return _Style(
        white=_jitter_grey(rng, WHITE, 6), ring_red=_jitter(rng, RING_RED, 12), red=_jitter(rng, RED, 12),
        yellow=_jitter(rng, YELLOW, 12), black=_jitter_grey(rng, BLACK, 6), blue=_jitter(rng, BLUE, 14),
        o_white=_jitter_grey(rng, OTHER_WHITE, 6), o_ring=_jitter(rng, OTHER_RING, 12),
        o_red=_jitter(rng, OTHER_RED, 12), o_grey=_jitter_grey(rng, OTHER_GREY, 14),
        ring=float(rng.uniform(0.07, 0.14)), ring_margin=float(rng.uniform(0.05, 0.14)),
        o_ring_w=float(rng.uniform(0.2, 0.32)), typ=typ, digit_h=digit_h,
        digit_dy=float(rng.normal(0.0, 0.01)),
        tri_margin=float(rng.uniform(0.03, 0.06)), tri_band=float(rng.uniform(0.06, 0.09)),
        tri_corner=float(rng.uniform(0.04, 0.08)),
        gloss=float(rng.uniform(0.0, 0.6)), gloss_pos=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.15, 0.6))),
        rim=float(rng.uniform(0.0, 0.06)), rim_dir=(float(rng.uniform(-1, 1)), float(rng.uniform(0.2, 1))),
        pole_color=_jitter_grey(rng, pole, 5), pole_len=float(pole_len), pole_w=float(pole_w),
        base_color=_jitter_grey(rng, base, 5), base_w=float(base_w),
        plate=stand == 'lego' and rng.random() < 0.5, plate_color=_jitter_grey(rng, plate_base, 10),
        plate_w=float(rng.uniform(0.95, 1.3)), variant=variant,
    )


# --- face primitives (drawn on an S x Wf canvas, S = supersampled face height) ------------------

def _circle(img, mask, c, r, color):
    center = (int(round(c[0] * 16)), int(round(c[1] * 16)))
    cv2.circle(img, center, max(0, int(round(r * 16))), color, -1, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.circle(mask, center, max(0, int(round(r * 16))), 255, -1, cv2.LINE_AA, 4)


def _ring(img, c, r, color, width):
    center = (int(round(c[0] * 16)), int(round(c[1] * 16)))
    cv2.circle(img, center, max(0, int(round(r * 16))), color, max(1, int(round(width))), cv2.LINE_AA, 4)


def _ellipse(img, mask, c, axes, angle, color):
    center = (int(round(c[0] * 16)), int(round(c[1] * 16)))
    ax = (max(0, int(round(axes[0] * 16))), max(0, int(round(axes[1] * 16))))
    cv2.ellipse(img, center, ax, angle, 0, 360, color, -1, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.ellipse(mask, center, ax, angle, 0, 360, 255, -1, cv2.LINE_AA, 4)


def _poly(img, mask, pts, color):
    p = np.round(np.asarray(pts, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [p], color, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.fillPoly(mask, [p], 255, cv2.LINE_AA, 4)


def _line(img, p0, p1, color, width):
    """A thick line with round ends."""
    a = (int(round(p0[0] * 16)), int(round(p0[1] * 16)))
    b = (int(round(p1[0] * 16)), int(round(p1[1] * 16)))
    cv2.line(img, a, b, color, max(1, int(round(width))), cv2.LINE_AA, 4)


def _rect(img, mask, x0, y0, x1, y1, color):
    _poly(img, mask, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color)


def _rounded_rect(img, mask, x0, y0, x1, y1, r, color):
    r = max(0.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    _rect(img, mask, x0 + r, y0, x1 - r, y1, color)
    _rect(img, mask, x0, y0 + r, x1, y1 - r, color)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        _circle(img, mask, (cx, cy), r, color)


def _octagon(cx, cy, r):
    return [(cx + r * math.cos(math.radians(22.5 + 45 * i)), cy + r * math.sin(math.radians(22.5 + 45 * i)))
            for i in range(8)]


def _tri_geometry(S, corner):
    """Sharp outer triangle (apex y, side) whose outline rounded by `corner` spans y in [0, S]."""
    side = 2 * (S + corner) / math.sqrt(3)
    return -corner, side


def _tri(img, mask, cx, S, corner, inset, color, up=True, radius=None):
    """Rounded triangle: the face outline (corner radius `corner`, spanning [0, S]) inset by `inset`.

    The corners of the inset shape keep the outline's centres (radius corner - inset), but never
    get sharper than `radius` (default: a quarter of the outline's corner radius).
    """
    apex, side = _tri_geometry(S, corner)
    r = max(corner - inset, corner * 0.25 if radius is None else radius)
    d = inset + r                      # core inset
    core_side = side - 2 * math.sqrt(3) * d
    if core_side <= 0:
        return
    h = core_side * math.sqrt(3) / 2
    if up:
        top = apex + 2 * d
        pts = [(cx, top), (cx + core_side / 2, top + h), (cx - core_side / 2, top + h)]
    else:
        top = (S - apex) - 2 * d       # mirrored: the apex points down to y = S
        pts = [(cx - core_side / 2, top - h), (cx + core_side / 2, top - h), (cx, top)]
    _poly(img, mask, pts, color)
    p = np.round(np.asarray(pts) * 16).astype(np.int32).reshape(-1, 1, 2)
    thick = max(1, int(round(2 * r)))
    cv2.polylines(img, [p], True, color, thick, cv2.LINE_AA, 4)
    if mask is not None:
        cv2.polylines(mask, [p], True, 255, thick, cv2.LINE_AA, 4)


# --- pictograms (silhouettes in a unit box mapped to (x0, y0, size)) ----------------------------

class _Pen:
    """Draws in unit coordinates (u right, v down) of an s x s box at (x0, y0)."""

    def __init__(self, img, x0, y0, s, color):
        self.img, self.x0, self.y0, self.s, self.color = img, x0, y0, s, color

    def P(self, u, v):
        return (self.x0 + u * self.s, self.y0 + v * self.s)

    def poly(self, pts, color=None):
        _poly(self.img, None, [self.P(u, v) for u, v in pts], color or self.color)

    def circle(self, u, v, r, color=None):
        _circle(self.img, None, self.P(u, v), r * self.s, color or self.color)

    def ellipse(self, u, v, ru, rv, angle=0.0, color=None):
        _ellipse(self.img, None, self.P(u, v), (ru * self.s, rv * self.s), angle, color or self.color)

    def line(self, pts, w, color=None):
        for a, b in zip(pts, pts[1:]):
            _line(self.img, self.P(*a), self.P(*b), color or self.color, w * self.s)

    def rect(self, u0, v0, u1, v1, color=None):
        _rect(self.img, None, *self.P(u0, v0), *self.P(u1, v1), color or self.color)


def _runner(pen, hx, hy, r, w, book=None):
    """A child running left (head at (hx, hy), radius r): solid leaning torso, swinging arms, striding legs."""
    pen.circle(hx, hy, r)
    sh_l, sh_r = (hx - 0.8 * r, hy + 1.4 * r), (hx + 0.9 * r, hy + 1.5 * r)
    hip_l, hip_r = (hx - 0.2 * r, hy + 4.3 * r), (hx + 1.3 * r, hy + 4.1 * r)
    pen.poly([sh_l, sh_r, hip_r, hip_l])                                                   # torso
    pen.line([(hx - 0.4 * r, hy + 1.9 * r), (hx - 1.5 * r, hy + 3.2 * r), (hx - 2.3 * r, hy + 2.8 * r)], w)
    pen.line([(hx + 0.6 * r, hy + 1.9 * r), (hx + 1.6 * r, hy + 3.0 * r), (hx + 2.2 * r, hy + 3.7 * r)], w)
    hip = (hx + 0.5 * r, hy + 4.0 * r)
    pen.line([hip, (hx - 1.0 * r, hy + 5.5 * r), (hx - 1.6 * r, hy + 7.3 * r)], w * 1.15)  # front leg
    pen.line([hip, (hx + 1.4 * r, hy + 5.9 * r), (hx + 2.6 * r, hy + 6.4 * r)], w * 1.15)  # back leg
    if book is not None:  # a book held out behind
        u, v = book
        pen.poly([(u, v), (u + 1.7 * r, v - 0.7 * r), (u + 2.0 * r, v + 0.9 * r), (u + 0.3 * r, v + 1.5 * r)])


def _pict_children(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    _runner(pen, 0.24, 0.2, 0.095, 0.075)
    _runner(pen, 0.66, 0.16, 0.095, 0.075, book=(0.84, 0.4))


def _pict_railway(img, x0, y0, s, color):
    """A steam locomotive going left, a big cloud of smoke blowing back over it."""
    pen = _Pen(img, x0, y0, s, color)
    for u, v, r in ((0.2, 0.4, 0.07), (0.3, 0.31, 0.095), (0.45, 0.25, 0.11), (0.6, 0.24, 0.1),
                    (0.73, 0.27, 0.075), (0.83, 0.31, 0.05), (0.38, 0.38, 0.07)):
        pen.circle(u, v, r)                                                        # smoke
    pen.poly([(0.15, 0.45), (0.27, 0.45), (0.26, 0.58), (0.17, 0.58)])            # chimney
    pen.rect(0.06, 0.56, 0.74, 0.8)                                               # boiler
    pen.rect(0.7, 0.46, 0.94, 0.82)                                               # cab
    pen.rect(0.66, 0.43, 0.98, 0.49)                                              # cab roof
    pen.rect(0.0, 0.78, 1.0, 0.84)                                                # frame
    pen.poly([(0.06, 0.78), (-0.04, 0.94), (0.1, 0.94)])                        # cow catcher
    for u in (0.2, 0.38, 0.56, 0.76):
        pen.circle(u, 0.88, 0.08)                                                 # wheels


def _pict_workers(img, x0, y0, s, color):
    """A worker (LEGO minifigure) bent over a shovel, digging into a pile, on a ground bar."""
    pen = _Pen(img, x0, y0, s, color)
    pen.rect(-0.12, 0.9, 1.12, 0.98)                                              # ground
    pen.poly([(0.5, 0.9), (0.6, 0.72), (0.7, 0.6), (0.78, 0.5), (0.86, 0.4), (0.95, 0.42), (1.02, 0.55),
              (1.1, 0.9)])                                                        # pile
    for u, v, r in ((0.66, 0.66, 0.06), (0.76, 0.54, 0.06), (0.86, 0.45, 0.06), (0.95, 0.47, 0.05)):
        pen.circle(u, v, r)                                                       # lumps of the pile
    pen.rect(0.31, 0.1, 0.47, 0.25)                                               # head
    pen.ellipse(0.39, 0.1, 0.1, 0.075)                                            # hard hat
    pen.rect(0.26, 0.09, 0.54, 0.12)                                              # its brim
    pen.poly([(0.3, 0.27), (0.5, 0.3), (0.44, 0.58), (0.24, 0.55)])              # leaning torso
    pen.line([(0.36, 0.56), (0.5, 0.72), (0.5, 0.87)], 0.11)                      # front leg
    pen.line([(0.28, 0.55), (0.2, 0.72), (0.08, 0.84)], 0.11)                     # back leg
    pen.line([(0.46, 0.33), (0.52, 0.46), (0.58, 0.5)], 0.08)                     # arm
    pen.line([(0.32, 0.33), (0.22, 0.42), (0.3, 0.46)], 0.08)                     # arm
    pen.line([(0.16, 0.4), (0.72, 0.7)], 0.04)                                    # shovel handle
    pen.poly([(0.68, 0.64), (0.82, 0.68), (0.8, 0.8), (0.66, 0.74)])              # shovel blade


def _pict_general(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    pen.poly([(0.4, 0.08), (0.6, 0.08), (0.55, 0.66), (0.45, 0.66)])
    pen.circle(0.5, 0.08, 0.1)
    pen.circle(0.5, 0.84, 0.1)


def _pict_crossing(img, x0, y0, s, color):
    """A gated level crossing: a fence of vertical bars between two rails."""
    pen = _Pen(img, x0, y0, s, color)
    pen.rect(0.02, 0.3, 0.98, 0.38)
    pen.rect(0.02, 0.82, 0.98, 0.9)
    for u in np.linspace(0.08, 0.92, 6):
        pen.rect(u - 0.035, 0.3, u + 0.035, 0.9)


def _pict_walker(pen, hx, hy, r, w):
    pen.circle(hx, hy, r)
    neck, hip = (hx, hy + 1.3 * r), (hx + 0.1 * r, hy + 4.2 * r)
    pen.line([neck, hip], w * 1.5)
    pen.line([(neck[0], neck[1] + 0.4 * r), (hx - 1.4 * r, hy + 3.6 * r)], w * 0.8)
    pen.line([(neck[0], neck[1] + 0.4 * r), (hx + 1.4 * r, hy + 3.4 * r)], w * 0.8)
    pen.line([hip, (hx - 1.6 * r, hy + 7.2 * r)], w)
    pen.line([hip, (hx + 1.9 * r, hy + 7.0 * r)], w)


def _pict_children_other(img, x0, y0, s, color):
    """The other brand's children: a tall child leading a small one."""
    pen = _Pen(img, x0, y0, s, color)
    _pict_walker(pen, 0.64, 0.12, 0.085, 0.07)
    _pict_walker(pen, 0.3, 0.44, 0.065, 0.06)
    pen.line([(0.42, 0.58), (0.53, 0.5)], 0.05)


def _pict_pedestrian(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    _pict_walker(pen, 0.5, 0.08, 0.075, 0.065)
    for i in range(5):
        u = 0.02 + 0.2 * i
        pen.poly([(u + 0.04, 0.76), (u + 0.14, 0.76), (u + 0.1, 0.96), (u, 0.96)])


# --- faces: each draws into (img, mask) of size S x Wf ------------------------------------------

def _speed_face(img, mask, S, st, digits, other):
    r = S / 2
    c = (img.shape[1] / 2, r)
    if other:
        _circle(img, mask, c, r, st.o_ring)
        _circle(img, None, c, r * (1 - st.o_ring_w), st.o_white)
        inner = S * (1 - st.o_ring_w)
        color = st.o_grey
    else:
        _circle(img, mask, c, r, st.white)
        r_out = r * (1 - st.ring_margin)
        _circle(img, None, c, r_out, st.ring_red)
        _circle(img, None, c, r_out - st.ring * r, st.white)
        inner = 2 * (r_out - st.ring * r)
        color = st.black
    if digits:
        _text(img, digits, (c[0], r + st.digit_dy * S), st.digit_h * S, color, st.typ, max_w=0.84 * inner)


def _face_speed(digits: str, other: bool = False) -> Callable:
    def draw(img, mask, S, st):
        _speed_face(img, mask, S, st, digits, other)
    return draw


_OTHER_LIMITS = ('10', '20', '40', '70', '100', '120')


def _face_ring_digits(img, mask, S, st):
    """A red ring with digits that are not a class (LEGO or other brand look)."""
    _speed_face(img, mask, S, st, _OTHER_LIMITS[(st.variant // 2) % len(_OTHER_LIMITS)], bool(st.variant % 2))


def _face_ring_blank(img, mask, S, st):
    _speed_face(img, mask, S, st, '', bool(st.variant % 4 == 1))


def _face_blank_disc(img, mask, S, st):
    r = S / 2
    _circle(img, mask, (r, r), r, st.o_white if st.variant % 2 else st.white)
    if st.variant % 3 == 0:
        _ring(img, (r, r), r * 0.96, tuple(int(v * 0.85) for v in st.white), 0.015 * S)


_BOLD = _Type('sans_bold', 0.0, 1.0, 0.04)


def _face_stop(img, mask, S, st):
    r = S / 2
    if st.variant % 5 in (1, 2):   # LEGO's round STOP: red disc, thin white ring, bold white letters
        _circle(img, mask, (r, r), r, st.red)
        _ring(img, (r, r), 0.9 * r, st.white, 0.045 * S)
        _text(img, 'STOP', (r, r), 0.25 * S, st.white, _BOLD._replace(condense=0.86), max_w=0.76 * S)
        return
    k = 1 / math.cos(math.radians(22.5))
    _poly(img, mask, _octagon(r, r, r * k), st.red)
    _poly(img, None, _octagon(r, r, 0.93 * r * k), st.white)
    _poly(img, None, _octagon(r, r, 0.86 * r * k), st.red)
    _text(img, 'STOP', (r, r), 0.26 * S, st.white, _BOLD._replace(condense=0.9), max_w=0.76 * S)


_TRI_ASPECT = 2 / math.sqrt(3)


def _face_danger(pict: Callable | None) -> Callable:
    """A yellow LEGO warning triangle: yellow margin, black border, black pictogram."""
    def draw(img, mask, S, st):
        cx = img.shape[1] / 2
        corner = st.tri_corner * S
        _tri(img, mask, cx, S, corner, 0, st.yellow)
        _tri(img, None, cx, S, corner, st.tri_margin * S, st.black)
        _tri(img, None, cx, S, corner, (st.tri_margin + st.tri_band) * S, st.yellow, radius=0.012 * S)
        if pict is not None:
            size = 0.48 * S
            pict(img, cx - size / 2, 0.4 * S, size, st.black)
    return draw


def _pict_lights(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    for v, c in ((0.08, (214, 66, 48)), (0.48, (232, 214, 60)), (0.88, (96, 176, 88))):
        pen.circle(0.5, v, 0.16, color=c)


def _face_warning_other(pict: Callable, deep_red: bool = False) -> Callable:
    """The other brand's warning triangle: red border from the edge, white field, pictogram."""
    def draw(img, mask, S, st):
        cx = img.shape[1] / 2
        corner = 0.05 * S
        border = st.o_red if deep_red else st.o_ring
        _tri(img, mask, cx, S, corner, 0, border)
        _tri(img, None, cx, S, corner, (0.1 + 0.03 * ((st.variant >> 3) % 2)) * S, st.o_white, radius=0.01 * S)
        if pict is _pict_lights:
            pict(img, cx - 0.21 * S, 0.36 * S, 0.42 * S, st.black)
        else:
            pict(img, cx - 0.26 * S, 0.38 * S, 0.52 * S, (28, 26, 26))
    return draw


def _face_traffic_light(img, mask, S, st):
    """Grey housing with three lamps (one lit) under visors, side ears and a cap on top."""
    W = img.shape[1]
    housing = tuple(int(c) for c in np.clip(np.asarray(HOUSING) + (st.variant % 7 - 3) * 3, 0, 255))
    dark = tuple(int(c * 0.45) for c in housing)
    _rounded_rect(img, mask, 0.36 * W, 0.0, 0.64 * W, 0.14 * S, 0.03 * S, tuple(int(c * 1.15) for c in housing))
    for v in (0.3, 0.53, 0.76):
        _rounded_rect(img, mask, 0.0, (v - 0.07) * S, W, (v + 0.01) * S, 0.02 * S, housing)
    _rounded_rect(img, mask, 0.1 * W, 0.1 * S, 0.9 * W, S, 0.06 * S, housing)
    lit = (st.variant >> 2) % 4   # 0 red, 1 yellow, 2 green, 3 red + yellow
    lamps = (((232, 96, 56), (70, 40, 34)), ((230, 206, 70), (70, 66, 40)), ((126, 206, 104), (44, 62, 44)))
    for i, v in enumerate((0.3, 0.53, 0.76)):
        on = i == lit or (lit == 3 and i < 2)
        c = (W / 2, v * S)
        _circle(img, None, c, 0.25 * W, dark)
        _circle(img, None, c, 0.18 * W, lamps[i][0] if on else lamps[i][1])
        center = (int(round(c[0] * 16)), int(round(c[1] * 16)))
        cv2.ellipse(img, center, (int(0.27 * W * 16), int(0.25 * W * 16)), 0, 190, 350,
                    tuple(int(x * 0.6) for x in housing), max(1, int(0.05 * W)), cv2.LINE_AA, 4)   # visor
    _rounded_rect(img, None, 0.38 * W, 0.9 * S, 0.62 * W, 0.94 * S, 0.01 * S, (214, 216, 212))


def _face_no_entry(img, mask, S, st):
    r = S / 2
    _circle(img, mask, (r, r), r, st.red)
    _rect(img, None, 0.18 * S, 0.42 * S, 0.82 * S, 0.58 * S, st.white)


def _pict_bicycle(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    for u in (0.22, 0.78):
        c = pen.P(u, 0.68)
        _ring(img, c, 0.2 * s, color, 0.07 * s)
    pen.line([(0.22, 0.68), (0.45, 0.4), (0.72, 0.4), (0.78, 0.68)], 0.07)
    pen.line([(0.45, 0.4), (0.5, 0.68), (0.72, 0.4)], 0.07)
    pen.line([(0.22, 0.68), (0.5, 0.68)], 0.07)
    pen.line([(0.45, 0.4), (0.4, 0.28)], 0.07)
    pen.line([(0.72, 0.4), (0.68, 0.25)], 0.07)


def _pict_car(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    pen.poly([(0.02, 0.5), (0.2, 0.48), (0.32, 0.28), (0.7, 0.28), (0.82, 0.48), (0.98, 0.52), (0.98, 0.72),
              (0.02, 0.72)])
    for u in (0.24, 0.76):
        pen.circle(u, 0.74, 0.11)


def _pict_bus(img, x0, y0, s, color):
    pen = _Pen(img, x0, y0, s, color)
    pen.rect(0.05, 0.25, 0.95, 0.75)
    for u in (0.25, 0.75):
        pen.circle(u, 0.76, 0.1)


def _face_bus_stop(img, mask, S, st):
    W = img.shape[1]
    fg = st.blue if st.variant % 2 else st.yellow
    _rect(img, mask, 0, 0, W, S, fg)
    _rect(img, None, 0.08 * W, 0.08 * S, 0.92 * W, 0.92 * S, st.white if st.variant % 2 else (20, 120, 40))
    if st.variant % 3 == 0:
        _text(img, 'BUS', (W / 2, S / 2), 0.28 * S, fg, _BOLD, max_w=0.8 * W)
    else:
        _pict_bus(img, 0.15 * W, 0.15 * S, 0.7 * S, fg)


def _face_bicycle(img, mask, S, st):
    r = S / 2
    _circle(img, mask, (r, r), r, st.blue)
    _pict_bicycle(img, 0.17 * S, 0.12 * S, 0.66 * S, st.white)


def _face_car(img, mask, S, st):
    r = S / 2
    if st.variant % 2:  # no motor vehicles: red ring, black car
        _circle(img, mask, (r, r), r, st.ring_red)
        _circle(img, None, (r, r), r * (1 - 0.26), st.white)
        _pict_car(img, 0.22 * S, 0.2 * S, 0.56 * S, st.black)
    else:               # blue square, white car
        _rect(img, mask, 0, 0, S, S, st.blue)
        _pict_car(img, 0.12 * S, 0.15 * S, 0.76 * S, st.white)


def _face_parking(img, mask, S, st):
    _rect(img, mask, 0, 0, S, S, st.blue)
    _text(img, 'P', (S / 2, S / 2), 0.62 * S, st.white, _BOLD)


def _face_give_way(img, mask, S, st):
    cx = img.shape[1] / 2
    corner = 0.05 * S
    _tri(img, mask, cx, S, corner, 0, st.red, up=False)
    _tri(img, None, cx, S, corner, 0.12 * S, st.white, up=False, radius=0.01 * S)


def _face_no_parking(img, mask, S, st):
    r = S / 2
    _circle(img, mask, (r, r), r, st.red)
    _circle(img, None, (r, r), r * 0.8, st.blue)
    _line(img, (0.25 * S, 0.25 * S), (0.75 * S, 0.75 * S), st.red, 0.1 * S)
    if st.variant % 2:
        _line(img, (0.75 * S, 0.25 * S), (0.25 * S, 0.75 * S), st.red, 0.1 * S)


def _back(shape: str) -> Callable:
    def draw(img, mask, S, st):
        color = st.white if st.variant % 3 else (200, 202, 204)
        r = S / 2
        if shape == 'round':
            _circle(img, mask, (r, r), r, color)
            _circle(img, None, (r, r), 0.88 * r, tuple(int(c * 0.93) for c in color))
        elif shape == 'octagon':
            _poly(img, mask, _octagon(r, r, r / math.cos(math.radians(22.5))), color)
        else:
            _tri(img, mask, img.shape[1] / 2, S, 0.06 * S, 0, color)
        # the clip on the back of the part
        cw = 0.22 * S
        cx = img.shape[1] / 2
        _rect(img, None, cx - cw / 2, 0.45 * S, cx + cw / 2, 0.9 * S, tuple(int(c * 0.8) for c in color))
    return draw


# kind -> (face drawer, face width / face height)
_FACES: dict[str, tuple[Callable, float]] = {
    'speed_limit_30': (_face_speed('30'), 1.0),
    'speed_limit_50': (_face_speed('50'), 1.0),
    'stop': (_face_stop, 1.0),
    'danger_railway': (_face_danger(_pict_railway), _TRI_ASPECT),
    'danger_children': (_face_danger(_pict_children), _TRI_ASPECT),
    'danger_workers': (_face_danger(_pict_workers), _TRI_ASPECT),
    'danger_general': (_face_danger(_pict_general), _TRI_ASPECT),
    'danger_crossing': (_face_danger(_pict_crossing), _TRI_ASPECT),
    'speed_limit_30_other': (_face_speed('30', other=True), 1.0),
    'speed_limit_50_other': (_face_speed('50', other=True), 1.0),
    'no_entry': (_face_no_entry, 1.0),
    'bus_stop': (_face_bus_stop, 0.8),
    'bicycle': (_face_bicycle, 1.0),
    'car': (_face_car, 1.0),
    'parking': (_face_parking, 1.0),
    'give_way': (_face_give_way, _TRI_ASPECT),
    'no_parking': (_face_no_parking, 1.0),
    'back_round': (_back('round'), 1.0),
    'back_octagon': (_back('octagon'), 1.0),
    'back_triangle': (_back('triangle'), _TRI_ASPECT),
    'warning_children_other': (_face_warning_other(_pict_children_other, deep_red=True), _TRI_ASPECT),
    'warning_lights_other': (_face_warning_other(_pict_lights), _TRI_ASPECT),
    'warning_pedestrian_other': (_face_warning_other(_pict_pedestrian), _TRI_ASPECT),
    'traffic_light': (_face_traffic_light, 0.62),
    'blank_triangle': (_face_danger(None), _TRI_ASPECT),
    'blank_disc': (_face_blank_disc, 1.0),
    'ring_blank': (_face_ring_blank, 1.0),
    'ring_digits': (_face_ring_digits, 1.0),
}
assert set(_FACES) == set(ALL_KINDS)


def _shade_face(img, mask, st):
    """Plastic gloss: a soft specular highlight and a slight top-to-bottom falloff."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = st.gloss_pos
    d2 = ((xx - gx * w) / (0.35 * w)) ** 2 + ((yy - gy * h) / (0.25 * h)) ** 2
    spec = st.gloss * 0.55 * np.exp(-d2)[..., None]
    fall = (1.0 - 0.08 * yy / max(h, 1))[..., None]
    out = img.astype(np.float32) * fall
    out = out + (255.0 - out) * spec
    return np.clip(out, 0, 255).astype(np.uint8)


# --- stands: pole, base, plate -----------------------------------------------------------------

class _Stand(NamedTuple):
    kind: str          # 'lego', 'other', 'grey'
    pole_w: float      # px
    pole_len: float    # px below the face
    foot_h: float      # flared foot of the pole (ribbed LEGO bar end, or the other brand's fillet)
    base_w: float
    base_side: float   # height of the base's visible side
    base_top: float    # height of the base's top ellipse
    plate_w: float     # 0: no plate
    plate_side: float
    plate_top: float

    @property
    def below(self) -> float:
        """Height of the stand below the face bottom."""
        return (self.pole_len + self.base_side + self.base_top / 2
                + (self.plate_side + self.plate_top / 2 if self.plate_w else 0.0))

    @property
    def width(self) -> float:
        return max(self.base_w, self.plate_w)


def _stand(kind: str, S: float, Wf: float, st: _Style) -> _Stand:
    stand = _stand_of(kind, st.variant)
    narrow = 0.7 if kind == 'traffic_light' else 1.0    # a thin pole under a tall housing
    pole_w = max(2.0, st.pole_w * S * narrow)
    base_w = st.base_w * S * narrow
    if stand == 'lego':
        plate_w = st.plate_w * Wf if st.plate else 0.0
        return _Stand(stand, pole_w, st.pole_len * S, 0.27 * S, base_w, 0.2 * S, 0.3 * base_w,
                      plate_w, 0.08 * plate_w, 0.32 * plate_w)
    return _Stand(stand, pole_w, st.pole_len * S, 0.2 * S, base_w, 0.15 * S, 0.34 * base_w, 0.0, 0.0, 0.0)


def _shade(color, k):
    return tuple(int(c) for c in np.clip(np.asarray(color, np.float32) * k + (8 if k > 1 else 0), 0, 255))



def _cylinder(canvas, alpha, cx, x_half, y0, y1, color, ribs=0):
    """A vertical solid of revolution from y0 to y1, shaded column by column.

    x_half: its half width, a number or a function of t in [0, 1] (top to bottom) for flared parts.
    ribs: grooves across the half width (the LEGO bar's ribs).
    """
    if y1 <= y0:
        return
    H, W = alpha.shape
    ya, yb = max(0, int(round(y0))), min(H, int(round(y1)))
    if ya >= yb:
        return
    t = (np.arange(ya, yb) + 0.5 - y0) / (y1 - y0)
    half = np.broadcast_to(np.asarray(x_half(t) if callable(x_half) else x_half, np.float64), t.shape)
    hmax = float(half.max())
    if hmax <= 0:
        return
    xa, xb = max(0, int(math.floor(cx - hmax))), min(W, int(math.ceil(cx + hmax)))
    if xa >= xb:
        return
    dx = np.arange(xa, xb) + 0.5 - cx
    u = dx[None, :] / half[:, None]
    cover = np.clip((1.0 - np.abs(u)) * half[:, None], 0.0, 1.0)          # anti-aliased sides
    col = np.asarray(color, np.float32)
    light = float(col.mean()) / 255.0      # light plastic: soft shading; dark plastic: a sharp sheen
    hi = np.exp(-((u + 0.4) / 0.22) ** 2)
    shade = 1.0 - (0.32 - 0.12 * light) * u * u + (0.55 - 0.45 * light) * hi - 0.22 * (1 - light)
    if ribs:
        shade = shade * (1.0 - 0.18 * (np.cos(u * math.pi * ribs) > 0.7))
    rgb = np.clip(col * shade[..., None] + (16 * (1 - light)) * shade[..., None] + 30 * light * hi[..., None],
                  0, 255)
    a = cover[..., None]
    dst = canvas[ya:yb, xa:xb].astype(np.float32)
    canvas[ya:yb, xa:xb] = np.clip(dst * (1 - a) + rgb * a, 0, 255).astype(np.uint8)
    alpha[ya:yb, xa:xb] = np.maximum(alpha[ya:yb, xa:xb], (cover * 255).astype(np.uint8))


def _disc_base(canvas, alpha, cx, top_y, w, side, top_h, color):
    """A round base seen from slightly above: side band and top ellipse centred at top_y."""
    half = w / 2
    _ellipse(canvas, alpha, (cx, top_y + side), (half, top_h / 2), 0, _shade(color, 0.7))
    _cylinder(canvas, alpha, cx, half, top_y, top_y + side, _shade(color, 0.9))
    _ellipse(canvas, alpha, (cx, top_y), (half, top_h / 2), 0, _shade(color, 1.02))
    _ellipse(canvas, None, (cx - 0.1 * half, top_y - 0.1 * top_h), (0.7 * half, 0.3 * top_h), 0, _shade(color, 1.1))


def _plate(canvas, alpha, cx, top_y, w, side, top_h, color):
    """A 2x2 plate seen from slightly above: top face (with four studs) and front face."""
    half = w / 2
    _rect(canvas, alpha, cx - half, top_y - top_h / 2, cx + half, top_y + top_h / 2, _shade(color, 1.08))
    _rect(canvas, alpha, cx - half, top_y + top_h / 2, cx + half, top_y + top_h / 2 + side, _shade(color, 0.78))
    stud_r = w * 0.13
    for u in (-0.25, 0.25):
        for v in (-0.22, 0.22):
            sx, sy = cx + u * w, top_y + v * top_h
            _ellipse(canvas, None, (sx, sy + stud_r * 0.28), (stud_r, stud_r * 0.42), 0, _shade(color, 0.8))
            _ellipse(canvas, None, (sx, sy), (stud_r, stud_r * 0.42), 0, _shade(color, 1.2))


def _draw_stand(canvas, alpha, cx, top, face_bottom, sd: _Stand, st: _Style):
    """Plate, base, foot and pole; the pole starts behind the face at `top`."""
    y = face_bottom + sd.below
    if sd.plate_w:
        plate_top = y - sd.plate_side - sd.plate_top / 2
        _plate(canvas, alpha, cx, plate_top, sd.plate_w, sd.plate_side, sd.plate_top, st.plate_color)
        y = plate_top
    base_top = y - sd.base_side
    _disc_base(canvas, alpha, cx, base_top, sd.base_w, sd.base_side, sd.base_top, st.base_color)
    pole_bottom = base_top
    foot_top = pole_bottom - sd.foot_h
    _cylinder(canvas, alpha, cx, sd.pole_w / 2, top, pole_bottom, st.pole_color, ribs=4 if sd.kind == 'lego' else 0)
    half = sd.pole_w / 2
    if sd.kind == 'lego':   # the bar's ribbed, flared foot
        _cylinder(canvas, alpha, cx, lambda t: half * (1.05 + 0.65 * t), foot_top, pole_bottom + 1, st.pole_color,
                  ribs=3)
    else:                   # a fillet into the base
        _cylinder(canvas, alpha, cx, lambda t: half * (1.0 + 1.4 * t ** 3), foot_top, pole_bottom + 1, st.pole_color)


# --- rendering ---------------------------------------------------------------------------------

def render_sign_layers(kind: str, height_px: int, rng: np.random.Generator | None = None, *,
                       pole: bool = True) -> SignLayers:
    """Render one sign; see the module docstring."""
    if kind not in _FACES:
        raise RenderError(f'unknown sign kind {kind!r}; supported: {", ".join(ALL_KINDS)}')
    if not MIN_HEIGHT_PX <= int(height_px) <= MAX_HEIGHT_PX:
        raise RenderError(f'height_px {height_px} out of range [{MIN_HEIGHT_PX}, {MAX_HEIGHT_PX}]')
    height_px = int(height_px)
    st = _style(kind, rng)
    draw, aspect = _FACES[kind]
    S = int(min(max(4 * height_px, 96), max(400, height_px)))   # supersampled face height
    Wf = int(round(S * aspect))
    rim = st.rim * S
    sd = _stand(kind, S, Wf, st) if pole else None
    margin = int(math.ceil(rim + 2))
    W = int(math.ceil(max(Wf, sd.width if sd else 0))) + 2 * margin
    H = int(math.ceil(S + (sd.below if sd else 0))) + 2 * margin
    canvas = np.zeros((H, W, 3), np.uint8)
    alpha = np.zeros((H, W), np.uint8)
    fx0 = (W - Wf) // 2
    fy0 = margin
    cx = fx0 + Wf / 2
    if sd:
        _draw_stand(canvas, alpha, cx, fy0 + S * 0.5, fy0 + S, sd, st)
    face = np.zeros((S, Wf, 3), np.uint8)
    fmask = np.zeros((S, Wf), np.uint8)
    draw(face, fmask, S, st)
    face = _shade_face(face, fmask, st)
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
    # premultiply before shrinking so transparent pixels do not bleed black into the edges
    pre = cv2.multiply(canvas, cv2.merge([alpha, alpha, alpha]), scale=1.0 / 255.0, dtype=cv2.CV_32F)
    pre = cv2.merge([pre, alpha.astype(np.float32)])
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
