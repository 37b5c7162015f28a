"""One closed-loop run: the world, the train's state, the clock and the log.

The node (or a test) calls `frame()` to get the camera image for the current
instant, and `advance(applied_power)` to move the world by one step once the
pipeline has answered that frame. Nothing here waits or reads a clock.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from train_fou.sim import dynamics
from train_fou.sim.camera import CameraRenderer, GroundTruth, SpriteFn
from train_fou.sim.metrics import STILL_MPS, RunResult, Sample, evaluate
from train_fou.sim.scenario import World


class Episode:
    def __init__(self, world: World, sprite_fn: SpriteFn | None = None, render: bool = True) -> None:
        self.world = world
        self.state = dynamics.TrainState(0.0, world.start_speed_mps)
        self.t_s = 0.0
        self.frame_index = 0
        self.samples: list[Sample] = []
        self.end_reason: str | None = None
        self._still_since: float | None = None
        self._moved = world.start_speed_mps > STILL_MPS
        self.renderer = CameraRenderer(world.camera, world.track, world.look, sprite_fn) if render else None
        self.stamp_origin_ns = 1_000_000_000  #: simulated time of the first frame (a zero stamp reads as unset)

    @property
    def stamp_ns(self) -> int:
        """Simulated time of the current frame."""
        return self.stamp_origin_ns + round(self.t_s * 1e9)

    @property
    def done(self) -> bool:
        return self.end_reason is not None

    def frame(self) -> tuple[np.ndarray, list[GroundTruth]]:
        """The camera image now (BGR uint8) and the signs' true boxes in it."""
        if self.renderer is None:
            raise RuntimeError('episode created with render=False')
        return self.renderer.render(self.state.position_m, self.frame_index)

    def truths(self) -> list[GroundTruth]:
        """The signs' true boxes now, without rendering the image."""
        if self.renderer is None:
            raise RuntimeError('episode created with render=False')
        return self.renderer.truths(self.state.position_m)

    def advance(self, applied_power: int, *, commanded_power: int = 0, brake: bool = False,
                state: int = -1, labels: Sequence[str] = ()) -> None:
        """Log the instant that was just answered, then move the world by one step."""
        if self.done:
            return
        self.samples.append(Sample(self.t_s, self.state.position_m, self.state.speed_mps, int(applied_power),
                                   int(commanded_power), bool(brake), int(state), tuple(labels)))
        self.state = dynamics.step(self.world.train, self.state, int(applied_power), self.world.dt_s)
        self.frame_index += 1
        self.t_s = self.frame_index * self.world.dt_s  # no drift from summing dt
        self._check_end()

    def _check_end(self) -> None:
        world, state = self.world, self.state
        if state.position_m >= world.track.cliff_at_m:
            self.end_reason = 'fell'
        elif self.t_s >= world.max_time_s:
            self.end_reason = 'timeout'
        elif state.speed_mps < STILL_MPS:
            if self._still_since is None:
                self._still_since = self.t_s
            if self._moved and self.t_s - self._still_since >= world.end_still_s:
                self.end_reason = 'stopped'
        else:
            self._moved = True
            self._still_since = None
        if self.end_reason is not None:
            self.samples.append(Sample(self.t_s, state.position_m, state.speed_mps,
                                       self.samples[-1].applied_power if self.samples else 0))

    def result(self) -> RunResult:
        return evaluate(self.world, self.samples, self.end_reason or 'timeout')
