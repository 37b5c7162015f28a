"""The train's camera: a pinhole model over a straight track on a table.

The camera sits at the front of the train, `height_m` above the rails, looking
down the track, pitched down by `pitch_deg`. Because the table is flat and the
track straight, the along-track distance of a floor pixel depends only on its
row: the floor, rails, sleepers and the cliff edge are drawn from per-row and
per-pixel tables computed once per run, and each frame only shifts the
sleepers and moves the edge. Signs are sprites from the training data's
renderer (`train_fou.render.signs.render_sign`, pole and base plate
included), scaled to the face height the pinhole model gives (focal length ×
face height / depth), so they grow as they approach; each sign is drawn once
with its own appearance seed, so only its size changes from frame to frame.

Image convention: H×W×3 uint8, BGR (ROS `bgr8`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple
from collections.abc import Callable

import cv2
import numpy as np

from train_fou.sim.track import Sign, Track

#: (kind, face height px, rng) -> (RGBA uint8 H×W×4 with pole and base,
#: face box (x1, y1, x2, y2) in sprite pixels): `train_fou.render.signs.render_sign`.
SpriteFn = Callable[[str, int, np.random.Generator], tuple[np.ndarray, tuple[int, int, int, int]]]

#: Faces smaller than this are not drawn; larger ones only occur when the sign
#: is about to leave the image.
MIN_FACE_PX = 3
MAX_FACE_PX = 600
#: Each sign is drawn once with a face this tall and shrunk per frame (area
#: interpolation of premultiplied alpha, as the renderer itself shrinks its
#: supersampled drawing), so a frame costs one resize per sign.
REFERENCE_FACE_PX = 160


@dataclass(frozen=True)
class CameraParams:
    width: int = 640
    height: int = 480
    hfov_deg: float = 62.0
    height_m: float = 0.09      #: optical centre above the rails
    pitch_deg: float = 3.0      #: downwards
    max_range_m: float = 12.0   #: signs further away are not drawn
    near_m: float = 0.05        #: signs closer than this (or behind) are not drawn

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.width - 1) / 2.0, (self.height - 1) / 2.0


class Projection(NamedTuple):
    u: float
    v: float
    depth_m: float  #: distance along the optical axis


def project(cam: CameraParams, forward_m: float, right_m: float, up_m: float) -> Projection | None:
    """Pixel of a point `forward_m` ahead, `right_m` right and `up_m` above the rails."""
    theta = math.radians(cam.pitch_deg)
    h = up_m - cam.height_m
    z = forward_m * math.cos(theta) - h * math.sin(theta)
    if z <= 1e-6:
        return None
    y = -forward_m * math.sin(theta) - h * math.cos(theta)
    f = cam.focal_px
    cx, cy = cam.centre
    return Projection(cx + f * right_m / z, cy + f * y / z, z)


class GroundTruth(NamedTuple):
    """Where a sign's face is in a rendered frame (pixels, clipped to the image)."""
    kind: str
    at_m: float
    distance_m: float
    box: tuple[float, float, float, float]  #: x_min, y_min, width, height
    visible_fraction: float


@dataclass(frozen=True)
class Look:
    """Per-run appearance: lighting and background (sampled by the scenario)."""
    brightness: float = 1.0
    contrast: float = 1.0
    tint_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_std: float = 3.0
    table_bgr: tuple[float, float, float] = (70.0, 110.0, 150.0)
    void_bgr: tuple[float, float, float] = (25.0, 25.0, 30.0)
    #: what is seen beyond the table: a train_fou.render.scene background kind
    backdrop: str = 'room'
    seed: int = 0


def default_sprite_fn() -> SpriteFn:
    from train_fou.render.signs import render_sign
    return render_sign


