"""Frames from the closed-loop simulator's train camera -> a YOLO dataset.

The synthetic scenes of `training.synth` put signs anywhere in a picture. The
train sees them from one place: low, looking along the rails, a sign growing
from a few pixels at the horizon to the reaction distance in front of whatever
stands behind the track (walls of big bricks, yellow arches, red plates). The
closed-loop campaigns showed what the detector learnt without that view: a 50
sign in front of a yellow arch read as a warning triangle, and a far triangle
of 8 px given a 25 px box. This module renders that view with the simulator's
own camera (`train_fou.sim.camera`, the same sign sprites as the synthetic
data) over worlds sampled from a scenario, and labels each class sign from the
camera's ground truth.

Worlds come from `Scenario.sample(seed, world_index)`: keep `seed` apart from
the campaign seeds you judge the model with (the README's campaign uses seed
1; the shipped configs use 1000 and up), or the campaign measures frames the
detector was trained on. Frame `k` of world `w` of a split is drawn from
`np.random.default_rng([seed, split_id, w, k])`: deterministic for a seed.
"""
from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping

import cv2
import numpy as np

from train_fou.render.signs import CLASS_NAMES, DISTRACTOR_KINDS, HARD_DISTRACTOR_KINDS, KIND_CLASS
from train_fou.sim.camera import CameraRenderer, GroundTruth
from train_fou.sim.scenario import Scenario, default_scenario_path, load_scenario
from training.dataset import SPLITS, Box, write_data_yaml, write_labels
from training.synth import camera_effects, map_jobs

SPLIT_IDS = {'train': 0, 'val': 1, 'test': 2}
#: worlds of different splits never coincide: split s uses world indices s * WORLD_STRIDE + w
WORLD_STRIDE = 1_000_000
#: frames drawn per sampled world (the renderer's background is built once per world)
FRAMES_PER_WORLD = 6
#: signs with a smaller face are left unlabelled (a few pixels: no detector can tell them apart)
MIN_LABEL_PX = 5.0
#: signs less visible than this (cut by the image border) are left unlabelled
MIN_VISIBLE = 0.5
#: share of frames that also get the synthetic data's camera effects (blur, noise, JPEG, ...)
DEGRADE_P = 0.5
JPEG_QUALITY = 92


def labels_for(truths: list[GroundTruth], min_px: float = MIN_LABEL_PX,
               min_visible: float = MIN_VISIBLE) -> list[tuple[int, Box]]:
    """YOLO labels (class id, x1 y1 x2 y2) of the class signs in a frame; distractors are background."""
    out = []
    for t in truths:
        cls = KIND_CLASS.get(t.kind)
        x, y, w, h = t.box
        if cls is None or h < min_px or t.visible_fraction < min_visible:
            continue
        out.append((cls, (x, y, x + w, y + h)))
    return out


def distractor_pool(hard_negative_p: float) -> list[str] | None:
    """Distractor kinds to draw uniformly from, with HARD_DISTRACTOR_KINDS making up `hard_negative_p` of
    the draws (the rest: every distractor kind); None (the scenario's own list) for 0."""
    if not hard_negative_p:
        return None
    if not 0 < hard_negative_p <= 1:
        raise ValueError(f'hard_negative_p must be in [0, 1], got {hard_negative_p!r}')
    slots = 100
    hard = round(hard_negative_p * slots)
    return ([HARD_DISTRACTOR_KINDS[i % len(HARD_DISTRACTOR_KINDS)] for i in range(hard)]
            + [DISTRACTOR_KINDS[i % len(DISTRACTOR_KINDS)] for i in range(slots - hard)])


def render_world(scenario: Scenario, seed: int, split: str, world: int,
                 frames: int = FRAMES_PER_WORLD,
                 distractor_kinds: list[str] | None = None) -> list[tuple[np.ndarray, list[tuple[int, Box]]]]:
    """`frames` BGR camera frames of one sampled world, at random positions before the cliff, with labels."""
    sampled = scenario.sample(seed, SPLIT_IDS[split] * WORLD_STRIDE + world, distractor_kinds)
    renderer = CameraRenderer(sampled.camera, sampled.track, sampled.look)
    out = []
    for k in range(frames):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], world, k])
        position = float(rng.uniform(0.0, max(0.0, sampled.track.cliff_at_m - 0.3)))
        bgr, truths = renderer.render(position, int(rng.integers(0, 1 << 16)))
        if rng.random() < DEGRADE_P:
            bgr = cv2.cvtColor(camera_effects(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), rng), cv2.COLOR_RGB2BGR)
        out.append((bgr, labels_for(truths)))
    return out


def _write_world(args) -> int:
    root, scenario, seed, split, world, frames, distractor_kinds = args
    n = 0
    for k, (bgr, labels) in enumerate(render_world(scenario, seed, split, world, frames, distractor_kinds)):
        name = f'{split}_{world:05d}_{k:02d}'
        cv2.imwrite(str(root / 'images' / split / f'{name}.jpg'), bgr, [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY])
        h, w = bgr.shape[:2]
        write_labels(root / 'labels' / split / f'{name}.txt', labels, w, h)
        n += len(labels)
    return n


def generate_simview(root: str | pathlib.Path, counts: Mapping[str, int], seed: int,
                     scenario_path: str | pathlib.Path | None = None, frames_per_world: int = FRAMES_PER_WORLD,
                     workers: int = 1, hard_negative_p: float = 0.0) -> dict[str, int]:
    """Write images/{split}/*.jpg, labels/{split}/*.txt and data.yaml under root; returns labels per split.

    `hard_negative_p`: share of distractors drawn from the hard look-alikes (distractor_pool).

    A split of `counts[split]` images takes ceil(count / frames_per_world) worlds (the last one may
    give fewer frames).
    """
    root = pathlib.Path(root)
    scenario = load_scenario(scenario_path or default_scenario_path())
    distractor_kinds = distractor_pool(hard_negative_p)
    jobs = []
    for split in SPLITS:
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'labels' / split).mkdir(parents=True, exist_ok=True)
        count = int(counts.get(split, 0))
        for world in range(math.ceil(count / frames_per_world)):
            frames = min(frames_per_world, count - world * frames_per_world)
            jobs.append((root, scenario, seed, split, world, frames, distractor_kinds))
    results = map_jobs(_write_world, jobs, workers, chunksize=4)
    per_split = {split: 0 for split in SPLITS}
    for job, n in zip(jobs, results):
        per_split[job[3]] += n
    write_data_yaml(root, CLASS_NAMES, extra={'simview': {
        'seed': seed, 'counts': {s: int(counts.get(s, 0)) for s in SPLITS},
        'scenario': str(scenario.path or scenario.name), 'frames_per_world': frames_per_world,
        'min_label_px': MIN_LABEL_PX, 'min_visible': MIN_VISIBLE, 'degrade_p': DEGRADE_P,
        **({'hard_negative_p': hard_negative_p} if hard_negative_p else {})}})
    return per_split
