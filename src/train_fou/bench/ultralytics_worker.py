"""Times ultralytics predict on frames from an .npy file; prints one JSON line {"ms": [...], "version": ...}.

Run as `python -m train_fou.bench.ultralytics_worker` in an interpreter that has ultralytics
(the training venv): it imports only the standard library and NumPy, ultralytics when it runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m train_fou.bench.ultralytics_worker', description=__doc__)
    parser.add_argument('model', help='model file that ultralytics.YOLO opens (task detect)')
    parser.add_argument('frames', help='.npy file of BGR frames, N x H x W x 3')
    parser.add_argument('height', type=int, help='inference size (imgsz) height')
    parser.add_argument('width', type=int, help='inference size (imgsz) width')
    parser.add_argument('conf', type=float, help='score threshold')
    parser.add_argument('iou', type=float, help='NMS IoU threshold')
    parser.add_argument('warmup', type=int, help='unmeasured predictions first')
    return parser


def predict_ms(model, frames, imgsz: tuple[int, int], conf: float, iou: float, warmup: int) -> list[float]:
    """Milliseconds of each measured predict call; frames cycle through `warmup` + len(frames) calls."""
    times = []
    for i in range(warmup + len(frames)):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        model.predict(frame, imgsz=imgsz, conf=conf, iou=iou, device='cpu', verbose=False)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import ultralytics
    from ultralytics import YOLO
    frames = np.load(args.frames)
    model = YOLO(args.model, task='detect')
    times = predict_ms(model, frames, (args.height, args.width), args.conf, args.iou, args.warmup)
    print(json.dumps({'ms': times, 'version': ultralytics.__version__}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
