"""The one interface every inference backend implements."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    """Runs the network on one pre-processed 1x3xHxW float32 tensor.

    A backend is created, used and closed by one thread (TensorRT binds its CUDA
    context to the creating thread).
    """

    #: `tensorrt`, `onnxruntime-cuda` or `onnxruntime-cpu` (SignDetectionArray.backend).
    name: str
    #: (height, width) the network expects, when the model fixes it; None when dynamic.
    input_hw: tuple[int, int] | None

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """The model's first output for `tensor` (owned by the caller until the next call)."""

    def close(self) -> None:
        """Release sessions, device memory and contexts."""
