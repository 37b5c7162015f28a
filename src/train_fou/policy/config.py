"""Speed policy configuration: a frozen dataclass, validated, loadable from config/policy.yaml."""
from __future__ import annotations

import dataclasses
import math
import pathlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from collections.abc import Mapping

from train_fou.policy.errors import PolicyConfigError


class Action(str, Enum):
    """What a confirmed sign does."""

    LIMIT = 'limit'     #: cap the power at `limit_pct` until the next limit sign
    STOP = 'stop'       #: brake, hold `stop_hold_s`, resume at the current limit
    DANGER = 'danger'   #: brake and latch until train/resume
    IGNORE = 'ignore'   #: a known class that does nothing


@dataclass(frozen=True)
class SignRule:
    """How one model class acts, and when a detection of it counts."""

    action: Action
    min_score: float = 0.5
    #: Proximity gate: box height / image height. 0.04 lets a 20 px sign of a 480 px frame through.
    min_height_frac: float = 0.04
    limit_pct: int | None = None

    def problems(self, label: str) -> list[str]:
        out = []
        if not 0.0 <= self.min_score <= 1.0:
            out.append(f'signs.{label}.min_score {self.min_score} outside 0..1')
        if not 0.0 <= self.min_height_frac <= 1.0:
            out.append(f'signs.{label}.min_height_frac {self.min_height_frac} outside 0..1')
        if self.action == Action.LIMIT:
            if self.limit_pct is None or not 0 <= self.limit_pct <= 100:
                out.append(f'signs.{label}.limit_pct {self.limit_pct} must be 0..100 for a limit sign')
        return out


def _default_signs() -> dict[str, SignRule]:
    return {
        'speed_limit_30': SignRule(Action.LIMIT, limit_pct=30),
        'speed_limit_50': SignRule(Action.LIMIT, limit_pct=50),
        'stop': SignRule(Action.STOP),
        'danger': SignRule(Action.DANGER),
    }


@dataclass(frozen=True)
class PolicyConfig:
    """Every tunable of the speed policy (SPEC §5); `validate()` says what is wrong."""

    cruise_power_pct: int = 60
    #: Power rises by at most this many percent per second; braking is immediate.
    ramp_up_pct_per_s: float = 40.0
    #: A sign acts when seen in `confirm_hits` of the last `confirm_window` frames. The limit
    #: classes are also confirmed together: a limit sign whose 30 or 50 cannot be read (the
    #: newest `confirm_hits` limit sightings disagree) applies the lowest limit (machine.py).
    confirm_hits: int = 2
    confirm_window: int = 3
    stop_hold_s: float = 3.0
    #: No signs/detections for this long -> FAILSAFE.
    detections_timeout_s: float = 0.5
    #: A stop or danger sign that has acted acts again only after its class went unseen
    #: this long (a flickering detection must not stop the train twice at the same sign).
    rearm_s: float = 2.0
    signs: Mapping[str, SignRule] = field(default_factory=_default_signs)

    def problems(self) -> list[str]:
        out = []
        if not 0 <= self.cruise_power_pct <= 100:
            out.append(f'cruise_power_pct {self.cruise_power_pct} outside 0..100')
        if not (math.isfinite(self.ramp_up_pct_per_s) and self.ramp_up_pct_per_s > 0):
            out.append(f'ramp_up_pct_per_s {self.ramp_up_pct_per_s} must be a positive number')
        if not 1 <= self.confirm_window <= 30:
            out.append(f'confirm_window {self.confirm_window} outside 1..30')
        if not 1 <= self.confirm_hits <= self.confirm_window:
            out.append(f'confirm_hits {self.confirm_hits} must be 1..confirm_window ({self.confirm_window})')
        if not (math.isfinite(self.stop_hold_s) and self.stop_hold_s >= 0):
            out.append(f'stop_hold_s {self.stop_hold_s} must be >= 0')
        if not (math.isfinite(self.detections_timeout_s) and self.detections_timeout_s > 0):
            out.append(f'detections_timeout_s {self.detections_timeout_s} must be > 0')
        if not (math.isfinite(self.rearm_s) and self.rearm_s >= 0):
            out.append(f'rearm_s {self.rearm_s} must be >= 0')
        for label, rule in self.signs.items():
            out.extend(rule.problems(label))
        return out

    def validate(self) -> PolicyConfig:
        """Return self, or raise PolicyConfigError listing every problem."""
        problems = self.problems()
        if problems:
            raise PolicyConfigError('; '.join(problems))
        return self

    def replace(self, **changes: Any) -> PolicyConfig:
        """A validated copy with top-level fields changed."""
        return dataclasses.replace(self, **changes).validate()

    def replace_sign(self, label: str, **changes: Any) -> PolicyConfig:
        """A validated copy with fields of one sign rule changed."""
        if label not in self.signs:
            raise PolicyConfigError(f'unknown sign class {label!r}; known: {", ".join(sorted(self.signs))}')
        signs = dict(self.signs)
        signs[label] = dataclasses.replace(signs[label], **changes)
        return dataclasses.replace(self, signs=signs).validate()


