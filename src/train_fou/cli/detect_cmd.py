"""`train-fou detect PATH... [--model M] [--json]`: run the sign detector on image files.

A file that is missing, unreadable or truncated, and a folder without images,
each give one line on stderr; the other images are still detected, and the exit
code is 1.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

from train_fou.paths import default_model

HELP = 'detect signs in image files (one JSON line per image with --json)'
IMAGE_SUFFIXES = {'.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('paths', nargs='+', metavar='PATH', help='image files or folders of images')
    parser.add_argument('--model', default=None,
                        help='ONNX model or TensorRT engine (default: share/train_fou/models/signs.onnx)')
    parser.add_argument('--backend', default='auto', help='auto, tensorrt, onnxruntime-cuda or onnxruntime-cpu')
    parser.add_argument('--conf', type=float, default=None, help='score threshold (default: the model metadata)')
    parser.add_argument('--json', action='store_true', help='one JSON object per line')


def expand(paths: list[str]) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """(files as given and folders expanded to their images, sorted; the folders that hold none)."""
    out: list[pathlib.Path] = []
    empty: list[pathlib.Path] = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            out.extend(found)
            if not found:
                empty.append(path)
        else:
            out.append(path)
    return out, empty


def open_cli_detector(model: str | None, backend: str, conf: float | None = None):
    """open_detector with CLI errors: a missing model names its path (and says how to get one)."""
    from train_fou.cli import CliError
    from train_fou.vision.detector import open_detector
    from train_fou.vision.errors import ModelNotFoundError, VisionError

    path = pathlib.Path(model) if model else default_model()
    try:
        return open_detector(path, backend=backend, conf_threshold=conf)
    except ModelNotFoundError as err:
        hint = '' if model else ' (train and export one: see training/, or pass --model)'
        raise CliError(f'{err}{hint}') from err
    except (VisionError, ValueError) as err:
        raise CliError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    from train_fou.cli import CliError
    from train_fou.vision.errors import ImageDecodeError
    from train_fou.vision.images import read_image

    if args.conf is not None and not (math.isfinite(args.conf) and 0.0 <= args.conf <= 1.0):
        raise CliError(f'--conf {args.conf:g}: expected a score from 0 to 1')
    files, empty = expand(args.paths)
    for folder in empty:
        print(f'train-fou detect: {folder}: no images (looked for {", ".join(sorted(IMAGE_SUFFIXES))})',
              file=sys.stderr)
    failures = len(empty)
    if not files:
        return 1
    detector, choice = open_cli_detector(args.model, args.backend, args.conf)
    print(f'backend: {choice.reason}', file=sys.stderr)
    try:
        for path in files:
            try:
                image = read_image(path)
            except ImageDecodeError as err:
                print(f'train-fou detect: {err}', file=sys.stderr)
                failures += 1
                continue
            result = detector.detect(image)
            detections = [{'label': d.label, 'score': round(d.score, 4),
                           'box': [round(v, 1) for v in (d.x1, d.y1, d.x2, d.y2)]} for d in result.detections]
            if args.json:
                print(json.dumps({'image': str(path), 'detections': detections,
                                  'inference_ms': round(result.inference_ms, 3)}), flush=True)
            else:
                found = ', '.join(f'{d["label"]} {d["score"]:.2f} {d["box"]}' for d in detections) or 'no signs'
                print(f'{path}: {found} ({result.inference_ms:.1f} ms)', flush=True)
    finally:
        detector.close()
    return 1 if failures else 0
