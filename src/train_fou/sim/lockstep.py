"""When may the simulator take its next step? The lockstep gate (pure, wall time passed in).

On simulated time the world only moves once the pipeline has answered the
current frame: the detector's `signs/detections` with the frame's stamp, the
controller's `train/speed_command` whose `source_stamp` is that frame, and the
hub's `hub/state` showing the commanded power applied. The results then depend
on the pipeline's decisions only, never on how fast the machine computes them.
A frame that stays unanswered (a best-effort image lost) is published again
after `retry_s` of wall time; after `max_retries` the world moves on anyway and
the run counts the frame as unanswered. A resent frame may be answered twice,
so the wait is long once the pipeline has answered anything (a slow inference
is not a lost frame); only before the first answer, while DDS discovery may
still swallow a frame, is it short (`startup_retry_s`).
"""
from __future__ import annotations

from dataclasses import dataclass

from train_fou.sim.dynamics import BRAKE_POWER


@dataclass
class Command:
    power: int
    brake: bool
    state: int
    reason: str

    @property
    def applied(self) -> int:
        """What the hub reports as applied power for this command (0 while braked)."""
        return 0 if self.brake else self.power


def motor_input(hub_applied: int, command: Command | None) -> int:
    """The dynamics' input from the hub's applied power.

    HubState reports 0 both for a floating and for a braked motor; the command
    the hub is executing tells them apart.
    """
    if hub_applied == 0 and command is not None and command.brake:
        return BRAKE_POWER
    return hub_applied


class LockstepGate:
    def __init__(self, wait_for_command: bool = True, wait_for_hub: bool = True,
                 retry_s: float = 5.0, max_retries: int = 5, hub_grace_s: float = 0.5,
                 startup_retry_s: float = 0.5) -> None:
        self.wait_for_command = wait_for_command
        self.wait_for_hub = wait_for_hub
        self.retry_s = retry_s
        self.startup_retry_s = startup_retry_s
        self.answered_any = False
        self.max_retries = max_retries
        self.hub_grace_s = hub_grace_s
        self.stamp_ns: int | None = None
        self.detected = False
        self.command: Command | None = None   #: the command answering the current frame
        self.applied_power: int | None = None
        self.sent_at = 0.0
        self.answered_at: float | None = None
        self.retries = 0
        self.unanswered = 0      #: frames the world moved past without a full answer
        self.hub_mismatches = 0  #: frames where the hub did not show the command in time

    def sent(self, stamp_ns: int, now: float, retry: bool = False) -> None:
        if retry:
            self.retries += 1
        else:
            self.stamp_ns, self.detected, self.command, self.retries = stamp_ns, False, None, 0
            self.answered_at = None
        self.sent_at = now

    def on_detections(self, stamp_ns: int, now: float) -> None:
        if stamp_ns == self.stamp_ns:
            self.detected = True
            self._maybe_answered(now)

    def on_command(self, source_stamp_ns: int, command: Command, now: float) -> None:
        if source_stamp_ns == self.stamp_ns:
            self.command = command
            self._maybe_answered(now)

    def on_hub(self, applied_power: int) -> None:
        self.applied_power = int(applied_power)

    def _maybe_answered(self, now: float) -> None:
        if self.answered_at is None and self.detected and (self.command is not None or not self.wait_for_command):
            self.answered_at = now
            self.answered_any = True

    def hub_matches(self) -> bool:
        if not self.wait_for_hub or self.command is None or self.applied_power is None:
            return True  # no hub in the graph (it never spoke): nothing to wait for
        return self.applied_power == self.command.applied

    def decide(self, now: float) -> str:
        """'wait', 'step' (answered: move on) or 'resend' (publish the same frame again)."""
        if self.stamp_ns is None:
            return 'step'
        if self.answered_at is not None:
            if self.hub_matches():
                return 'step'
            if now - self.answered_at >= self.hub_grace_s:
                self.hub_mismatches += 1
                return 'step'
            return 'wait'
        if now - self.sent_at < (self.retry_s if self.answered_any else self.startup_retry_s):
            return 'wait'
        if self.retries < self.max_retries or not self.answered_any:
            return 'resend'
        self.unanswered += 1
        return 'step'
