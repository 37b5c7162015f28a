"""Judging a closed-loop run: did the train stop before the cliff, obey limits, hold at stops.

A run is a list of `Sample`s (one per simulation step). The judgement is pure
arithmetic on that list and the track, so it can be recomputed from a log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping, Sequence

from train_fou.sim.scenario import World
from train_fou.sim.track import LIMIT_KINDS, STOP_KIND

#: Below this the train counts as standing still.
STILL_MPS = 0.005
#: Speed tolerance over a limit (relative, plus an absolute floor for the motor's lag).
LIMIT_TOLERANCE = 0.05
LIMIT_TOLERANCE_MPS = 0.01
#: A train at rest further than this before the danger sign stopped short (a false stop).
STOPPED_SHORT_M = 3.0
#: A stop sign is honoured by standing still this long (the policy holds 3 s) ...
STOP_HOLD_MIN_S = 2.5
#: ... somewhere between this far before the sign and the reaction distance past it
#: (the policy confirms a 5 cm sign 1-1.5 m ahead and stops within a few cm).
STOP_WINDOW_BEFORE_M = 2.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    position_m: float
    speed_mps: float
    applied_power: int        #: the hub's applied power (127 = brake)
    commanded_power: int = 0  #: the controller's last command (for plots)
    brake: bool = False
    state: int = -1           #: SpeedCommand.state, −1 before the first command
    labels: tuple[str, ...] = ()  #: detections on the frame of this step


@dataclass
class RunResult:
    seed: list[int]
    end_reason: str               #: stopped, fell, timeout
    stopped_before_cliff: bool
    margin_m: float               #: cliff edge − final front position (negative: past the edge)
    final_position_m: float
    limit_violations: int
    stop_sign_holds: int
    stop_signs: int
    passed_stop_signs: int
    time_s: float
    frames: int
    violations: list[dict[str, Any]] = field(default_factory=list)
    world: dict[str, Any] = field(default_factory=dict)
    danger_sign_distance_m: float | None = None  #: danger sign − final front position

    @property
    def stopped_short(self) -> bool:
        """At rest long before the danger sign: something else (a false detection) stopped it."""
        return (self.end_reason == 'stopped' and self.danger_sign_distance_m is not None
                and self.danger_sign_distance_m > STOPPED_SHORT_M)

    @property
    def ok(self) -> bool:
        """Stopped before the cliff, past every stop sign, no violation, every stop held."""
        return (self.stopped_before_cliff and not self.stopped_short and self.limit_violations == 0
                and self.stop_sign_holds == self.stop_signs
                and self.passed_stop_signs == self.stop_signs)

    def as_dict(self) -> dict[str, Any]:
        return {
            'seed': self.seed, 'ok': self.ok, 'end_reason': self.end_reason,
            'stopped_before_cliff': self.stopped_before_cliff, 'margin_m': round(self.margin_m, 3),
            'final_position_m': round(self.final_position_m, 3),
            'limit_violations': self.limit_violations, 'violations': self.violations,
            'stop_sign_holds': self.stop_sign_holds, 'stop_signs': self.stop_signs,
            'passed_stop_signs': self.passed_stop_signs, 'stopped_short': self.stopped_short,
            'danger_sign_distance_m': (None if self.danger_sign_distance_m is None
                                       else round(self.danger_sign_distance_m, 3)),
            'time_s': round(self.time_s, 2), 'frames': self.frames, 'world': self.world,
        }


def limit_zones(world: World) -> list[tuple[float, float, int, float]]:
    """(from_m, to_m, allowed limit_pct, sign_at_m): where each speed cap must hold.

    A limit holds from `reaction_distance_m` past its sign. The policy acts on a
    sign as soon as it confirms it, up to `limit_lookahead_m` before reaching it,
    so in the stretch between that point and the next sign's reaction distance
    the more permissive of the two limits is allowed.
    """
    signs = world.track.signs_of(LIMIT_KINDS)
    zones = []
    for i, sign in enumerate(signs):
        start = sign.at_m + world.reaction_distance_m
        limit = LIMIT_KINDS[sign.kind]
        if i + 1 == len(signs):
            zones.append((start, float('inf'), limit, sign.at_m))
            continue
        following = signs[i + 1]
        change_at = max(start, following.at_m - world.limit_lookahead_m)
        zones.append((start, change_at, limit, sign.at_m))
        zones.append((change_at, following.at_m + world.reaction_distance_m,
                      max(limit, LIMIT_KINDS[following.kind]), following.at_m))
    return [zone for zone in zones if zone[1] > zone[0]]


def limit_violations(world: World, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """One entry per limit zone where the train went faster than the limit allows."""
    found = []
    for start, end, limit, sign_at in limit_zones(world):
        allowed = world.train.target_speed(limit) * (1 + LIMIT_TOLERANCE) + LIMIT_TOLERANCE_MPS
        worst = None
        for s in samples:
            if start <= s.position_m < end and s.speed_mps > allowed:
                if worst is None or s.speed_mps > worst.speed_mps:
                    worst = s
        if worst is not None:
            found.append({'limit': limit, 'sign_at_m': round(sign_at, 3), 'at_m': round(worst.position_m, 3),
                          't_s': round(worst.t_s, 2), 'speed_mps': round(worst.speed_mps, 3),
                          'allowed_mps': round(allowed, 3)})
    return found


def longest_still_s(samples: Sequence[Sample], from_m: float, to_m: float) -> float:
    """Longest uninterrupted standstill with the train's front between from_m and to_m.

    Standing at the start before ever moving does not count.
    """
    best = 0.0
    since = None
    moved = False
    for s in samples:
        moved = moved or s.speed_mps >= STILL_MPS
        if moved and s.speed_mps < STILL_MPS and from_m <= s.position_m <= to_m:
            since = s.t_s if since is None else since
            best = max(best, s.t_s - since)
        else:
            since = None
    return best


def stop_holds(world: World, samples: Sequence[Sample]) -> tuple[int, int]:
    """(stop signs held, stop signs passed)."""
    held = passed = 0
    final = samples[-1].position_m if samples else 0.0
    for sign in world.track.signs_of([STOP_KIND]):
        window = (sign.at_m - STOP_WINDOW_BEFORE_M, sign.at_m + world.reaction_distance_m)
        if longest_still_s(samples, *window) >= STOP_HOLD_MIN_S:
            held += 1
        if final > sign.at_m:
            passed += 1
    return held, passed


def evaluate(world: World, samples: Sequence[Sample], end_reason: str) -> RunResult:
    """Judge one run."""
    final = samples[-1].position_m if samples else 0.0
    cliff = world.track.cliff_at_m
    fell = end_reason == 'fell' or final >= cliff
    violations = limit_violations(world, samples)
    held, passed = stop_holds(world, samples)
    return RunResult(
        seed=list(world.seed), end_reason='fell' if fell else end_reason,
        stopped_before_cliff=(not fell) and end_reason == 'stopped',
        margin_m=cliff - final, final_position_m=final,
        limit_violations=len(violations), violations=violations,
        stop_sign_holds=held, stop_signs=len(world.track.signs_of([STOP_KIND])), passed_stop_signs=passed,
        time_s=samples[-1].t_s if samples else 0.0, frames=len(samples), world=world.describe(),
        danger_sign_distance_m=(world.track.danger_sign.at_m - final) if world.track.danger_sign else None)


def totals(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Campaign totals over per-run results (`RunResult.as_dict()` form)."""
    margins = [r['margin_m'] for r in results if r['stopped_before_cliff']]
    return {
        'runs': len(results),
        'ok': sum(bool(r['ok']) for r in results),
        'stopped_before_cliff': sum(bool(r['stopped_before_cliff']) for r in results),
        'fell': sum(r['end_reason'] == 'fell' for r in results),
        'stopped_short': sum(bool(r.get('stopped_short')) for r in results),
        'timeouts': sum(r['end_reason'] in ('timeout', 'abandoned') for r in results),
        'limit_violations': sum(r['limit_violations'] for r in results),
        'runs_with_limit_violations': sum(r['limit_violations'] > 0 for r in results),
        'stop_sign_holds': sum(r['stop_sign_holds'] for r in results),
        'stop_signs': sum(r['stop_signs'] for r in results),
        'margin_m_min': round(min(margins), 3) if margins else None,
        'margin_m_mean': round(sum(margins) / len(margins), 3) if margins else None,
        'sim_time_s': round(sum(r['time_s'] for r in results), 1),
        'frames': sum(r['frames'] for r in results),
    }
