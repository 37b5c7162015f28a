"""Synthetic LEGO sign scenes -> a YOLO dataset (numpy + OpenCV only: runs in the runtime venv too).

Each image is a background (training.backgrounds: a crop of a real photograph,
a photographed room above a procedural table with a LEGO track, a procedural
scene of train_fou.render.scene with random textures (training.textures) on
its wall and ground, or the plain procedural scene; textured clutter) with
signs from train_fou.render.signs standing in it, under domain randomisation:

- sign face height from far (12 px) to near (260 px) at 640x480, most of them
  in the 14..70 px band a sign has at reaction distance on the train camera;
- the sign seen at an angle (yaw up to ~65 deg, pitch, roll) through a
  pinhole homography, its own shading, contact shadow, partial occlusion by
  bricks, truncation at the image border;
- several signs per image, distractor signs that are not classes, look-alikes
  that are not signs (loose "30"/"50" and other numbers without a ring, white
  discs, red rings, red and yellow blobs, yellow triangles without a border),
  images with no class sign at all;
- lighting (gradient, vignetting, colour cast, gamma), then one of two
  cameras: `camera_effects` (phones and still cameras: mild defocus, motion
  blur, resolution loss, noise, sharpening, JPEG) or, for `train_camera_p` of
  the landscape images, `train_camera_effects` (the train's camera at its real
  strength: motion blur up to 25 px in any direction and camera shake,
  defocus, rolling-shutter skew, low light with shot and read noise and gain,
  white-balance casts, blown highlights with bloom, haze, resolution loss,
  JPEG at low quality).

Image `i` of a split is drawn from `np.random.default_rng([seed, split_id, i])`,
so a dataset is deterministic for a seed (and the set of installed photo
packages) and any image can be regenerated alone.
"""
from __future__ import annotations

import math
import multiprocessing
import pathlib
from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np

from train_fou.render.scene import BRICK_COLORS, draw_brick, paste_rgba
from train_fou.render.signs import (
    CLASS_KINDS,
    CLASS_NAMES,
    DISTRACTOR_KINDS,
    HARD_DISTRACTOR_KINDS,
    KIND_CLASS,
    render_sign_layers,
)
from training.backgrounds import require_photos, scene_background
from training.dataset import SPLITS, Box, write_data_yaml, write_labels

SPLIT_IDS = {'train': 0, 'val': 1, 'test': 2}


@dataclass(frozen=True)
class SynthConfig:
    """What the generator draws; every field has a default that suits the shipped model."""

    width: int = 640             # camera frame size (the train camera is 640x480)
    height: int = 480
    portrait_p: float = 0.1      # phone photos held upright
    empty_p: float = 0.12        # images with no class sign (distractors may still be there)
    max_signs: int = 4           # class signs per image, 1..max_signs
    max_distractors: int = 3
    small_p: float = 0.65        # share of signs in the 14..70 px band (reaction distance)
    min_face_px: int = 12
    max_face_px: int = 260
    max_yaw_deg: float = 60.0    # signs beside the track are seen at an angle
    occlusion_p: float = 0.15
    jpeg_quality: int = 95       # quality of the written files (JPEG artefacts are an augmentation before it)
    # shares; `photo_p: 0` is the explicit way to generate without the photo packages (runtime venv, tests)
    photo_p: float = 0.5         # backgrounds from a real photograph (half full frame, half a room above a table)
    texture_p: float = 0.6       # of the procedural rest: random textures on walls, grounds, backdrops
    train_camera_p: float = 0.5  # landscape images through the train camera's effects (the rest: camera_effects)
    lookalike_p: float = 0.6     # images with look-alikes (loose digits, discs, rings, blobs, triangles)
    max_lookalikes: int = 6
    hard_negative_p: float = 0.0  # share of distractors drawn from HARD_DISTRACTOR_KINDS (the rest: all kinds)

    def __post_init__(self):
        for name in SHARE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f'SynthConfig.{name} must be a number in [0, 1], got {value!r}')


#: SynthConfig fields a training config may set under `data.synth` (training/config.py checks them)
SHARE_FIELDS = ('photo_p', 'texture_p', 'train_camera_p', 'lookalike_p', 'small_p', 'hard_negative_p')


class Label(NamedTuple):
    class_id: int
    box: Box


