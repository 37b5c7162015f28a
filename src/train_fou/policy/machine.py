"""The speed policy as a pure state machine: `step(state, observation, now, config) -> state`.

Time is passed in (seconds, any monotonic origin), never read. Observations
are a `Frame` (one processed image, possibly without signs), `Resume`,
`EmergencyStop`, or None (a clock tick). The reported mode is derived from
orthogonal facts with a fixed priority: a latch (danger sign or emergency
stop) > FAILSAFE (detections stale) > STOP_HOLD > LIMIT > CRUISE.

Signs are edge-triggered: a class acts when it becomes confirmed (seen in
`confirm_hits` of the last `confirm_window` frames, score and box height
above its gates) and must drop out of confirmation before it acts again, so a
stop sign that is still in view when the hold ends does not stop the train
forever, and `train/resume` in front of a danger sign does not re-latch at
once. A stop or danger class that has acted is *spent* until it has gone
unseen for `rearm_s`: a detection that flickers out of confirmation for a
frame or two and back does not stop the train a second time at the same sign.
Limit signs are never spent: the newest confirmed limit wins. After a
FAILSAFE the sign history starts afresh (spent classes stay spent).

Speed limits whose digits cannot be read (SPEC §5: "a speed limit that is
confirmed but whose value cannot be read applies the lower limit"). Motion
blur makes the detector see *a* speed limit whose 30 or 50 flickers from
frame to frame. The limit classes (every rule whose action is LIMIT) are
therefore also confirmed as a group: `confirm_hits` of the last
`confirm_window` frames show some limit class (each hit passing its own
class's gates). The *reading* of a confirmed group is the one limit class
that the newest `confirm_hits` limit sightings all show, and show alone; when
they disagree (30 then 50, or both in one frame) the limit is unreadable.
A limit acts on an edge, as every sign does: when the group becomes
confirmed, when a limit class becomes confirmed, or when the reading becomes
a class it was not. It applies the reading's limit, or, unreadable, the
lowest limit of every limit class configured. Why so:

- Why the newest sightings must agree, not merely one class reach
  `confirm_hits`: with 2 of 3, a steady 30/50/30/50 flicker confirms each
  class by itself in turn (30,50,30 holds two 30s; 50,30,50 two 50s), and
  the per-class rule alone would raise the limit to 50 every other frame on a
  sign the detector cannot read. Here it stays at the lower limit.
- Why the lowest of all configured limits, not of those seen: an unreadable
  sign's label is the detector's guess, so which classes happened to appear
  in a few frames says nothing reliable about the value; the lowest known
  limit is the only one never above the sign's. With the shipped two limit
  classes both choices are the same (an unreadable window has seen both), so
  this only matters once a third limit class exists, where it errs safe.
- Why a single contrary reading does not change a readable limit: 50,50,30
  stays 50 and 30,30,50 stays 30 (one sighting is not a confirmation, and
  nothing has an edge). A contrary class confirmed by itself (50,50,30,30)
  has an edge and acts: its own limit once its sightings are the newest, the
  lowest limit while the sightings still disagree.
- Why a limit read as unreadable may rise later: as the sign comes nearer
  its digits become readable (30,50,30,50,50: the lowest limit at the second
  frame, 50 at the fifth, once the newest two sightings are both 50). That is
  the same evidence an ordinary 50 sign confirms with, and the nearest view
  is the most reliable one; a jump up is never taken on disagreeing views.
  Likewise a new, readable sign after the unreadable one left the view acts
  as usual.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import IntEnum, unique

from train_fou.policy.config import Action, PolicyConfig


@unique
class Mode(IntEnum):
    """Controller states; values equal the SpeedCommand constants."""

    CRUISE = 0
    LIMIT = 1
    STOP_HOLD = 2
    DANGER_LATCHED = 3
    FAILSAFE = 4


BRAKING_MODES = frozenset({Mode.STOP_HOLD, Mode.DANGER_LATCHED, Mode.FAILSAFE})
#: Sign actions that are spent once acted on, until unseen for `rearm_s`.
REARMED_ACTIONS = frozenset({Action.STOP, Action.DANGER})


@dataclass(frozen=True)
class Detection:
    """One detected sign, reduced to what the policy needs."""

    label: str
    score: float
    height_px: float


@dataclass(frozen=True)
class Frame:
    """One processed image: its stamp and every detection (maybe none)."""

    stamp_ns: int
    image_height: int
    detections: tuple[Detection, ...] = ()


@dataclass(frozen=True)
class Resume:
    """train/resume: clear a danger or emergency-stop latch."""


@dataclass(frozen=True)
class EmergencyStop:
    """train/emergency_stop: brake and latch."""


Observation = Frame | Resume | EmergencyStop | None


@dataclass(frozen=True)
class State:
    """Everything the policy remembers. Start with `State()`: FAILSAFE until detections arrive."""

    mode: Mode = Mode.FAILSAFE
    power_pct: float = 0.0
    limit_pct: int | None = None
    hold_until: float | None = None
    danger_latched: bool = False
    estop_latched: bool = False
    last_frame_time: float | None = None
    last_time: float | None = None
    recent: tuple[frozenset[str], ...] = ()
    confirmed: frozenset[str] = frozenset()
    #: The limit classes together were confirmed at the last frame (an unreadable limit acts on its edge).
    limit_group: bool = False
    #: The limit class the newest `confirm_hits` limit sightings all showed alone; None: unreadable or none.
    limit_reading: str | None = None
    #: Classes that have acted, with the last time each was seen; re-armed after `rearm_s` unseen.
    spent: tuple[tuple[str, float], ...] = ()
    source_stamp_ns: int = 0
    reason: str = 'waiting for the first signs/detections'

    @property
    def brake(self) -> bool:
        return self.mode in BRAKING_MODES

    @property
    def power(self) -> int:
        """Integer power for the hub (never rounded up past the limit)."""
        return 0 if self.brake else int(math.floor(self.power_pct + 1e-6))

    def target_pct(self, config: PolicyConfig) -> int:
        """Power the train is allowed to reach in the current mode."""
        if self.brake:
            return 0
        if self.limit_pct is None:
            return config.cruise_power_pct
        return min(config.cruise_power_pct, self.limit_pct)


def qualifying_labels(frame: Frame, config: PolicyConfig) -> dict[str, Detection]:
    """Best detection per known class that passes its score and proximity gates."""
    best: dict[str, Detection] = {}
    height = max(int(frame.image_height), 1)
    for det in frame.detections:
        rule = config.signs.get(det.label)
        if rule is None or det.score < rule.min_score or det.height_px / height < rule.min_height_frac:
            continue
        if det.label not in best or det.score > best[det.label].score:
            best[det.label] = det
    return best


def _lowest_limit(config: PolicyConfig) -> int:
    """The lowest limit of every limit class configured: never above an unreadable sign's value."""
    return min(rule.limit_pct for rule in config.signs.values() if rule.action == Action.LIMIT)


