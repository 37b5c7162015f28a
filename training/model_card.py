"""Latency of a model through the detector's code path, and the model card's tables (runtime venv; no torch).

`python -m training.model_card models/signs.onnx DATA` measures latency on the
test images (per backend that can run here) and prints JSON; the card's
markdown tables come from `latency_table` and `evaluate.format_table`.
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np


def measure_latency(model: pathlib.Path, images: list[pathlib.Path], backend: str, frames: int = 100,
                    warmup: int = 10) -> dict:
    """p50/p90 of pre-processing, bare inference and post-processing, ms, on 640x480 frames."""
    import cv2  # noqa: PLC0415
    from train_fou.vision.detector import open_detector  # noqa: PLC0415
    detector, choice = open_detector(model, backend=backend)
    frames_bgr = [cv2.imread(str(p)) for p in images[:20]]
    times = []
    try:
        for i in range(warmup + frames):
            r = detector.detect(frames_bgr[i % len(frames_bgr)])
            if i >= warmup:
                times.append((r.preprocess_ms, r.inference_ms, r.postprocess_ms,
                              r.preprocess_ms + r.inference_ms + r.postprocess_ms))
    finally:
        detector.close()
    t = np.array(times)
    return {'backend': choice.backend.name, 'frames': frames,
            **{f'{k}_ms_p50': round(float(np.median(t[:, i])), 2)
               for i, k in enumerate(('preprocess', 'inference', 'postprocess', 'total'))},
            'total_ms_p90': round(float(np.percentile(t[:, 3], 90)), 2)}


def latency_table(rows: list[dict], machine: str) -> str:
    lines = ['| backend | machine | pre-process | inference | post-process | total p50 | total p90 |',
             '|---|---|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r["backend"]} | {machine} | {r["preprocess_ms_p50"]} ms | {r["inference_ms_p50"]} ms | '
                     f'{r["postprocess_ms_p50"]} ms | {r["total_ms_p50"]} ms | {r["total_ms_p90"]} ms |')
    return '\n'.join(lines)


def main(argv: list[str]) -> int:
    from training.dataset import split_images  # noqa: PLC0415
    from train_fou.vision.backends import BACKENDS  # noqa: PLC0415
    model, data = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    images = split_images(data, 'test')
    rows = []
    for name, spec in BACKENDS.items():
        if spec.model_kind == 'onnx' and spec.probe() is None:
            rows.append(measure_latency(model, images, name))
    print(json.dumps(rows))
    if len(argv) > 2:  # a third argument: also print the card's tables from that evaluation report
        from training.evaluate import format_table  # noqa: PLC0415
        report = json.loads(pathlib.Path(argv[2]).read_text())
        print(format_table(report))
        print(latency_table(rows, 'x86-64, 2 shared cores'))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
