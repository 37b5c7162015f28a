"""The simulator's side of the closed loop over messages, without ROS: the episode, the lockstep gate
and a log of every frame (what the track_sim node publishes, receives and reports).

The pipeline's answers come in as plain values (`on_detections`, `on_command`,
`on_hub`); `frame` renders the next camera image and logs it, `step` moves the
world by one frame. The motor's input is what the hub reports as applied
(`train_fou.sim.lockstep.motor_input`), or the command's before any hub has
spoken. Wall time is passed in (the gate's retries); simulated time is the episode's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from train_fou.sim.camera import GroundTruth
from train_fou.sim.episode import Episode
from train_fou.sim.lockstep import Command, LockstepGate, motor_input
from train_fou.sim.scenario import World

#: Width of the frames kept for reports.
REPORT_WIDTH = 320


@dataclass
class FrameLog:
    """What happened on one simulated frame (for reports)."""
    t_s: float
    position_m: float
    speed_mps: float
    applied_power: int
    command_power: int = 0
    brake: bool = False
    state: int = -1
    reason: str = ''
    detections: list = field(default_factory=list)   #: (label, score, (x, y, w, h))
    truths: list = field(default_factory=list)       #: (kind, (x, y, w, h))
    frame: np.ndarray | None = None                  #: kept every `keep_frames_every` frames, downscaled
    frame_scale: float = 1.0


class ClosedLoop:
    """One run of `world`, stepped frame by frame as the pipeline answers (or on a timer)."""

    def __init__(self, world: World, gate: LockstepGate, keep_frames_every: int = 0) -> None:
        self.world = world
        self.episode = Episode(world)
        self.gate = gate
        self.keep_frames_every = keep_frames_every
        self.log: list[FrameLog] = []
        self.result: dict | None = None  #: the run's result once the episode has ended
        self._current: FrameLog | None = None
        self._command: Command | None = None
        self.hub_power: int | None = None  #: the hub's applied power, None until a hub has spoken

    # --- the pipeline's answers ---------------------------------------------------------------
    def on_detections(self, stamp_ns: int, detections: list, now: float) -> None:
        """`detections`: (label, score, (x, y, w, h)) the detector found on the frame stamped `stamp_ns`."""
        if self._current is not None and stamp_ns == self.gate.stamp_ns:
            self._current.detections = detections
        self.gate.on_detections(stamp_ns, now)

    def on_command(self, source_stamp_ns: int, command: Command, now: float) -> None:
        self._command = command
        self.gate.on_command(source_stamp_ns, command, now)

    def on_hub(self, applied_power: int) -> None:
        self.hub_power = int(applied_power)
        self.gate.on_hub(applied_power)

    def applied_power(self) -> int:
        """The motor's input: the hub's applied power (127: braked); without a hub, the command's."""
        if self.hub_power is not None:
            return motor_input(self.hub_power, self._command)
        if self._command is None:
            return 0
        return motor_input(self._command.applied, self._command)

    # --- the world ----------------------------------------------------------------------------
    def frame(self, stamp_ns: int, now: float) -> tuple[np.ndarray, list[GroundTruth]]:
        """Render the camera's next image, log it and hand it to the gate as sent at `now`."""
        image, truths = self.episode.frame()
        state = self.episode.state
        entry = FrameLog(self.episode.t_s, state.position_m, state.speed_mps, self.applied_power(),
                         truths=[(t.kind, t.box) for t in truths])
        if self.keep_frames_every and self.episode.frame_index % self.keep_frames_every == 0:
            entry.frame_scale = REPORT_WIDTH / image.shape[1]
            entry.frame = cv2.resize(image, (REPORT_WIDTH, round(image.shape[0] * entry.frame_scale)),
                                     interpolation=cv2.INTER_AREA)
        self.log.append(entry)
        self._current = entry
        self.gate.sent(stamp_ns, now)
        return image, truths

    def step(self) -> bool:
        """Move the world one frame under the current command; True once the run has ended (`result`)."""
        applied = self.applied_power()
        current = self._current
        if current is not None:
            command = self.gate.command or self._command
            if command is not None:
                current.command_power, current.brake = command.power, command.brake
                current.state, current.reason = command.state, command.reason
            current.applied_power = applied
            self.episode.advance(applied, commanded_power=current.command_power, brake=current.brake,
                                 state=current.state, labels=[d[0] for d in current.detections])
        if not self.episode.done:
            return False
        result = self.episode.result().as_dict()
        result['unanswered_frames'] = self.gate.unanswered
        result['hub_mismatches'] = self.gate.hub_mismatches
        self.result = result
        return True
