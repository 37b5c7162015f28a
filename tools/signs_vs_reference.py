#!/usr/bin/env python3
"""Compare the procedural signs (train_fou.render.signs) with photos of the real ones, by eye.

Writes two pictures:

* ``out/signs_vs_reference.png`` (git-ignored; ``--out``): per row the
  reference photo(s) on the left and the canonical render(s) on the right,
  scaled to the same sprite height: LEGO 30, 50, children, train, worker,
  the other brand's 30, 50, warning triangles and traffic lights. The
  reference photos have an unknown licence: this picture must never enter
  the repository, which is why it goes to the ignored ``out/``.
* ``docs/signs_renders.png`` (committed; ``--docs``): renders only: every
  kind canonically, a row of randomised variants, and a row at 16, 24 and
  40 px face height as the train camera sees them (shown 1:1 and enlarged
  4x without smoothing).

    .venv/bin/python tools/signs_vs_reference.py [--reference DIR] [--out PNG] [--docs PNG]

Reference photos: ``--reference`` or ``$TRAIN_FOU_SIGN_REFERENCE``, default
``/work/shared/reference/signs`` (RGBA PNGs with transparent background). Without
them only the renders sheet is written.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'src'))

from train_fou.render.signs import ALL_KINDS, CLASS_KINDS, font_path, render_sign  # noqa: E402

BACKGROUND = (128, 140, 128)
INK = (20, 20, 20)

#: row label -> (reference photo stems, renderer kinds)
ROWS = [
    ('LEGO 30', ['lego_30'], ['speed_limit_30']),
    ('LEGO 50', ['lego_50'], ['speed_limit_50']),
    ('LEGO children', ['lego_children'], ['danger_children']),
    ('LEGO train', ['lego_train'], ['danger_railway']),
    ('LEGO worker', ['lego_worker'], ['danger_workers']),
    ('other 30', ['other_brand_30'], ['speed_limit_30_other']),
    ('other 50', ['other_brand_50'], ['speed_limit_50_other']),
    ('other triangles', ['other_brand_children', 'other_brand_lights', 'other_brand_pedestrian'],
     ['warning_children_other', 'warning_lights_other', 'warning_pedestrian_other']),
    ('traffic lights', ['other_brand_green', 'other_brand_red'], ['traffic_light', 'traffic_light']),
]
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path('sans')), size)


def sprite(kind: str, face_h: int, rng=None) -> Image.Image:
    rgba, _box = render_sign(kind, face_h, rng)
    return Image.fromarray(rgba, 'RGBA')


def sprite_of_height(kind: str, total_h: int, seed: int | None = None) -> Image.Image:
    """A render (canonical, or of `seed`) whose whole sprite (face, pole, base) is about `total_h` px tall."""
    def rng():
        return None if seed is None else np.random.default_rng(seed)
    probe, _box = render_sign(kind, 100, rng())
    return sprite(kind, max(4, int(round(100 * total_h / probe.shape[0]))), rng())


def _fit_h(im: Image.Image, h: int) -> Image.Image:
    return im.resize((max(1, round(im.width * h / im.height)), h), Image.LANCZOS)


def _hstack(images, gap=12, bg=BACKGROUND):
    w = sum(i.width for i in images) + gap * (len(images) - 1)
    h = max(i.height for i in images)
    out = Image.new('RGBA', (w, h), bg + (255,))
    x = 0
    for im in images:
        out.alpha_composite(im.convert('RGBA'), (x, h - im.height))
        x += im.width + gap
    return out


def _vstack(images, gap=10, bg=BACKGROUND):
    w = max(i.width for i in images)
    h = sum(i.height for i in images) + gap * (len(images) - 1)
    out = Image.new('RGBA', (w, h), bg + (255,))
    y = 0
    for im in images:
        out.alpha_composite(im.convert('RGBA'), (0, y))
        y += im.height + gap
    return out


def _label(text: str, w: int, h: int, size: int = 18) -> Image.Image:
    im = Image.new('RGBA', (w, h), BACKGROUND + (255,))
    ImageDraw.Draw(im).text((6, h // 2), text, font=_font(size), fill=INK, anchor='lm')
    return im


def _traffic_light_seed(want: str) -> int:
    """A seed whose randomised traffic light shows `want` lit, on a grey pole (the renderer's variant bits)."""
    from train_fou.render.signs import _style
    bit = {'red': 0, 'green': 2}[want]
    for seed in range(1000):
        v = _style('traffic_light', np.random.default_rng(seed)).variant
        if (v >> 2) % 4 == bit and v % 3:
            return seed
    return 0


def side_by_side(reference: pathlib.Path, row_h: int = 300) -> Image.Image:
    rows = []
    for label, stems, kinds in ROWS:
        refs = []
        for stem in stems:
            path = reference / f'{stem}.png'
            refs.append(_fit_h(Image.open(path).convert('RGBA'), row_h) if path.is_file()
                        else _label(f'({stem} missing)', 160, row_h, 14))
        if label == 'traffic lights':
            renders = [sprite_of_height('traffic_light', row_h, _traffic_light_seed(c)) for c in ('green', 'red')]
        else:
            renders = [sprite_of_height(k, row_h) for k in kinds]
        rows.append(_hstack([_label(label, 170, row_h), _hstack(refs), _label('|', 30, row_h, 40),
                             _hstack(renders)], gap=16))
    head = _label('reference photos  |  canonical renders', 700, 40, 22)
    half = (len(rows) + 1) // 2
    return _vstack([head, _hstack([_vstack(rows[:half]), _vstack(rows[half:])], gap=40)])


def renders_sheet() -> Image.Image:
    sections = []
    canon = [sprite(k, 90) for k in ALL_KINDS]
    per_row = 14
    sections.append(_label('canonical (rng=None), classes then distractors', 900, 30))
    for i in range(0, len(canon), per_row):
        sections.append(_hstack(canon[i:i + per_row], gap=10))
    sections.append(_label('randomised (seeded rng)', 900, 30))
    variant_kinds = ['speed_limit_30', 'speed_limit_50', 'speed_limit_30_other', 'speed_limit_50_other', 'stop',
                     'danger_children', 'danger_railway', 'danger_workers', 'ring_digits', 'traffic_light']
    for r in range(2):
        sections.append(_hstack([sprite(k, 70, np.random.default_rng(100 * r + j))
                                 for j, k in enumerate(variant_kinds * 2)][:16], gap=8))
    sections.append(_label('as the train camera sees them: 16, 24, 40 px face height, 1:1 and 4x', 900, 30))
    small_kinds = list(CLASS_KINDS) + ['warning_children_other', 'blank_triangle', 'ring_digits']
    for h in (16, 24, 40):
        ims = [sprite(k, h) for k in small_kinds]
        one = _hstack(ims, gap=4)
        big = _hstack([im.resize((im.width * 4, im.height * 4), Image.NEAREST) for im in ims], gap=8) \
            if h < 40 else None
        sections.append(_hstack([one] + ([big] if big is not None else []), gap=30))
    return _vstack(sections, gap=8)


def save_small_png(im: Image.Image, path: pathlib.Path, colors: int = 192) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.convert('RGB').quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
        .save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    default_reference = os.environ.get('TRAIN_FOU_SIGN_REFERENCE', '/work/shared/reference/signs')
    parser.add_argument('--reference', type=pathlib.Path, default=pathlib.Path(default_reference))
    parser.add_argument('--out', type=pathlib.Path, default=ROOT / 'out' / 'signs_vs_reference.png',
                        help='side-by-side with the reference photos (keep it out of git)')
    parser.add_argument('--docs', type=pathlib.Path, default=ROOT / 'docs' / 'signs_renders.png',
                        help='renders-only sheet (committed)')
    args = parser.parse_args(argv)
    sheet = renders_sheet()
    save_small_png(sheet, args.docs)
    print(f'{args.docs}: {sheet.width}x{sheet.height}, {args.docs.stat().st_size // 1024} KiB')
    if args.reference.is_dir():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        side_by_side(args.reference).convert('RGB').save(args.out)
        print(f'{args.out}: side by side with {args.reference} (do not commit it)')
    else:
        print(f'{args.reference}: no reference photos; wrote the renders sheet only')
    return 0


if __name__ == '__main__':
    sys.exit(main())
