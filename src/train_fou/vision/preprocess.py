"""Pre-processing: centred letterbox to the network input, BGR -> RGB, 0..1 float32 NCHW.

The same conventions as ultralytics (grey 114 padding, round-half pads), so a
model trained there sees the same pixels here. `letterbox()` allocates its
output; `Letterboxer` reuses one tensor across frames (the detector's hot path):
the padding is filled once per input geometry and each frame writes only the
resized interior. Every buffer is allocated once per geometry: cv2.resize
writes into a reused uint8 image, cv2.split de-interleaves it into three reused
uint8 planes (contiguous, so the split is a fast SIMD pass), and each plane is
converted to float32 straight into its channel of the tensor in reversed order
(BGR -> RGB), then scaled there in place: a plain cast and a same-type multiply
are each a SIMD pass, faster than one mixed uint8 x float32 multiply and far
faster than one strided NumPy multiply over the transposed image, with
bit-identical values (docs/performance.md).

`Letterboxer(dst_hw, np.uint8)` writes the same pixels as bytes (0..255, pad 114) for a backend
that normalises in its graph (the CPU's, onnxruntime_backend.with_uint8_input): the split planes
are the tensor's channels themselves when the interior spans whole rows (a 4:3 frame into a
square input), else they are copied in (uint8 -> uint8); no float pass at all.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

PAD_VALUE = 114
_SCALE = np.float32(1.0 / 255.0)


class LetterboxInfo(NamedTuple):
    """How a source image was placed into the network input (to map boxes back)."""

    scale: float  # network pixels per source pixel
    pad_x: int  # left padding, network pixels
    pad_y: int  # top padding, network pixels
    src_width: int
    src_height: int
    dst_width: int
    dst_height: int


def letterbox_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> tuple[LetterboxInfo, int, int]:
    """LetterboxInfo plus the resized (width, height) of the image inside the input."""
    src_h, src_w = int(src_hw[0]), int(src_hw[1])
    dst_h, dst_w = int(dst_hw[0]), int(dst_hw[1])
    if src_h <= 0 or src_w <= 0:
        raise ValueError(f'image size must be positive, got {src_w}x{src_h}')
    scale = min(dst_h / src_h, dst_w / src_w)
    new_w = min(dst_w, max(1, int(round(src_w * scale))))
    new_h = min(dst_h, max(1, int(round(src_h * scale))))
    pad_x = int(round((dst_w - new_w) / 2 - 0.1))
    pad_y = int(round((dst_h - new_h) / 2 - 0.1))
    return LetterboxInfo(scale, pad_x, pad_y, src_w, src_h, dst_w, dst_h), new_w, new_h


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ValueError(f'expected a uint8 HxWx3 BGR image, got shape {shape} dtype {dtype}')


class Letterboxer:
    """Reusable pre-processor for one network input size (height, width).

    `__call__` returns the same tensor object every time, overwritten in place:
    copy it if you keep it past the next call. `dtype` float32 (0..1) or uint8 (0..255).
    """

    def __init__(self, dst_hw: tuple[int, int], dtype=np.float32):
        self.dst_hw = (int(dst_hw[0]), int(dst_hw[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.uint8):
            raise ValueError(f'letterbox dtype must be float32 or uint8, got {self.dtype}')
        self.tensor = np.empty((1, 3, *self.dst_hw), dtype=self.dtype)
        self._geometry: tuple[int, int] | None = None
        self._info: LetterboxInfo | None = None
        self._resized_wh = (0, 0)
        self._resized: np.ndarray | None = None  # the resized BGR image (None: no resize needed)
        self._planes: list[np.ndarray] = []  # B, G, R uint8 planes of the resized image
        self._channels: list[np.ndarray] = []  # tensor interiors of R, G, B... in B, G, R order
        self._split_into_channels = False  # uint8, interior contiguous: split writes the tensor itself

    def _prepare(self, src_hw: tuple[int, int]) -> None:
        info, new_w, new_h = letterbox_geometry(src_hw, self.dst_hw)
        as_bytes = self.dtype == np.uint8
        self.tensor.fill(PAD_VALUE if as_bytes else PAD_VALUE * float(_SCALE))
        interior = self.tensor[0, :, info.pad_y:info.pad_y + new_h, info.pad_x:info.pad_x + new_w]
        needs_resize = (new_w, new_h) != (info.src_width, info.src_height)
        self._resized = np.empty((new_h, new_w, 3), np.uint8) if needs_resize else None
        self._channels = [interior[2], interior[1], interior[0]]  # plane b -> channel 2 (RGB order)
        self._split_into_channels = as_bytes and all(c.flags.c_contiguous for c in self._channels)
        self._planes = (self._channels if self._split_into_channels
                        else [np.empty((new_h, new_w), np.uint8) for _ in range(3)])
        self._geometry, self._info, self._resized_wh = src_hw, info, (new_w, new_h)

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        _check_image(image_bgr)
        src_hw = image_bgr.shape[:2]
        if src_hw != self._geometry:
            self._prepare(src_hw)
        resized = self._resized
        if resized is not None:
            cv2.resize(image_bgr, self._resized_wh, dst=resized, interpolation=cv2.INTER_LINEAR)
            image_bgr = resized
        # Into the reused planes (same shape and type: written in place; the returned list is them).
        planes = cv2.split(image_bgr, self._planes)
        if self._split_into_channels:
            return self.tensor, self._info
        if self.dtype == np.uint8:
            for plane, channel in zip(planes, self._channels):
                np.copyto(channel, plane)
            return self.tensor, self._info
        for plane, channel in zip(planes, self._channels):
            np.copyto(channel, plane, casting='unsafe')  # uint8 -> float32, exact
            np.multiply(channel, _SCALE, out=channel)  # -> 0..1 in place, no temporaries
        return self.tensor, self._info


def letterbox(image_bgr: np.ndarray, dst_hw: tuple[int, int]) -> tuple[np.ndarray, LetterboxInfo]:
    """Letterbox one BGR uint8 image to (height, width): a new 1x3xHxW float32 RGB 0..1 tensor.

    >>> tensor, info = letterbox(np.zeros((480, 640, 3), np.uint8), (416, 416))
    >>> tensor.shape, info.scale, info.pad_y
    ((1, 3, 416, 416), 0.65, 52)
    """
    return Letterboxer(dst_hw)(image_bgr)
