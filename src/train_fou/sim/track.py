"""Where things are along the track: signs beside it and the cliff at its end.

Positions are metres along the track from the train's start; the track is
straight, so a sign is fully described by its distance along the track, its
lateral offset (positive: right of the rails, seen from the train) and the
height of its face centre above the rails.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable

#: Detector classes the speed policy acts on. A sign's `kind` is the renderer's
#: kind (`danger_railway`, `no_entry`, ...); its `label` is the detector class.
LIMIT_KINDS = {'speed_limit_30': 30, 'speed_limit_50': 50}
STOP_KIND = 'stop'
DANGER_KIND = 'danger'


def label_of(kind: str) -> str | None:
    """The detector class a renderer kind belongs to; None for distractors."""
    if kind in LIMIT_KINDS or kind == STOP_KIND:
        return kind
    if kind == DANGER_KIND or kind.startswith(DANGER_KIND + '_'):
        return DANGER_KIND
    return None


@dataclass(frozen=True)
class Sign:
    """One sign beside the track."""
    kind: str
    at_m: float            #: distance along the track from the start
    lateral_m: float       #: offset from the track centre, + is right
    face_height_m: float   #: height of the face (the printed part; the pole is below it)
    appearance_seed: int   #: fixed per sign so its look does not flicker between frames

    @property
    def label(self) -> str | None:
        """Detector class of this sign (None: a distractor)."""
        return label_of(self.kind)


@dataclass(frozen=True)
class Track:
    """A straight track that ends at a cliff."""
    cliff_at_m: float
    signs: tuple[Sign, ...]
    gauge_m: float = 0.04          #: LEGO track gauge (rail centre to rail centre)
    sleeper_spacing_m: float = 0.064

    def __post_init__(self) -> None:
        object.__setattr__(self, 'signs', tuple(sorted(self.signs, key=lambda s: s.at_m)))

    def signs_of(self, labels: Iterable[str]) -> list[Sign]:
        """Signs whose detector class is one of `labels`, in track order."""
        wanted = set(labels)
        return [sign for sign in self.signs if sign.label in wanted]

    @property
    def danger_sign(self) -> Sign | None:
        """The last danger sign (the one before the cliff), if any."""
        dangers = self.signs_of([DANGER_KIND])
        return dangers[-1] if dangers else None

    def ahead(self, position_m: float, max_distance_m: float) -> list[Sign]:
        """Signs in front of the train within `max_distance_m`, far first (paint order)."""
        visible = [s for s in self.signs if 0.0 < s.at_m - position_m <= max_distance_m]
        return sorted(visible, key=lambda s: s.at_m - position_m, reverse=True)