_TOP_LEVEL = {f.name: f.type for f in dataclasses.fields(PolicyConfig) if f.name != 'signs'}
_SIGN_FIELDS = {f.name for f in dataclasses.fields(SignRule)}


def policy_from_mapping(data: Mapping[str, Any], origin: str = 'policy') -> PolicyConfig:
    """Build and validate a PolicyConfig from plain data (a parsed policy.yaml)."""
    if not isinstance(data, Mapping):
        raise PolicyConfigError(f'{origin}: expected a mapping, got {type(data).__name__}')
    unknown = set(data) - set(_TOP_LEVEL) - {'signs'}
    if unknown:
        raise PolicyConfigError(f'{origin}: unknown key(s) {", ".join(sorted(unknown))}; '
                                f'known: {", ".join(sorted(_TOP_LEVEL) + ["signs"])}')
    defaults = PolicyConfig()
    values: dict[str, Any] = {}
    for key in _TOP_LEVEL:
        if key in data:
            kind = type(getattr(defaults, key))
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise PolicyConfigError(f'{origin}: {key} must be {kind.__name__}, got {value!r}')
            values[key] = kind(value)
    signs_data = data.get('signs', None)
    if signs_data is not None:
        if not isinstance(signs_data, Mapping):
            raise PolicyConfigError(f'{origin}: signs must map class labels to rules')
        signs = {}
        for label, rule in signs_data.items():
            if not isinstance(rule, Mapping):
                raise PolicyConfigError(f'{origin}: signs.{label} must be a mapping')
            bad = set(rule) - _SIGN_FIELDS
            if bad:
                raise PolicyConfigError(f'{origin}: signs.{label}: unknown key(s) {", ".join(sorted(bad))}; '
                                        f'known: {", ".join(sorted(_SIGN_FIELDS))}')
            try:
                action = Action(rule.get('action'))
            except ValueError:
                raise PolicyConfigError(f'{origin}: signs.{label}.action {rule.get("action")!r}; '
                                        f'supported: {", ".join(a.value for a in Action)}') from None
            try:
                signs[str(label)] = SignRule(
                    action,
                    min_score=float(rule.get('min_score', SignRule.min_score)),
                    min_height_frac=float(rule.get('min_height_frac', SignRule.min_height_frac)),
                    limit_pct=None if rule.get('limit_pct') is None else int(rule['limit_pct']))
            except (TypeError, ValueError) as err:
                raise PolicyConfigError(f'{origin}: signs.{label}: {err}') from err
        values['signs'] = signs
    try:
        return PolicyConfig(**values).validate()
    except PolicyConfigError as err:
        raise PolicyConfigError(f'{origin}: {err}') from err


def load_policy(path: str | pathlib.Path) -> PolicyConfig:
    """Read config/policy.yaml (or another policy file) with one clear error on any problem."""
    from train_fou.yamlio import read_yaml

    path = pathlib.Path(path)
    data = read_yaml(path, 'policy file', PolicyConfigError)
    return policy_from_mapping(data or {}, origin=str(path))