def _warp_sprite(rgba: np.ndarray, face_mask: np.ndarray, rng: np.random.Generator, max_yaw_deg: float):
    """View the flat sprite at a random 3-D angle; returns the warped sprite, face mask and face box."""
    h, w = face_mask.shape
    yaw = math.radians(rng.uniform(-1, 1) ** 2 * max_yaw_deg * rng.choice([-1, 1]))
    pitch = math.radians(rng.uniform(-20, 20))
    roll = math.radians(rng.normal(0, 4))
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    R = (np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
         @ np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
         @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]))
    f = max(h, w) * rng.uniform(1.5, 5.0)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    pts = np.c_[src - [w / 2, h / 2], np.zeros(4)] @ R.T
    proj = pts[:, :2] * (f / (f + pts[:, 2:3]))
    proj -= proj.min(axis=0)
    out_w, out_h = int(math.ceil(proj[:, 0].max())) + 2, int(math.ceil(proj[:, 1].max())) + 2
    m = cv2.getPerspectiveTransform(src, np.float32(proj + 1))
    pre = rgba.astype(np.float32)
    pre[..., :3] *= pre[..., 3:4] / 255.0
    pre = cv2.warpPerspective(pre, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    a = pre[..., 3:4]
    rgb = np.where(a > 0.5, pre[..., :3] * 255.0 / np.maximum(a, 1e-6), 0)
    warped = np.dstack([np.clip(rgb, 0, 255), np.clip(a, 0, 255)]).astype(np.uint8)
    fm = cv2.warpPerspective(face_mask, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    # a sign turned away from the light is darker
    shade = 0.55 + 0.45 * abs(cy_) * rng.uniform(0.8, 1.15)
    warped[..., :3] = np.clip(warped[..., :3].astype(np.float32) * shade, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(fm >= 96)
    if len(xs) == 0:
        return None
    return warped, fm, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _face_height(rng: np.random.Generator, cfg: SynthConfig, scale: float) -> int:
    if rng.random() < cfg.small_p:
        lo, hi = 14, 70
    else:
        lo, hi = 70, cfg.max_face_px
    h = math.exp(rng.uniform(math.log(lo), math.log(hi))) * scale
    return int(np.clip(h, cfg.min_face_px, cfg.max_face_px * scale))


def _light(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scene lighting and colour cast: a directional gradient, vignetting, gains, gamma (float RGB 0..255)."""
    h, w = rgb.shape[:2]
    xs = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    ys = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    ang = rng.uniform(0, 2 * math.pi)
    field = 1 + rng.uniform(0, 0.7) * (xs * math.cos(ang) + ys * math.sin(ang))
    if rng.random() < 0.5:
        field = field * (1 - rng.uniform(0.1, 0.5) * (xs ** 2 + ys ** 2) / 0.5)
    field = field * rng.uniform(0.55, 1.3)
    gains = rng.normal(1.0, 0.08, 3)
    if rng.random() < 0.3:  # tungsten or fluorescent cast
        gains *= rng.choice([np.array([1.15, 1.0, 0.75]), np.array([0.9, 1.05, 1.1])])
    img = rgb.astype(np.float32) * field.astype(np.float32)[..., None] * (gains / 255.0).astype(np.float32)
    if rng.random() < 0.4:  # saturation change
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * np.float32(rng.uniform(0.5, 1.4))
    img = cv2.pow(np.clip(img, 0, 1), rng.uniform(0.7, 1.4))
    return img * np.float32(255.0)


def camera_effects(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone's or still camera's optics and sensor: defocus, motion blur, resolution loss, noise,
    sharpening, JPEG (float or uint8 RGB in, uint8 out).

    Mild on purpose: these are the photos people take of the layout, mostly
    sharp. The train's own camera is `train_camera_effects`, at its real
    strength. Neither bounds blur to keep digits legible any more: a sign
    whose "30" or "50" is blurred beyond reading is still a speed limit and
    keeps its label (the detector must still find it; the policy applies the
    lower limit when 30 and 50 cannot be told apart).
    """
    h, w = img.shape[:2]
    for loss in rng.permutation(3)[:int(rng.choice([0, 1, 1, 2]))]:
        if loss == 0:
            k = int(rng.choice([3, 5]))
            img = cv2.GaussianBlur(img, (k, k), 0)
        elif loss == 1:  # the hand moves: mostly horizontal motion blur
            length = int(rng.integers(3, 8))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0
            rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.normal(0, 15), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (length, length))
            img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
        else:
            f = rng.uniform(0.5, 0.85)
            small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = rng.uniform(0, 8) if rng.random() < 0.7 else 0.0
    if sigma > 0:
        noise = rng.normal(0, sigma, img.shape).astype(np.float32)
        if rng.random() < 0.5:  # luminance noise, as most sensors after demosaicing
            noise = np.repeat(noise[..., :1], 3, axis=2)
        img = img + noise
    if rng.random() < 0.2:
        blur = cv2.GaussianBlur(img, (0, 0), 1.5)
        img = img + rng.uniform(0.3, 1.0) * (img - blur)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        ok, enc = cv2.imencode('.jpg', out[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(rng.integers(35, 96))])
        out = np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def motion_kernel(length: float, angle_deg: float, shake: float = 0.0,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """A normalised blur kernel: the path the image moved along during the exposure.

    `length` px along `angle_deg` (0 = to the right, 90 = up, as the image
    shows it); `shake` in [0, 1] bends the path and makes it jitter (a shaking
    camera: curved path, uneven speed), which needs `rng`.
    """
    n = max(8, int(length * 6))
    t = np.linspace(-0.5, 0.5, n)
    a = math.radians(angle_deg)
    d = np.array([math.cos(a), -math.sin(a)])
    pts = t[:, None] * length * d[None, :]
    weights = np.ones(n)
    if shake > 0 and rng is not None:
        normal = np.array([-d[1], d[0]])
        walk = np.cumsum(rng.normal(0, 1, n))
        walk = cv2.GaussianBlur(walk.reshape(1, -1).astype(np.float64), (0, 0), max(1.0, n / 12)).ravel()
        walk -= np.linspace(walk[0], walk[-1], n)  # the path's ends stay on the main direction
        walk *= shake * length * 0.35 / max(np.abs(walk).max(), 1e-6)
        bend = rng.uniform(-1, 1) * shake * length * 0.3 * (1 - (2 * t) ** 2)  # a smooth arc
        pts = pts + (walk + bend)[:, None] * normal[None, :]
        weights = np.exp(cv2.GaussianBlur(rng.normal(0, shake, (1, n)), (0, 0), max(1.0, n / 10)).ravel())
    size = int(math.ceil(np.abs(pts).max() * 2)) + 3
    size += 1 - size % 2
    c = size // 2
    kernel = np.zeros((size, size), np.float64)
    x, y = pts[:, 0] + c, pts[:, 1] + c
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), wgt * weights)
    return (kernel / kernel.sum()).astype(np.float32)


def _kernel_extent(kernel: np.ndarray) -> tuple[int, int]:
    """Width and height of a kernel's support (columns / rows holding a real share of its mass)."""
    cols, rows = kernel.sum(axis=0), kernel.sum(axis=1)
    return int((cols > 0.2 * cols.max()).sum()), int((rows > 0.2 * rows.max()).sum())


def _disc_kernel(radius: float) -> np.ndarray:
    """Defocus: a uniform disc (the lens aperture), anti-aliased."""
    r = int(math.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = np.clip(radius + 0.5 - np.sqrt(xx ** 2 + yy ** 2), 0, 1).astype(np.float32)
    return k / k.sum()


def _grow(box, gw: float, gh: float, w: int, h: int):
    """The box widened to at least gw x gh about its centre, clipped to the image."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max(x2 - x1, gw) / 2, max(y2 - y1, gh) / 2
    return (max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh))


def rolling_shutter(img: np.ndarray, boxes: list, skew: float, wobble: float = 0.0, period: float = 100.0,
                    phase: float = 0.0) -> tuple[np.ndarray, list]:
    """Rows exposed one after the other while the camera turns: row y shows the scene shifted by
    `skew * (y - h/2) + wobble * sin(2 pi y / period + phase)` px to the left; boxes move with it."""
    h, w = img.shape[:2]
    rows = np.arange(h, dtype=np.float32)
    shift = (skew * (rows - h / 2) + wobble * np.sin(rows / period * 2 * math.pi + phase)).astype(np.float32)
    map_x = np.arange(w, dtype=np.float32)[None, :] + shift[:, None]
    map_y = np.broadcast_to(rows[:, None], (h, w)).astype(np.float32)
    out = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    moved = []
    for x1, y1, x2, y2 in boxes:  # the content at source column x shows at x - shift(row)
        s = shift[int(max(y1, 0)):max(int(math.ceil(min(y2, h))), int(max(y1, 0)) + 1)]
        moved.append((max(0.0, x1 - float(s.max())), y1, min(float(w), x2 - float(s.min())), y2))
    return out, moved


def blur_boxes(boxes: list, kernel: np.ndarray, w: int, h: int) -> list:
    """Boxes grown to the half-maximum extent of their blurred content: along each axis at least the
    kernel's support (a face W px wide blurred over L px spreads to W + L, half of it above half-max: max(W, L))."""
    kw, kh = _kernel_extent(kernel)
    return [_grow(b, kw, kh, w, h) for b in boxes]


#: white-balance errors of a cheap camera: warm (tungsten), cool (shade, LEDs), green (fluorescent), magenta
_WB_CASTS = (np.array([1.3, 1.0, 0.65]), np.array([0.8, 0.97, 1.3]), np.array([0.88, 1.12, 0.88]),
             np.array([1.12, 0.88, 1.1]))


def train_camera_effects(img: np.ndarray, rng: np.random.Generator,
                         labels: list[Label] = ()) -> tuple[np.ndarray, list[Label]]:
    """The train's camera at its real strength; returns the uint8 image and the labels moved with it.

    Real frames from the moving train: motion blur of 15-25 px (the train
    moves and the camera shakes: any direction, often curved), defocus, dim
    indoor light with noise, colour casts, blown-out windows, low contrast.
    Signs keep their class however blurred (a speed limit whose digits cannot
    be read is still a speed limit: the policy applies the lower limit). Each
    label box grows to the half-maximum extent of its blurred face (at least
    the kernel's support along each axis) and follows the rolling-shutter skew.
    """
    h, w = img.shape[:2]
    img = img.astype(np.float32, copy=True)
    boxes = [lb.box for lb in labels]
    if rng.random() < 0.4:  # haze, veiling glare: low contrast
        a = np.float32(rng.uniform(0.1, 0.45))
        air = np.clip(img.mean(axis=(0, 1)) * rng.uniform(0.8, 1.3), 0, 255).astype(np.float32)
        img = img * (1 - a) + air * a
    expo = math.exp(rng.normal(0, 0.25)) * (rng.uniform(1.2, 1.7) if rng.random() < 0.2 else 1.0)
    img *= np.float32(expo)
    if rng.random() < 0.5:  # bloom: light spilling around what is bright (windows, lamps, white signs)
        small = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        bright = np.maximum(small - np.float32(rng.uniform(180, 240)), 0)
        bright = cv2.GaussianBlur(bright, (0, 0), rng.uniform(2, 8))
        img += cv2.resize(bright, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(rng.uniform(0.3, 1.5))
    if rng.random() < 0.35:
        img = cv2.filter2D(img, -1, _disc_kernel(rng.uniform(0.8, 3.5)), borderType=cv2.BORDER_REFLECT)
    if rng.random() < 0.85:  # the exposure integrates the camera's motion
        length = math.exp(rng.uniform(math.log(4.0), math.log(25.0)))
        pick = rng.random()
        angle = rng.normal(0, 12) if pick < 0.55 else (rng.normal(90, 15) if pick < 0.7 else rng.uniform(0, 180))
        shake = rng.uniform(0.3, 1.0) if rng.random() < 0.4 else 0.0
        kernel = motion_kernel(length, angle, shake, rng)
        img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
        boxes = blur_boxes(boxes, kernel, w, h)
    if rng.random() < 0.5:  # rolling shutter: rows read one after the other while the camera turns / vibrates
        skew = float(np.clip(rng.normal(0, 0.025), -0.06, 0.06))
        wobble = rng.uniform(0, 3) if rng.random() < 0.3 else 0.0
        img, boxes = rolling_shutter(img, boxes, skew, wobble, rng.uniform(30, 200), rng.uniform(0, 2 * math.pi))
    np.clip(img, 0, 255, out=img)
    if rng.random() < 0.5:  # low light: few photons per pixel, shot noise + read noise, then the gain
        full = math.exp(rng.uniform(math.log(120), math.log(4000)))   # electrons at full scale
        read = rng.uniform(1, 6)
        sig = img * np.float32(full / 255.0)
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        if rng.random() < 0.5:  # demosaicing correlates neighbours: blotchy chroma noise
            noise = cv2.GaussianBlur(noise, (0, 0), 0.8) * np.float32(1.6)
        sig = sig + np.sqrt(sig) * noise + np.float32(read) * rng.standard_normal((h, w, 1), dtype=np.float32)
        img = sig * np.float32(255.0 / full * rng.uniform(0.6, 1.1)) + np.float32(rng.uniform(0, 12))
    else:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.5, 3))
    if rng.random() < 0.6:  # white balance off
        gains = _WB_CASTS[int(rng.integers(len(_WB_CASTS)))] ** rng.uniform(0.3, 1.0) * rng.normal(1, 0.04, 3)
        img = img * gains.astype(np.float32)
    if rng.random() < 0.5:  # a cheap sensor's washed-out colours
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * np.float32(rng.uniform(0.4, 0.9))
    out = np.clip(img, 0, 255).astype(np.uint8)  # the sensor clips: blown highlights
    if rng.random() < 0.5:
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(out, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.9:
        ok, enc = cv2.imencode('.jpg', out[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(rng.integers(25, 76))])
        out = np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1])
    return out, [Label(lb.class_id, b) for lb, b in zip(labels, boxes)]


def _overlap(box, other) -> float:
    """Share of `other`'s area covered by `box`."""
    ix = max(0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0, min(box[3], other[3]) - max(box[1], other[1]))
    area = max(1, (other[2] - other[0]) * (other[3] - other[1]))
    return ix * iy / area


LOOKALIKE_KINDS = ('digits', 'white_disc', 'red_ring', 'blob', 'yellow_triangle')
_NUMBERS = ('3', '5', '10', '20', '40', '60', '70', '80', '90', '35', '53', '05', '300', '500', '15', '25', '38', '58',
            '12')
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_PLAIN)
_REDS = ((201, 26, 9), (180, 20, 20), (220, 40, 30), (160, 30, 40))
_YELLOWS = ((242, 205, 55), (255, 220, 40), (250, 190, 20), (230, 200, 90), (255, 170, 30))