def _limit_reading(recent: tuple[frozenset[str], ...],
                   config: PolicyConfig) -> tuple[bool, str | None, list[frozenset[str]]]:
    """(group confirmed, reading, the window's limit sightings) of the limit classes together.

    The group is confirmed when `confirm_hits` frames of the window show some limit
    class. Its reading is the one limit class that the newest `confirm_hits` of those
    frames all show, each alone; None when they disagree (unreadable) or too few.
    """
    limits = frozenset(label for label, rule in config.signs.items() if rule.action == Action.LIMIT)
    sightings = [labels & limits for labels in recent if labels & limits]
    if len(sightings) < config.confirm_hits:
        return False, None, sightings
    newest = set(sightings[-config.confirm_hits:])
    only = next(iter(newest))
    return True, (next(iter(only)) if len(newest) == 1 and len(only) == 1 else None), sightings


def _on_frame(state: State, frame: Frame, now: float, config: PolicyConfig) -> State:
    fresh = state.last_frame_time is not None and now - state.last_frame_time <= config.detections_timeout_s
    history = state.recent if fresh else ()
    confirmed_before = state.confirmed if fresh else frozenset()
    seen = qualifying_labels(frame, config)
    recent = (history + (frozenset(seen),))[-config.confirm_window:]
    confirmed = frozenset(label for label in config.signs
                          if sum(label in labels for labels in recent) >= config.confirm_hits)
    spent = {label: (now if label in seen else last_seen) for label, last_seen in state.spent
             if label in seen or now - last_seen < config.rearm_s}
    newly = confirmed - confirmed_before - set(spent)
    # Only braking signs are spent: for limits the newest confirmation wins (the nearest view
    # of a sign is the most reliable reading, and setting the same limit again is harmless).
    spent.update((label, now) for label in newly if config.signs[label].action in REARMED_ACTIONS)
    group, reading, limit_frames = _limit_reading(recent, config)
    group_before = state.limit_group if fresh else False
    reading_before = state.limit_reading if fresh else None
    state = dataclasses.replace(state, recent=recent, confirmed=confirmed, last_frame_time=now,
                                source_stamp_ns=frame.stamp_ns, spent=tuple(sorted(spent.items())),
                                limit_group=group, limit_reading=reading)

    def why(label: str) -> str:
        hits = sum(label in labels for labels in recent)
        det = seen.get(label)
        detail = f', score {det.score:.2f}, {det.height_px:.0f} px' if det else ''
        return f'{label} confirmed ({hits} of {len(recent)} frames{detail})'

    rules = {label: config.signs[label] for label in newly}
    reasons: list[str] = []  # most severe first
    for label, rule in rules.items():
        if rule.action == Action.DANGER:
            state = dataclasses.replace(state, danger_latched=True)
            reasons.insert(0, f'{why(label)}: brake, latched until train/resume')
    for label, rule in rules.items():
        if rule.action == Action.STOP and not state.danger_latched:
            state = dataclasses.replace(state, hold_until=now + config.stop_hold_s)
            reasons.append(f'{why(label)}: stop, hold {config.stop_hold_s:g} s')
    limit_edge = ((group and not group_before) or any(rule.action == Action.LIMIT for rule in rules.values())
                  or (reading is not None and reading != reading_before))
    if limit_edge and reading is not None:
        limit = config.signs[reading].limit_pct
        state = dataclasses.replace(state, limit_pct=limit)
        readable_now = '' if reading in newly or reading_before is not None else ', now readable'
        reasons.append(f'{why(reading)}{readable_now}: limit {limit} %')
    elif limit_edge:
        limit = _lowest_limit(config)
        state = dataclasses.replace(state, limit_pct=limit)
        by_pct = sorted({label for labels in limit_frames for label in labels},
                        key=lambda label: (config.signs[label].limit_pct, label))
        both = [label for label in by_pct if label in confirmed]
        if len(both) > 1:
            what = f'speed limits disagree ({" and ".join(both)} confirmed in the last {len(recent)} frames)'
        else:
            what = (f'speed limit confirmed but unreadable ({" or ".join(by_pct)}, '
                    f'{len(limit_frames)} of {len(recent)} frames)')
        reasons.append(f'{what}: lowest limit {limit} %')
    if reasons:
        state = dataclasses.replace(state, reason=reasons[0])
    return state


