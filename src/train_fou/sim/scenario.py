"""Scenarios: YAML files that describe a family of runs, sampled per run by seed.

A value written `[low, high]` is drawn uniformly for each run (integers when
both bounds are integers); a plain value is fixed. Every drawn value is checked
against LIMITS (a frame rate of 0, a negative track length or NaN is a SimError
naming the value, never a ZeroDivisionError or a meaningless run). Run `i` of a campaign with
seed `S` draws from `numpy.random.SeedSequence([S, i])`, so a run is the same
on every machine and does not depend on the runs before it.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from train_fou.sim.camera import CameraParams, Look
from train_fou.sim.dynamics import TrainParams
from train_fou.sim.errors import SimError
from train_fou.sim.track import DANGER_KIND, Sign, Track, label_of
from train_fou.yamlio import read_yaml


@dataclass(frozen=True)
class World:
    """Everything one run needs: sampled, immutable."""
    name: str
    seed: tuple[int, int]
    track: Track
    train: TrainParams
    camera: CameraParams
    look: Look
    start_speed_mps: float = 0.0
    fps: float = 10.0
    max_time_s: float = 90.0
    end_still_s: float = 5.0
    reaction_distance_m: float = 0.6
    limit_lookahead_m: float = 2.0

    @property
    def dt_s(self) -> float:
        return 1.0 / self.fps

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary of the sampled world (for results and reports)."""
        return {
            'scenario': self.name, 'seed': list(self.seed),
            'cliff_at_m': round(self.track.cliff_at_m, 3),
            'signs': [{'kind': s.kind, 'at_m': round(s.at_m, 3), 'lateral_m': round(s.lateral_m, 3)}
                      for s in self.track.signs],
            'max_speed_mps': round(self.train.max_speed_mps, 3),
        }


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: Mapping[str, Any] = field(repr=False)
    path: pathlib.Path | None = None

    def sample(self, seed: int, run_index: int = 0,
               distractor_kinds: Sequence[str] | None = None) -> World:
        """The world of run `run_index` of a campaign seeded with `seed`."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(run_index)]))
        try:
            return _sample_world(self, rng, (int(seed), int(run_index)), distractor_kinds)
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            where = self.path or self.name
            raise SimError(f'scenario {where}: {err}') from err


def load_scenario(path: str | pathlib.Path) -> Scenario:
    """Read a scenario YAML file; one clear error for a missing or malformed file."""
    path = pathlib.Path(path)
    data = read_yaml(path, 'scenario file', SimError)
    if not isinstance(data, Mapping):
        raise SimError(f'{path}: a scenario is a mapping, got {type(data).__name__}')
    return Scenario(name=str(data.get('name', path.stem)), spec=data, path=path)


def default_scenario_path() -> pathlib.Path:
    from train_fou.paths import config_path
    return config_path('scenarios/default.yaml')


def draw(rng: np.random.Generator, value: Any) -> Any:
    """`[low, high]` -> a uniform draw (an integer when both bounds are); a scalar as is."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f'a range is [low, high], got {value!r}')
        low, high = value
        if high < low:
            raise ValueError(f'range {value!r} has high < low')
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            return int(rng.integers(low, high + 1))
        return float(rng.uniform(low, high))
    return value


def _choice(rng: np.random.Generator, value: Any) -> Any:
    """A list of options -> one of them; a single value as is."""
    if isinstance(value, (list, tuple)):
        return value[int(rng.integers(0, len(value)))]
    return value


