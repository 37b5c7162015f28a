"""Synthetic LEGO sign scenes -> a YOLO dataset (numpy + OpenCV only: runs in the runtime venv too).

Each image is a procedural scene (train_fou.render.scene) with signs from
train_fou.render.signs standing in it, under domain randomisation:

- sign face height from far (12 px) to near (260 px) at 640x480, most of them
  in the 14..70 px band a sign has at reaction distance on the train camera;
- the sign seen at an angle (yaw up to ~65 deg, pitch, roll) through a
  pinhole homography, its own shading, contact shadow, partial occlusion by
  bricks, truncation at the image border;
- several signs per image, distractor signs that are not classes, images
  with no class sign at all;
- camera effects: light gradient, vignetting, colour cast, gamma, defocus and
  motion blur, low-resolution resampling, sensor noise, sharpening, JPEG.

Image `i` of a split is drawn from `np.random.default_rng([seed, split_id, i])`,
so a dataset is deterministic for a seed and any image can be regenerated alone.
"""
from __future__ import annotations

import math
import multiprocessing
import pathlib
from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np

from train_fou.render.scene import BACKGROUND_KINDS, BRICK_COLORS, background, draw_brick, paste_rgba
from train_fou.render.signs import CLASS_KINDS, CLASS_NAMES, DISTRACTOR_KINDS, KIND_CLASS, render_sign_layers
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
    """Scene lighting and colour cast: a directional gradient, vignetting, gains, gamma."""
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    grad = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang))
    img *= (1 + rng.uniform(0, 0.7) * grad)[..., None]
    if rng.random() < 0.5:
        r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
        img *= (1 - rng.uniform(0.1, 0.5) * r2)[..., None]
    img *= rng.uniform(0.55, 1.3)
    gains = rng.normal(1.0, 0.08, 3)
    if rng.random() < 0.3:  # tungsten or fluorescent cast
        gains *= rng.choice([np.array([1.15, 1.0, 0.75]), np.array([0.9, 1.05, 1.1])])
    img *= gains[None, None, :]
    if rng.random() < 0.4:  # saturation change
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * rng.uniform(0.5, 1.4)
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)
    return img * 255.0


def camera_effects(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics and sensor: defocus, motion blur, resolution loss, noise, sharpening, JPEG.

    At most two of the three resolution losses, each mild: stacked, they would
    leave a 20 px "30" unreadable while its label still says 30 (label noise
    that teaches guessing). Severity is bounded so a sign at reaction distance
    stays legible, as it is to the real camera when the train gets there.
    """
    h, w = img.shape[:2]
    for loss in rng.permutation(3)[:int(rng.choice([0, 1, 1, 2]))]:
        if loss == 0:
            k = int(rng.choice([3, 5]))
            img = cv2.GaussianBlur(img, (k, k), 0)
        elif loss == 1:  # the train moves: mostly horizontal motion blur
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


def _overlap(box, other) -> float:
    """Share of `other`'s area covered by `box`."""
    ix = max(0, min(box[2], other[2]) - max(box[0], other[0]))
    iy = max(0, min(box[3], other[3]) - max(box[1], other[1]))
    area = max(1, (other[2] - other[0]) * (other[3] - other[1]))
    return ix * iy / area


def generate_image(seed: int, split: str, index: int, cfg: SynthConfig = SynthConfig()
                   ) -> tuple[np.ndarray, list[Label]]:
    """One RGB image and its labels (pixel boxes of the sign faces)."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    width, height = cfg.width, cfg.height
    if rng.random() < cfg.portrait_p:
        width, height = height, width
    scale = height / 480.0 if width > height else width / 640.0
    kind = BACKGROUND_KINDS[int(rng.choice(len(BACKGROUND_KINDS), p=[0.2, 0.14, 0.16, 0.24, 0.1, 0.1, 0.06]))]
    rgb, ground_y = background(kind, width, height, rng)
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
    kinds += [DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))] for _ in range(n_distr)]
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
    img = _light(rgb, rng)
    return camera_effects(img, rng), labels


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
    """Write images/{split}/*.jpg, labels/{split}/*.txt and data.yaml under root; returns labels per split."""
    root = pathlib.Path(root)
    jobs = []
    for split in SPLITS:
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'labels' / split).mkdir(parents=True, exist_ok=True)
        jobs += [(root, seed, split, i, cfg) for i in range(int(counts.get(split, 0)))]
    results = map_jobs(_write_one, jobs, workers, chunksize=8)
    per_split = {split: 0 for split in SPLITS}
    for (name, n) in results:
        per_split[name.split('_')[0]] += n
    write_data_yaml(root, CLASS_NAMES, extra={'synth': {'seed': seed, 'counts': dict(counts), **asdict(cfg)}})
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
