"""Reports of a closed-loop run or a replay: a time plot, an annotated GIF, a summary.

Shared by `train-fou sim --report` and `train-fou replay --report`. The input
is a `Timeline` (plain lists, one entry per processed frame), so the report
does not care whether the frames came from the virtual track or a bag.
Matplotlib runs on the Agg backend; nothing here touches ROS.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np

#: SpeedCommand.state values -> names (the msg constants).
STATE_NAMES = {0: 'CRUISE', 1: 'LIMIT', 2: 'STOP_HOLD', 3: 'DANGER_LATCHED', 4: 'FAILSAFE'}
STATE_COLOURS = {0: '#d9f0d3', 1: '#fee8c8', 2: '#fdd0a2', 3: '#fcbba1', 4: '#d9d9d9'}
LABEL_COLOURS_BGR = {'speed_limit_30': (0, 0, 255), 'speed_limit_50': (0, 165, 255), 'stop': (255, 0, 0),
                     'danger': (0, 255, 255)}
GIF_WIDTH = 256
#: GIFs of noisy camera frames compress badly: at most this many frames (evenly spread).
GIF_MAX_FRAMES = 60
VIDEO_WIDTH = 320


@dataclass
class Timeline:
    """What happened, frame by frame. Lists are aligned with `t_s`; a missing value is None."""
    title: str
    t_s: list[float] = field(default_factory=list)
    command_power: list[float | None] = field(default_factory=list)
    applied_power: list[float | None] = field(default_factory=list)
    state: list[int | None] = field(default_factory=list)
    detections: list[list[tuple[str, float, tuple[float, float, float, float]]]] = field(default_factory=list)
    position_m: list[float] | None = None   #: simulator only
    speed_mps: list[float] | None = None    #: simulator only
    #: position markers (simulator): (metres along the track, text)
    landmarks: list[tuple[float, str]] = field(default_factory=list)
    #: frames for the GIF: (index into t_s, BGR image, its scale relative to the detector's image)
    frames: list[tuple[int, np.ndarray, float]] = field(default_factory=list)

    def add(self, t_s: float, command_power=None, applied_power=None, state=None, detections=(),
            position_m: float | None = None, speed_mps: float | None = None) -> int:
        self.t_s.append(float(t_s))
        self.command_power.append(command_power)
        self.applied_power.append(applied_power)
        self.state.append(state)
        self.detections.append(list(detections))
        if position_m is not None:
            self.position_m = [] if self.position_m is None else self.position_m
            self.position_m.append(float(position_m))
        if speed_mps is not None:
            self.speed_mps = [] if self.speed_mps is None else self.speed_mps
            self.speed_mps.append(float(speed_mps))
        return len(self.t_s) - 1


def _power_value(power) -> float | None:
    """Hub power for plotting: the LWP3 brake value (127) is drawn as 0 with a brake marker."""
    if power is None:
        return None
    return 0.0 if abs(power) > 100 else float(power)


def _state_spans(t: Sequence[float], states: Sequence[int | None]):
    spans, start, current = [], None, None
    for ti, s in zip(t, states):
        if s != current:
            if current is not None:
                spans.append((start, ti, current))
            start, current = ti, s
    if current is not None and t:
        spans.append((start, t[-1], current))
    return spans


def plot_timeline(timeline: Timeline, path: str | pathlib.Path) -> pathlib.Path:
    """PNG with position and speed (simulator), power and state, and detections over time."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    t = np.asarray(timeline.t_s, dtype=float)
    panels = (['position', 'speed'] if timeline.position_m else []) + ['power', 'detections']
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.3 * len(panels) + 0.6), sharex=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    ax_of = dict(zip(panels, axes))
    fig.suptitle(timeline.title)
    if 'position' in ax_of:
        ax = ax_of['position']
        ax.plot(t, timeline.position_m, color='black', lw=1.5, label='train front')
        for at, text in timeline.landmarks:
            colour = 'red' if text == 'cliff' else 'tab:blue'
            ax.axhline(at, color=colour, lw=0.8, ls='--')
            ax.annotate(text, (t[0] if len(t) else 0, at), fontsize=7, color=colour, va='bottom')
        ax.set_ylabel('position (m)')
    if 'speed' in ax_of:
        ax_of['speed'].plot(t, timeline.speed_mps, color='tab:green', lw=1.5)
        ax_of['speed'].set_ylabel('speed (m/s)')
    ax = ax_of['power']
    for start, end, state in _state_spans(timeline.t_s, timeline.state):
        ax.axvspan(start, end, color=STATE_COLOURS.get(state, '#ffffff'), lw=0)
    for s, name in STATE_NAMES.items():
        if s in timeline.state:
            ax.plot([], [], color=STATE_COLOURS[s], lw=6, label=name)
    command = [_power_value(p) for p in timeline.command_power]
    applied = [_power_value(p) for p in timeline.applied_power]
    ax.step(t, [np.nan if p is None else p for p in command], where='post', color='tab:blue', label='commanded')
    ax.step(t, [np.nan if p is None else p for p in applied], where='post', color='tab:orange', ls='--',
            label='applied (hub)')
    brakes = [ti for ti, p in zip(t, timeline.applied_power) if p is not None and abs(p) > 100]
    if brakes:
        ax.plot(brakes, [0] * len(brakes), '|', color='red', ms=8, label='brake')
    ax.set_ylabel('power (%)')
    ax.set_ylim(-5, 105)
    ax.legend(loc='upper right', fontsize=7, ncol=4)
    ax = ax_of['detections']
    labels = sorted({d[0] for frame in timeline.detections for d in frame})
    for row, label in enumerate(labels):
        xs = [ti for ti, frame in zip(t, timeline.detections) for d in frame if d[0] == label]
        heights = [d[2][3] for frame in timeline.detections for d in frame if d[0] == label]
        scores = [d[1] for frame in timeline.detections for d in frame if d[0] == label]
        ax.scatter(xs, [row] * len(xs), s=np.clip(heights, 4, 80), c=scores, cmap='viridis', vmin=0, vmax=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.7, max(0.7, len(labels) - 0.3))
    ax.set_ylabel('detections\n(size: box px)')
    axes[-1].set_xlabel('time (s)')
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def annotate_frame(image_bgr: np.ndarray, detections, caption: str, scale: float = 1.0) -> np.ndarray:
    """Detection boxes (in source pixels, drawn at `scale`) and a caption line on a copy of the frame."""
    import cv2
    canvas = image_bgr.copy()
    for label, score, box in detections:
        x, y, w, h = (v * scale for v in box)
        colour = LABEL_COLOURS_BGR.get(label, (255, 255, 255))
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), colour, 2)
        cv2.putText(canvas, f'{label} {score:.2f}', (int(x), max(10, int(y) - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, colour, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 16), (0, 0, 0), cv2.FILLED)
    cv2.putText(canvas, caption, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def frame_caption(timeline: Timeline, i: int) -> str:
    parts = [f't={timeline.t_s[i]:5.1f}s']
    if timeline.position_m:
        parts.append(f'x={timeline.position_m[i]:5.2f}m v={timeline.speed_mps[i]:.2f}m/s')
    state = timeline.state[i]
    if state is not None:
        parts.append(STATE_NAMES.get(state, str(state)))
    power = timeline.applied_power[i] if timeline.applied_power[i] is not None else timeline.command_power[i]
    if power is not None:
        parts.append('brake' if abs(power) > 100 else f'power {power:.0f}')
    return '  '.join(parts)


def _annotated_frames(timeline: Timeline, width: int, indices) -> list[np.ndarray]:
    import cv2
    images = []
    for k in indices:
        i, frame, scale = timeline.frames[k]
        if frame.shape[1] != width:
            factor = width / frame.shape[1]
            frame = cv2.resize(frame, (width, round(frame.shape[0] * factor)), interpolation=cv2.INTER_AREA)
            scale *= factor
        images.append(annotate_frame(frame, timeline.detections[i], frame_caption(timeline, i), scale))
    return images


def write_gif(timeline: Timeline, path: str | pathlib.Path, fps: float = 4.0) -> pathlib.Path | None:
    """Annotated frames (GIF_WIDTH wide, at most GIF_MAX_FRAMES) as an animated GIF; None without frames
    or with an imageio older than 2.16 (Ubuntu 22.04's python3-imageio: no `imageio.v2`)."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        return None

    if not timeline.frames:
        return None
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(timeline.frames)
    indices = sorted({round(k * (n - 1) / max(1, GIF_MAX_FRAMES - 1)) for k in range(min(n, GIF_MAX_FRAMES))})
    images = [image[:, :, ::-1] for image in _annotated_frames(timeline, GIF_WIDTH, indices)]
    imageio.mimsave(path, images, duration=1000.0 / fps, loop=0)
    return path


def write_video(timeline: Timeline, path: str | pathlib.Path, fps: float = 5.0) -> pathlib.Path | None:
    """Every kept frame, annotated, as an MP4 (mp4v); None without frames or without a codec."""
    import cv2

    if not timeline.frames:
        return None
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = _annotated_frames(timeline, VIDEO_WIDTH, range(len(timeline.frames)))
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        return None
    try:
        for image in images:
            writer.write(image)
    finally:
        writer.release()
    return path


def write_report(timeline: Timeline, directory: str | pathlib.Path, summary: dict[str, Any],
                 stem: str = 'run') -> dict[str, str]:
    """plot PNG, annotated GIF and MP4, and summary.json into `directory`; returns what was written."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {'plot': str(plot_timeline(timeline, directory / f'{stem}.png'))}
    gif = write_gif(timeline, directory / f'{stem}.gif')
    if gif is not None:
        written['gif'] = str(gif)
    video = write_video(timeline, directory / f'{stem}.mp4')
    if video is not None:
        written['video'] = str(video)
    summary_path = directory / 'summary.json'
    summary_path.write_text(json.dumps({**summary, 'files': written}, indent=2) + '\n')
    written['summary'] = str(summary_path)
    return written