def step(state: State, observation: Observation, now: float, config: PolicyConfig) -> State:
    """Advance the policy to time `now` (seconds) with an optional observation."""
    dt = 0.0 if state.last_time is None else max(0.0, now - state.last_time)
    previous_mode = state.mode
    previous_reason = state.reason
    if isinstance(observation, Frame):
        state = _on_frame(state, observation, now, config)
    elif isinstance(observation, EmergencyStop):
        state = dataclasses.replace(state, estop_latched=True,
                                    reason='emergency stop (train/emergency_stop): brake, latched until train/resume')
    elif isinstance(observation, Resume) and (state.danger_latched or state.estop_latched):
        state = dataclasses.replace(state, danger_latched=False, estop_latched=False, hold_until=None,
                                    reason='resumed by train/resume')
    if state.hold_until is not None and now >= state.hold_until:
        state = dataclasses.replace(state, hold_until=None)
        if not (state.danger_latched or state.estop_latched):
            state = dataclasses.replace(state, reason='stop hold over, resuming')
    stale = state.last_frame_time is None or now - state.last_frame_time > config.detections_timeout_s

    if state.danger_latched or state.estop_latched:
        mode = Mode.DANGER_LATCHED
    elif stale:
        mode = Mode.FAILSAFE
    elif state.hold_until is not None:
        mode = Mode.STOP_HOLD
    elif state.limit_pct is not None:
        mode = Mode.LIMIT
    else:
        mode = Mode.CRUISE
    reason = state.reason
    if mode == Mode.FAILSAFE and previous_mode != Mode.FAILSAFE:
        since = 'never received' if state.last_frame_time is None else \
            f'none for {now - state.last_frame_time:.2f} s'
        reason = f'no signs/detections ({since}, timeout {config.detections_timeout_s:g} s): fail-safe brake'
    elif previous_mode == Mode.FAILSAFE and mode != Mode.FAILSAFE and reason == previous_reason:
        reason = 'fresh signs/detections again: fail-safe over'
    state = dataclasses.replace(state, mode=mode, reason=reason, last_time=now)

    target = state.target_pct(config)
    if previous_mode in BRAKING_MODES:
        power = 0.0  # the ramp starts when the brake is released, not before
    elif state.brake or target <= state.power_pct:
        power = float(target)
    else:
        power = min(float(target), state.power_pct + config.ramp_up_pct_per_s * dt)
    return dataclasses.replace(state, power_pct=power)
