"""The model beside others on the same frames: another model call by call, and ultralytics predict.

A baseline is timed alternating call by call with the model's own, so that a model change is
judged side by side in one run, not across days of the machine's drift. Ultralytics runs in a
child interpreter (this one, when it has ultralytics, else the one given) through
train_fou.bench.ultralytics_worker.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from train_fou.bench.harness import percentile


@dataclass(frozen=True)
class BaselineResult:
    """Bare inference of the model and of the baseline, paired per frame."""
    imgsz: tuple[int, int]          #: the baseline's input size
    own_ms: tuple[float, ...]
    baseline_ms: tuple[float, ...]

    def fields(self) -> dict:
        own, other = percentile(self.own_ms, 50), percentile(self.baseline_ms, 50)
        return {'baseline_paired_raw_ms_p50': own, 'baseline_raw_ms_p50': other,
                'baseline_imgsz': list(self.imgsz), 'raw_over_baseline': round(own / other, 3)}


def measure_baseline(detector, baseline, frames, warmup: int) -> BaselineResult:
    """Bare inference of `detector` and `baseline` on the same frames, alternating call by call."""
    own = [detector.prepare(frame)[0].copy() for frame in frames]  # each backend's own input type
    other = [baseline.prepare(frame)[0].copy() for frame in frames]
    own_ms, other_ms = [], []
    for i in range(warmup + len(frames)):
        k = i % len(frames)
        t0 = time.perf_counter()
        detector.backend.infer(own[k])
        t1 = time.perf_counter()
        baseline.backend.infer(other[k])
        t2 = time.perf_counter()
        if i >= warmup:
            own_ms.append((t1 - t0) * 1e3)
            other_ms.append((t2 - t1) * 1e3)
    return BaselineResult(tuple(baseline.metadata.imgsz), tuple(own_ms), tuple(other_ms))


@dataclass(frozen=True)
class UltralyticsResult:
    """Ultralytics predict times, or why there are none."""
    reason: str | None = None       #: None when measured
    ms: tuple[float, ...] = ()
    version: str = ''
    python: str = ''                #: the interpreter that ran it

    def fields(self) -> dict:
        """The bench's ultralytics_* fields; none when not measured."""
        if self.reason is not None:
            return {}
        return {'ultralytics_ms_p50': percentile(self.ms, 50), 'ultralytics_ms_p95': percentile(self.ms, 95),
                'ultralytics_version': self.version, 'ultralytics_python': self.python}

    def reasons(self) -> dict:
        return {} if self.reason is None else {'ultralytics': self.reason}


def measure_ultralytics(model_path: pathlib.Path, frames, detector, warmup: int,
                        other_python: str = '') -> UltralyticsResult:
    """Ultralytics predict on `frames` with the detector's input size and thresholds (ONNX models only).

    Runs in this interpreter when it has ultralytics, else in `other_python` (empty: none).
    """
    python = sys.executable if importlib.util.find_spec('ultralytics') else other_python
    if model_path.suffix != '.onnx':
        return UltralyticsResult('measured on ONNX models only')
    if not python:
        return UltralyticsResult('ultralytics is not importable here; pass --ultralytics-python '
                                 '(e.g. .venv-train/bin/python)')
    h, w = detector.metadata.imgsz
    with tempfile.TemporaryDirectory(prefix='train_fou_bench_') as tmp:
        frames_path = pathlib.Path(tmp) / 'frames.npy'
        np.save(frames_path, np.stack(frames))
        env = dict(os.environ, YOLO_CONFIG_DIR=tmp, YOLO_OFFLINE='1')
        cmd = [python, '-m', 'train_fou.bench.ultralytics_worker', str(model_path), str(frames_path), str(h), str(w),
               str(detector.conf_threshold), str(detector.iou_threshold), str(warmup)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as err:
            return UltralyticsResult(f'{python}: {err}')
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['no output'])[-1]
        return UltralyticsResult(f'{python}: ultralytics predict failed: {last}')
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return UltralyticsResult(None, tuple(data['ms']), data['version'], python)