class CameraRenderer:
    """Renders frames of one run: fixed track, camera and look; the train's position varies."""

    def __init__(self, cam: CameraParams, track: Track, look: Look,
                 sprite_fn: SpriteFn | None = None) -> None:
        self.cam = cam
        self.track = track
        self.look = look
        self._sprite_fn = sprite_fn or default_sprite_fn()
        self._sprites: dict[int, tuple[np.ndarray, tuple[float, float, float, float]]] = {}
        rng = np.random.default_rng(look.seed)
        self._build_tables()
        self._background = self._build_background(rng)
        self._noise = [rng.normal(0.0, look.noise_std, (cam.height, cam.width, 1)).astype(np.float32)
                       for _ in range(4)]
        self._gain = (np.asarray(look.tint_bgr, np.float32) * look.brightness).reshape(1, 1, 3)

    # --- per-run tables -------------------------------------------------------------------
    def _build_tables(self) -> None:
        cam = self.cam
        f = cam.focal_px
        cx, cy = cam.centre
        theta = math.radians(cam.pitch_deg)
        rows = (np.arange(cam.height, dtype=np.float64) - cy) / f
        denom = math.sin(theta) + rows * math.cos(theta)
        ground = denom > 1e-4
        t = np.where(ground, cam.height_m / np.where(ground, denom, 1.0), np.inf)
        #: along-track distance of each image row on the table (inf above the horizon)
        self.row_distance_m = np.where(ground, t * (math.cos(theta) - rows * math.sin(theta)), np.inf)
        self.row_is_ground = ground
        cols = (np.arange(cam.width, dtype=np.float64) - cx) / f
        #: lateral offset of each floor pixel (rows above the horizon: inf)
        self.lateral_m = np.where(ground[:, None], t[:, None] * cols[None, :], np.inf)

    def _build_background(self, rng: np.random.Generator) -> np.ndarray:
        cam, look, track = self.cam, self.look, self.track
        h, w = cam.height, cam.width
        img = np.empty((h, w, 3), np.float32)
        # Beyond the table: the room, from the training data's background generator.
        horizon = int(np.argmax(self.row_is_ground)) if self.row_is_ground.any() else h
        if horizon > 0:
            from train_fou.render.scene import background
            room, _ground_y = background(look.backdrop, w, horizon, rng)
            img[:horizon] = room[:, :, ::-1].astype(np.float32)
        # The table: planks along the track, with per-plank tone and fine grain.
        ground = self.row_is_ground
        lat = np.where(np.isfinite(self.lateral_m), self.lateral_m, 0.0)
        plank = np.floor(lat / 0.09).astype(np.int64)
        tones = rng.uniform(0.8, 1.15, 64).astype(np.float32)
        grain = 1.0 + 0.05 * np.sin(lat * 900.0).astype(np.float32)
        table = (np.asarray(look.table_bgr, np.float32)[None, None, :]
                 * (tones[plank % 64] * grain)[:, :, None])
        img[ground] = table[ground]
        # Track bed (dark grey) and the two rails (light grey); sleepers are drawn per frame.
        lat_abs = np.abs(self.lateral_m)
        half = track.gauge_m / 2.0
        self._bed = ground[:, None] & (lat_abs < half + 0.012)
        self._sleeper_cols = ground[:, None] & (lat_abs < half + 0.016)
        self._rails = ground[:, None] & (np.abs(lat_abs - half) < 0.0025)
        img[self._bed] = (60.0, 60.0, 64.0)
        img[self._rails] = (170.0, 170.0, 175.0)
        return img

    def _reference(self, sign: Sign):
        """The sign drawn once, large (premultiplied float RGBA), and its face box."""
        cached = self._sprites.get(sign.appearance_seed)
        if cached is None:
            # The same seed every time: a sign keeps its look while it grows.
            rgba, box = self._sprite_fn(sign.kind, REFERENCE_FACE_PX, np.random.default_rng(sign.appearance_seed))
            pre = rgba.astype(np.float32)
            pre[:, :, :3] *= pre[:, :, 3:4] / 255.0
            cached = (pre, tuple(float(v) for v in box))
            self._sprites[sign.appearance_seed] = cached
        return cached

    def _geometry(self, sign: Sign, face_px: int):
        """(scale, sprite width, sprite height, face box in sprite pixels) at a face height of face_px."""
        pre, (x1, y1, x2, y2) = self._reference(sign)
        scale = face_px / (y2 - y1)
        sw, sh = max(1, round(pre.shape[1] * scale)), max(1, round(pre.shape[0] * scale))
        return scale, sw, sh, (x1 * scale, y1 * scale, x2 * scale, y2 * scale)

    # --- per frame ------------------------------------------------------------------------
    def render(self, position_m: float, frame_index: int = 0) -> tuple[np.ndarray, list[GroundTruth]]:
        """The camera image with the train's front at `position_m`, and where each sign is."""
        img = self._background.copy()
        along = position_m + self.row_distance_m  # inf above the horizon
        # Sleepers scroll with the train.
        phase = np.mod(np.where(self.row_is_ground, along, 0.0), self.track.sleeper_spacing_m)
        sleeper_rows = (phase < 0.016) & self.row_is_ground
        sleeper = self._sleeper_cols & sleeper_rows[:, None] & ~self._rails
        img[sleeper] = (40.0, 45.0, 55.0)
        # Beyond the edge of the table: the dark room far below, and a bright edge.
        past = (along > self.track.cliff_at_m) & self.row_is_ground
        if past.any():
            img[past] = np.asarray(self.look.void_bgr, np.float32)
            edge = np.flatnonzero(past)[-1]
            img[max(0, edge - 1):edge + 1] = (210.0, 215.0, 220.0)
        truths = [self._draw_sign(img, sign, sign.at_m - position_m)
                  for sign in self.track.ahead(position_m, self.cam.max_range_m)]
        img = (img - 128.0) * self.look.contrast + 128.0
        img *= self._gain
        img += self._noise[frame_index % len(self._noise)]
        out = np.clip(img, 0, 255).astype(np.uint8)
        return out, [t for t in truths if t is not None]

    def truths(self, position_m: float) -> list[GroundTruth]:
        """Where the signs would be in the frame at `position_m`, without drawing it."""
        truths = [self._draw_sign(None, sign, sign.at_m - position_m)
                  for sign in self.track.ahead(position_m, self.cam.max_range_m)]
        return [t for t in truths if t is not None]

    def _draw_sign(self, img: np.ndarray | None, sign: Sign, forward_m: float) -> GroundTruth | None:
        """Draw a sign standing on the table: its sprite's base on the floor, face on top."""
        cam = self.cam
        if forward_m < cam.near_m:
            return None
        foot = project(cam, forward_m, sign.lateral_m, 0.0)
        if foot is None:
            return None
        face_px = int(round(cam.focal_px * sign.face_height_m / foot.depth_m))
        if face_px < MIN_FACE_PX or face_px > MAX_FACE_PX:
            return None
        scale, sw, sh, (x1, y1, x2, y2) = self._geometry(sign, face_px)
        x0 = int(round(foot.u - (x1 + x2) / 2.0))
        y0 = int(round(foot.v)) - sh
        if img is not None:
            pre = self._reference(sign)[0]
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            self._blend(img, cv2.resize(pre, (sw, sh), interpolation=interp), x0, y0)
        bx0, by0, bx1, by1 = x0 + x1, y0 + y1, x0 + x2, y0 + y2
        cx0, cy0 = max(0.0, bx0), max(0.0, by0)
        cx1, cy1 = min(float(cam.width), bx1), min(float(cam.height), by1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        visible = (cx1 - cx0) * (cy1 - cy0) / max(1e-9, (bx1 - bx0) * (by1 - by0))
        return GroundTruth(sign.kind, sign.at_m, forward_m,
                           (float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)), visible)

    @staticmethod
    def _blend(img: np.ndarray, pre: np.ndarray, x: int, y: int) -> None:
        """Composite a premultiplied RGBA sprite (float) onto the BGR float image at (x, y)."""
        H, W = img.shape[:2]
        sh, sw = pre.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + sw), min(H, y + sh)
        if x1 <= x0 or y1 <= y0:
            return
        patch = pre[y0 - y:y1 - y, x0 - x:x1 - x]
        region = img[y0:y1, x0:x1]
        region *= 1.0 - patch[:, :, 3:4] / 255.0
        region += patch[:, :, 2::-1]  # sprites are RGB(A), the image is BGR
