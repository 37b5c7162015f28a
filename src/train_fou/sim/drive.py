"""Drive an episode with the speed policy on the signs' true boxes (a perfect detector), without ROS.

The same loop as the closed loop over DDS, in one function: each frame's
detections go through `train_fou.policy.step` at the frame's simulated time,
and the resulting power moves the train for the next step (one frame of
latency, as in lockstep). Used to make the demo bags and to check scenarios
quickly; `train-fou sim --oracle` runs the same with the real nodes.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from train_fou.policy import Detection, Frame, PolicyConfig, State, step
from train_fou.sim.camera import GroundTruth
from train_fou.sim.dynamics import BRAKE_POWER
from train_fou.sim.episode import Episode
from train_fou.sim.track import label_of

#: on_frame(episode, image or None, truths, policy state after the frame)
FrameHook = Callable[[Episode, 'np.ndarray | None', list[GroundTruth], State], None]


def true_frame(episode: Episode, truths: list[GroundTruth]) -> Frame:
    detections = tuple(Detection(label_of(t.kind), 1.0, t.box[3]) for t in truths if label_of(t.kind))
    return Frame(episode.stamp_ns, episode.world.camera.height, detections)


def drive(episode: Episode, config: PolicyConfig, on_frame: FrameHook | None = None,
          render: bool = False) -> State:
    """Run `episode` to its end under the policy; returns the policy's last state."""
    state = State()
    while not episode.done:
        if render:
            image, truths = episode.frame()
        else:
            image, truths = None, episode.truths()
        state = step(state, true_frame(episode, truths), episode.t_s, config)
        if on_frame is not None:
            on_frame(episode, image, truths, state)
        applied = BRAKE_POWER if state.brake else state.power
        episode.advance(applied, commanded_power=state.power, brake=state.brake, state=int(state.mode),
                        labels=[label_of(t.kind) for t in truths if label_of(t.kind)])
    return state