def _section(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = spec.get(name) or {}
    if not isinstance(section, Mapping):
        raise ValueError(f'`{name}` must be a mapping')
    return section


#: name -> (lowest, highest, lowest allowed itself) of every drawn value; NaN never passes.
LIMITS: dict[str, tuple[float, float, bool]] = {
    'fps': (0.0, 120.0, False),
    'max_time_s': (0.0, 3600.0, False),
    'end_still_s': (0.0, 3600.0, True),
    'reaction_distance_m': (0.0, 100.0, True),
    'limit_lookahead_m': (0.0, 100.0, True),
    'track.length_m': (0.0, 1000.0, False),
    'train.max_speed_mps': (0.0, 10.0, False),
    'train.motor_lag_s': (0.0, 60.0, False),
    'train.brake_decel_mps2': (0.0, 100.0, False),
    'train.coast_decel_mps2': (0.0, 100.0, True),
    'train.start_speed_mps': (0.0, 10.0, True),
    'camera.width': (16, 4096, True),
    'camera.height': (16, 4096, True),
    'camera.hfov_deg': (0.0, 179.0, False),
    'camera.height_m': (0.0, 10.0, False),
    'camera.pitch_deg': (-89.0, 89.0, True),
    'look.brightness': (0.0, 10.0, True),
    'look.contrast': (0.0, 10.0, True),
    'look.tint': (0.0, 10.0, True),
    'look.noise_std': (0.0, 255.0, True),
    'signs.lateral_m': (-10.0, 10.0, True),
    'signs.face_height_m': (0.0, 1.0, False),
    'signs.left_probability': (0.0, 1.0, True),
    'signs.min_gap_m': (0.0, 1000.0, True),
    'signs.distractors': (0, 1000, True),
    'signs.distractor_gap_m': (0.0, 1000.0, True),
}


def checked(name: str, raw: Any, kind: type = float) -> Any:
    """`raw` as `kind` when LIMITS allow it for `name`; ValueError naming the value and the range otherwise."""
    low, high, low_ok = LIMITS[name]
    value = float(raw)
    if not ((low <= value if low_ok else low < value) and value <= high):
        bound = '>=' if low_ok else '>'
        raise ValueError(f'{name} = {value:g}: expected a number {bound} {low:g} and <= {high:g}')
    return kind(value)


def _sample_world(scenario: Scenario, rng: np.random.Generator, seed: tuple[int, int],
                  distractor_kinds: Sequence[str] | None) -> World:
    spec = scenario.spec
    train_spec = _section(spec, 'train')

    def value(section: Mapping[str, Any], prefix: str, key: str, default: Any) -> float:
        return checked(f'{prefix}{key}', draw(rng, section.get(key, default)))

    train = TrainParams(
        max_speed_mps=value(train_spec, 'train.', 'max_speed_mps', 1.0),
        motor_lag_s=value(train_spec, 'train.', 'motor_lag_s', 0.4),
        brake_decel_mps2=value(train_spec, 'train.', 'brake_decel_mps2', 1.5),
        coast_decel_mps2=value(train_spec, 'train.', 'coast_decel_mps2', 0.4),
    )
    start_speed = value(train_spec, 'train.', 'start_speed_mps', 0.0)
    cam_spec = _section(spec, 'camera')
    camera = CameraParams(
        width=checked('camera.width', cam_spec.get('width', 640), int),
        height=checked('camera.height', cam_spec.get('height', 480), int),
        hfov_deg=value(cam_spec, 'camera.', 'hfov_deg', 62.0),
        height_m=value(cam_spec, 'camera.', 'height_m', 0.09),
        pitch_deg=value(cam_spec, 'camera.', 'pitch_deg', 3.0),
    )
    length = value(_section(spec, 'track'), 'track.', 'length_m', 12.0)
    signs = _sample_signs(_section(spec, 'signs'), rng, length, distractor_kinds)
    look_spec = _section(spec, 'look')
    tint = [value(look_spec, 'look.', 'tint', 1.0) for _ in range(3)]
    look = Look(
        brightness=value(look_spec, 'look.', 'brightness', 1.0),
        contrast=value(look_spec, 'look.', 'contrast', 1.0),
        tint_bgr=(tint[0], tint[1], tint[2]),
        noise_std=value(look_spec, 'look.', 'noise_std', 3.0),
        table_bgr=tuple(float(v) for v in rng.uniform(50, 170, 3)),
        backdrop=str(_choice(rng, look_spec.get('backdrop', 'room'))),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return World(
        name=scenario.name, seed=seed, track=Track(cliff_at_m=length, signs=tuple(signs)),
        train=train, camera=camera, look=look, start_speed_mps=start_speed,
        fps=checked('fps', spec.get('fps', 10)),
        max_time_s=checked('max_time_s', spec.get('max_time_s', 90)),
        end_still_s=checked('end_still_s', spec.get('end_still_s', 5.0)),
        reaction_distance_m=checked('reaction_distance_m', spec.get('reaction_distance_m', 0.6)),
        limit_lookahead_m=checked('limit_lookahead_m', spec.get('limit_lookahead_m', 2.0)),
    )


def _sample_signs(spec: Mapping[str, Any], rng: np.random.Generator, length: float,
                  distractor_kinds: Sequence[str] | None) -> list[Sign]:
    def make(kind: str, at_m: float) -> Sign:
        lateral = checked('signs.lateral_m', draw(rng, spec.get('lateral_m', 0.15)))
        if rng.random() < checked('signs.left_probability', spec.get('left_probability', 0.0)):
            lateral = -lateral
        return Sign(kind=kind, at_m=at_m, lateral_m=lateral,
                    face_height_m=checked('signs.face_height_m', draw(rng, spec.get('face_height_m', 0.05))),
                    appearance_seed=int(rng.integers(0, 2**31 - 1)))

    signs: list[Sign] = []
    for item in spec.get('placed') or []:
        if 'at_m' in item:
            at = float(draw(rng, item['at_m']))
        elif 'before_cliff_m' in item:
            at = length - float(draw(rng, item['before_cliff_m']))
        else:
            raise ValueError(f'sign {item!r} needs `at_m` or `before_cliff_m`')
        if not 0.0 < at < length:
            raise ValueError(f'sign {item["kind"]} at {at:.2f} m is off the {length:.2f} m track')
        signs.append(make(_render_kind(str(item['kind']), rng), at))
    min_gap = checked('signs.min_gap_m', spec.get('min_gap_m', 0.0))
    ordered = sorted(s.at_m for s in signs)
    for a, b in zip(ordered, ordered[1:]):
        if b - a < min_gap:
            raise ValueError(f'signs at {a:.2f} m and {b:.2f} m are closer than min_gap_m={min_gap}')
    count = checked('signs.distractors', draw(rng, spec.get('distractors', 0)), int)
    if count:
        kinds = list(distractor_kinds) if distractor_kinds is not None else _default_distractor_kinds()
        gap = checked('signs.distractor_gap_m', spec.get('distractor_gap_m', 1.0))
        for _ in range(count):
            for _attempt in range(50):
                at = float(rng.uniform(0.5, length - 0.3))
                if all(abs(at - s.at_m) >= gap for s in signs):
                    signs.append(make(str(kinds[int(rng.integers(0, len(kinds)))]), at))
                    break
    return signs


def _render_kind(kind: str, rng: np.random.Generator) -> str:
    """`danger` -> one of the renderer's warning triangles; other kinds as they are."""
    if kind != DANGER_KIND:
        return kind
    from train_fou.render.signs import CLASS_KINDS
    triangles = sorted(k for k in CLASS_KINDS if label_of(k) == DANGER_KIND)
    return triangles[int(rng.integers(0, len(triangles)))]


def _default_distractor_kinds() -> list[str]:
    from train_fou.render.signs import DISTRACTOR_KINDS
    return list(DISTRACTOR_KINDS)