def _lookalike_sprite(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA sprite (and its alpha) of a thing that looks like part of a sign and is none; drawn 4x, shrunk."""
    S = 4
    size = max(6, int(size))
    if kind == 'digits':
        text = ('30', '50')[int(rng.integers(2))] if rng.random() < 0.4 else _NUMBERS[int(rng.integers(len(_NUMBERS)))]
        font, thick = _FONTS[int(rng.integers(len(_FONTS)))], int(rng.integers(1, 4)) * S
        (tw, th), base = cv2.getTextSize(text, font, 1.0, thick)
        scale = size * S * 0.7 / th
        tw, th = int(tw * scale), int(th * scale)
        pad = int(size * S * rng.uniform(0.1, 0.35))
        H, W = th + 2 * pad + int(base * scale), tw + 2 * pad
        rgb = np.zeros((H, W, 3), np.uint8)
        alpha = np.zeros((H, W), np.uint8)
        ink = ((25, 25, 28), (60, 60, 60), (201, 26, 9), (0, 85, 191), (240, 240, 240))[int(rng.choice(5, p=[0.45, 0.15,
                                                                                                       0.2, 0.1, 0.1]))]
        if rng.random() < 0.65:  # printed on a plate, a box label or a tile
            plate = tuple(int(v) for v in np.clip(rng.normal(rng.choice([235, 200, 120, 60]), 20, 3), 0, 255))
            if abs(np.mean(plate) - np.mean(ink)) < 60:
                ink = (25, 25, 28) if np.mean(plate) > 128 else (240, 240, 240)
            rgb[:] = plate
            alpha[:] = 255
        cv2.putText(rgb, text, (pad, pad + th), font, scale, ink, thick, cv2.LINE_AA)
        if alpha.max() == 0:
            cv2.putText(alpha, text, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
    else:
        H = W = size * S
        rgb = np.zeros((H, W, 3), np.uint8)
        alpha = np.zeros((H, W), np.uint8)
        c, r = (W // 2, H // 2), int(W * 0.47)
        if kind == 'white_disc':
            col = tuple(int(v) for v in np.clip(rng.normal(238, 10, 3), 190, 255))
            cv2.circle(rgb, c, r, col, -1, cv2.LINE_AA)
            cv2.circle(alpha, c, r, 255, -1, cv2.LINE_AA)
            if rng.random() < 0.5:
                cv2.circle(rgb, c, r, tuple(int(v * rng.uniform(0.3, 0.8)) for v in col), max(S, int(r * 0.06)),
                           cv2.LINE_AA)
        elif kind == 'red_ring':
            red = tuple(int(v) for v in np.clip(np.asarray(_REDS[int(rng.integers(len(_REDS)))]) +
                                                rng.normal(0, 10, 3), 0, 255))
            width = int(r * rng.uniform(0.1, 0.3))
            inside = rng.random()
            if inside < 0.5:
                cv2.circle(rgb, c, r, tuple(int(v) for v in np.clip(rng.normal(235, 12, 3), 0, 255)), -1, cv2.LINE_AA)
                cv2.circle(alpha, c, r, 255, -1, cv2.LINE_AA)
            elif inside < 0.7:
                fill = tuple(int(v) for v in rng.uniform(0, 255, 3))
                cv2.circle(rgb, c, r, fill, -1, cv2.LINE_AA)
                cv2.circle(alpha, c, r, 255, -1, cv2.LINE_AA)
            cv2.circle(rgb, c, r - width // 2, red, width, cv2.LINE_AA)
            cv2.circle(alpha, c, r - width // 2, 255, width, cv2.LINE_AA)
        elif kind == 'blob':
            pal = _REDS if rng.random() < 0.5 else _YELLOWS
            col = np.clip(np.asarray(pal[int(rng.integers(len(pal)))], np.float32) * rng.uniform(0.75, 1.1), 0, 255)
            if rng.random() < 0.5:
                axes, ang = (r, max(S, int(r * rng.uniform(0.4, 1.0)))), rng.uniform(0, 180)
                cv2.ellipse(rgb, c, axes, ang, 0, 360, tuple(float(v) for v in col), -1, cv2.LINE_AA)
                cv2.ellipse(alpha, c, axes, ang, 0, 360, 255, -1, cv2.LINE_AA)
                cv2.ellipse(rgb, (c[0] - r // 3, c[1] - axes[1] // 3), (max(1, r // 4), max(1, axes[1] // 5)), ang,
                            0, 360, tuple(float(v) for v in np.minimum(col * 1.25, 255)), -1, cv2.LINE_AA)
            else:  # a brick
                bh = int(H * rng.uniform(0.35, 0.7))
                draw_brick(rgb, 2, H - bh - 2, W - 4, bh * 0.75, col, rng)
                alpha = np.where(rgb.any(axis=2), 255, 0).astype(np.uint8)
        else:  # yellow_triangle without a border, never upright (the danger sign is)
            col = np.clip(np.asarray(_YELLOWS[int(rng.integers(len(_YELLOWS)))], np.float32) + rng.normal(0, 8, 3),
                          0, 255)
            rot = rng.uniform(25, 95)  # a triangle repeats every 120 deg: 0 (and 120, 240) is upright
            pts = np.array([[math.sin(math.radians(rot + k * 120)), -math.cos(math.radians(rot + k * 120))]
                            for k in range(3)]) * r + np.array(c)
            cv2.fillPoly(rgb, [pts.astype(np.int32)], tuple(float(v) for v in col), cv2.LINE_AA)
            cv2.fillPoly(alpha, [pts.astype(np.int32)], 255, cv2.LINE_AA)
    out_w, out_h = max(2, W // S), max(2, H // S)
    rgb = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return np.dstack([rgb, alpha]), alpha


def _draw_lookalikes(rgb: np.ndarray, rng: np.random.Generator, cfg: SynthConfig, scale: float, ground_y: int,
                     placed: list) -> None:
    """Look-alikes (never labelled), most of them next to the signs that were placed, in place."""
    height, width = rgb.shape[:2]
    faces = [p[1] for p in placed if p[0] in KIND_CLASS]
    for _ in range(int(rng.integers(1, cfg.max_lookalikes + 1))):
        kind = LOOKALIKE_KINDS[int(rng.integers(len(LOOKALIKE_KINDS)))]
        near = placed[int(rng.integers(len(placed)))][1] if placed and rng.random() < 0.6 else None
        size = (near[3] - near[1]) * rng.uniform(0.6, 1.4) if near else _face_height(rng, cfg, scale)
        rgba, alpha = _lookalike_sprite(kind, size, rng)
        warped = _warp_sprite(rgba, alpha, rng, cfg.max_yaw_deg)
        if warped is None:
            continue
        sprite = warped[0]
        sh, sw = sprite.shape[:2]
        for _ in range(6):
            if near:
                fw = near[2] - near[0]
                x = int((near[0] + near[2]) / 2 + rng.choice([-1, 1]) * rng.uniform(1.0, 4.0) * max(fw, sw) - sw / 2)
                y = int(near[3] - sh + rng.normal(0, 0.5) * (near[3] - near[1]))
            else:
                x = int(rng.uniform(-0.2 * sw, width - 0.8 * sw))
                y = int(rng.uniform(min(ground_y * 0.3, height - sh * 0.5), height - sh * 0.5))
            box = (x, y, x + sw, y + sh)
            if all(_overlap(box, f) < 0.05 and _overlap(f, box) < 0.05 for f in faces):
                paste_rgba(rgb, sprite, x, y)
                break


def _render(seed: int, split: str, index: int, cfg: SynthConfig, clean: bool = False):
    """generate_image's work; with `clean`, also the same image without the signs (same background,
    look-alikes, light and camera, rng restored), so tests can see which pixels the signs made."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    photos = require_photos() if cfg.photo_p > 0 else ()
    width, height = cfg.width, cfg.height
    if rng.random() < cfg.portrait_p:
        width, height = height, width
    scale = height / 480.0 if width > height else width / 640.0
    rgb, ground_y, _ = scene_background(rng, width, height, cfg.photo_p, cfg.texture_p, photos)
    if rng.random() < 0.25:  # shallow depth of field: background out of focus
        k = int(rng.choice([3, 5, 9]))
        rgb = cv2.GaussianBlur(rgb, (k, k), 0)

    n_class = 0 if rng.random() < cfg.empty_p else int(rng.integers(1, cfg.max_signs + 1))
    n_distr = int(rng.integers(0, cfg.max_distractors + 1)) if rng.random() < 0.6 else 0
    kinds = []
    for _ in range(n_class):
        cls = int(rng.integers(len(CLASS_NAMES)))
        options = [k for k in CLASS_KINDS if KIND_CLASS[k] == cls]
        kinds.append(options[int(rng.integers(len(options)))])
    for _ in range(n_distr):
        pool = HARD_DISTRACTOR_KINDS if cfg.hard_negative_p and rng.random() < cfg.hard_negative_p else DISTRACTOR_KINDS
        kinds.append(pool[int(rng.integers(len(pool)))])
    rng.shuffle(kinds)

    placed: list[tuple[str, tuple[int, int, int, int], int]] = []  # kind, face box, sprite bottom
    sprites = []
    for kind_name in kinds:
        face_h = _face_height(rng, cfg, scale)
        layers = render_sign_layers(kind_name, face_h, rng, pole=rng.random() < 0.92)
        warped = _warp_sprite(layers.rgba, layers.face_mask, rng, cfg.max_yaw_deg)
        if warped is None:
            continue
        sprite, fmask, fbox = warped
        sh, sw = sprite.shape[:2]
        for _ in range(12):
            x = int(rng.uniform(-0.2 * sw, width - 0.8 * sw))
            lo = max(ground_y - sh * 0.9, -fbox[1] - 0.2 * (fbox[3] - fbox[1]))
            hi = height - sh * 0.6
            if hi <= lo:
                y = int(lo)
            else:
                y = int(rng.uniform(lo, hi))
            box = (fbox[0] + x, fbox[1] + y, fbox[2] + x, fbox[3] + y)
            clipped = (max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height))
            area = (box[2] - box[0]) * (box[3] - box[1])
            vis = max(0, clipped[2] - clipped[0]) * max(0, clipped[3] - clipped[1]) / max(area, 1)
            sbox = (x, y, x + sw, y + sh)
            if vis >= 0.65 and all(_overlap(sbox, p[1]) < 0.2 and _overlap(box, p[1]) < 0.2 for p in placed):
                placed.append((kind_name, box, y + sh))
                sprites.append((sprite, x, y, box, clipped))
                break
    if rng.random() < cfg.lookalike_p:
        _draw_lookalikes(rgb, rng, cfg, scale, ground_y, placed)
    without_signs = rgb.copy() if clean else None
    # paint far (higher bottom edge) first, so nearer signs cover farther ones
    order = sorted(range(len(sprites)), key=lambda i: placed[i][2])
    labels: list[Label] = []
    for i in order:
        sprite, x, y, box, clipped = sprites[i]
        sh, sw = sprite.shape[:2]
        if rng.random() < 0.6:  # contact shadow under the base plate
            cv2.ellipse(rgb, (x + sw // 2, y + sh - 1), (max(1, int(sw * 0.6)), max(1, int(sh * 0.03) + 1)), 0, 0,
                        360, tuple(int(v) for v in rgb[min(max(y + sh - 1, 0), height - 1),
                                                          min(max(x + sw // 2, 0), width - 1)] * 0.5), -1,
                        cv2.LINE_AA)
        paste_rgba(rgb, sprite, x, y)
        cls = KIND_CLASS.get(placed[i][0])
        if rng.random() < cfg.occlusion_p:  # a brick in front covers part of the face
            fw, fh = box[2] - box[0], box[3] - box[1]
            ow, oh = fw * rng.uniform(0.3, 1.0), fh * rng.uniform(0.1, 0.25)
            ox = box[0] + rng.uniform(-0.5, 0.8) * fw
            draw_brick(rgb, ox, box[3] - oh * rng.uniform(0.2, 1.0), ow, oh,
                       BRICK_COLORS[int(rng.integers(len(BRICK_COLORS)))], rng)
        if cls is not None and clipped[3] - clipped[1] >= cfg.min_face_px * 0.6:
            labels.append(Label(cls, tuple(float(v) for v in clipped)))
    state = rng.bit_generator.state
    out, labels = _finish(rgb, rng, labels, cfg, width > height)
    if not clean:
        return out, labels, None
    rng.bit_generator.state = state
    return out, labels, _finish(without_signs, rng, [], cfg, width > height)[0]


def _finish(rgb, rng, labels, cfg, landscape):
    """Light, then the train camera (`train_camera_p` of the landscape images) or a phone's camera."""
    img = _light(rgb, rng)
    if landscape and rng.random() < cfg.train_camera_p:
        return train_camera_effects(img, rng, labels)
    return camera_effects(img, rng), labels


def generate_image(seed: int, split: str, index: int, cfg: SynthConfig = SynthConfig()
                   ) -> tuple[np.ndarray, list[Label]]:
    """One RGB image and its labels (pixel boxes of the sign faces)."""
    img, labels, _ = _render(seed, split, index, cfg)
    return img, labels


def _write_one(args) -> tuple[str, int]:
    root, seed, split, index, cfg = args
    rgb, labels = generate_image(seed, split, index, cfg)
    name = f'{split}_{index:06d}'
    image_path = root / 'images' / split / f'{name}.jpg'
    cv2.imwrite(str(image_path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                [int(cv2.IMWRITE_JPEG_QUALITY), cfg.jpeg_quality])
    h, w = rgb.shape[:2]
    write_labels(root / 'labels' / split / f'{name}.txt', [(lb.class_id, lb.box) for lb in labels], w, h)
    return name, len(labels)


def map_jobs(fn, jobs: list, workers: int, chunksize: int) -> list:
    """`fn` over `jobs` in order: in this process, or in `workers` forked processes."""
    if workers <= 1:
        return [fn(job) for job in jobs]
    with multiprocessing.get_context('fork').Pool(workers) as pool:
        return pool.map(fn, jobs, chunksize=chunksize)


def generate_dataset(root: str | pathlib.Path, counts: dict[str, int], seed: int = 0,
                     cfg: SynthConfig = SynthConfig(), workers: int = 1) -> dict[str, int]:
    """Write images/{split}/*.jpg, labels/{split}/*.txt and data.yaml under root; returns labels per split.

    NoPhotosError before anything is written when cfg asks for photos and no photo package is installed."""
    root = pathlib.Path(root)
    photos = require_photos() if cfg.photo_p > 0 else ()
    jobs = []
    for split in SPLITS:
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'labels' / split).mkdir(parents=True, exist_ok=True)
        jobs += [(root, seed, split, i, cfg) for i in range(int(counts.get(split, 0)))]
    results = map_jobs(_write_one, jobs, workers, chunksize=8)
    per_split = {split: 0 for split in SPLITS}
    for (name, n) in results:
        per_split[name.split('_')[0]] += n
    write_data_yaml(root, CLASS_NAMES, extra={'synth': {
        'seed': seed, 'counts': dict(counts), **asdict(cfg),
        'photos': sorted({f'{p.package}: {p.path.name}' for p in photos})}})
    return per_split


def preview_grid(root: str | pathlib.Path, out_png: str | pathlib.Path, split: str = 'train', n: int = 16,
                 tile_w: int = 400) -> pathlib.Path:
    """A grid PNG of the first `n` images of a split with their labelled boxes drawn."""
    from training.dataset import read_labels  # noqa: PLC0415 (keeps the module import light)
    root = pathlib.Path(root)
    images = sorted((root / 'images' / split).glob('*.*'))[:n]
    cols = int(math.ceil(math.sqrt(max(len(images), 1))))
    tiles = []
    colors = ((255, 60, 60), (255, 160, 0), (60, 60, 255), (0, 220, 220))
    for path in images:
        bgr = cv2.imread(str(path))
        h, w = bgr.shape[:2]
        for cls, (x1, y1, x2, y2) in read_labels(root / 'labels' / split / (path.stem + '.txt'), w, h):
            cv2.rectangle(bgr, (int(x1), int(y1)), (int(x2), int(y2)), colors[cls % 4], 2)
            cv2.putText(bgr, CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else str(cls), (int(x1), max(10, int(y1) - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, colors[cls % 4], 1, cv2.LINE_AA)
        tile = np.full((int(tile_w * 0.75), tile_w, 3), 40, np.uint8)
        s = min(tile.shape[1] / w, tile.shape[0] / h)
        small = cv2.resize(bgr, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        tile[:small.shape[0], :small.shape[1]] = small
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 40))
    rows = [np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)]
    out_png = pathlib.Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), np.vstack(rows))
    return out_png
