"""Scenarios: YAML files that describe a family of runs, sampled per run by seed.

A value written `[low, high]` is drawn uniformly for each run (integers when
both bounds are integers); a plain value is fixed. Run `i` of a campaign with
seed `S` draws from `numpy.random.SeedSequence([S, i])`, so a run is the same
on every machine and does not depend on the runs before it.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

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
        except (KeyError, TypeError, ValueError) as err:
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


def _sample_world(scenario: Scenario, rng: np.random.Generator, seed: tuple[int, int],
                  distractor_kinds: Sequence[str] | None) -> World:
    spec = scenario.spec
    train_spec = _section(spec, 'train')
    train = TrainParams(
        max_speed_mps=float(draw(rng, train_spec.get('max_speed_mps', 1.0))),
        motor_lag_s=float(draw(rng, train_spec.get('motor_lag_s', 0.4))),
        brake_decel_mps2=float(draw(rng, train_spec.get('brake_decel_mps2', 1.5))),
        coast_decel_mps2=float(draw(rng, train_spec.get('coast_decel_mps2', 0.4))),
    )
    start_speed = float(draw(rng, train_spec.get('start_speed_mps', 0.0)))
    cam_spec = _section(spec, 'camera')
    camera = CameraParams(
        width=int(cam_spec.get('width', 640)), height=int(cam_spec.get('height', 480)),
        hfov_deg=float(draw(rng, cam_spec.get('hfov_deg', 62.0))),
        height_m=float(draw(rng, cam_spec.get('height_m', 0.09))),
        pitch_deg=float(draw(rng, cam_spec.get('pitch_deg', 3.0))),
    )
    length = float(draw(rng, _section(spec, 'track').get('length_m', 12.0)))
    signs = _sample_signs(_section(spec, 'signs'), rng, length, distractor_kinds)
    look_spec = _section(spec, 'look')
    tint = [float(draw(rng, look_spec.get('tint', 1.0))) for _ in range(3)]
    look = Look(
        brightness=float(draw(rng, look_spec.get('brightness', 1.0))),
        contrast=float(draw(rng, look_spec.get('contrast', 1.0))),
        tint_bgr=(tint[0], tint[1], tint[2]),
        noise_std=float(draw(rng, look_spec.get('noise_std', 3.0))),
        table_bgr=tuple(float(v) for v in rng.uniform(50, 170, 3)),
        backdrop=str(_choice(rng, look_spec.get('backdrop', 'room'))),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    return World(
        name=scenario.name, seed=seed, track=Track(cliff_at_m=length, signs=tuple(signs)),
        train=train, camera=camera, look=look, start_speed_mps=start_speed,
        fps=float(spec.get('fps', 10)), max_time_s=float(spec.get('max_time_s', 90)),
        end_still_s=float(spec.get('end_still_s', 5.0)),
        reaction_distance_m=float(spec.get('reaction_distance_m', 0.6)),
        limit_lookahead_m=float(spec.get('limit_lookahead_m', 2.0)),
    )


def _sample_signs(spec: Mapping[str, Any], rng: np.random.Generator, length: float,
                  distractor_kinds: Sequence[str] | None) -> list[Sign]:
    def make(kind: str, at_m: float) -> Sign:
        lateral = float(draw(rng, spec.get('lateral_m', 0.15)))
        if rng.random() < float(spec.get('left_probability', 0.0)):
            lateral = -lateral
        return Sign(kind=kind, at_m=at_m, lateral_m=lateral,
                    face_height_m=float(draw(rng, spec.get('face_height_m', 0.05))),
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
    min_gap = float(spec.get('min_gap_m', 0.0))
    ordered = sorted(s.at_m for s in signs)
    for a, b in zip(ordered, ordered[1:]):
        if b - a < min_gap:
            raise ValueError(f'signs at {a:.2f} m and {b:.2f} m are closer than min_gap_m={min_gap}')
    count = int(draw(rng, spec.get('distractors', 0)))
    if count:
        kinds = list(distractor_kinds) if distractor_kinds is not None else _default_distractor_kinds()
        gap = float(spec.get('distractor_gap_m', 1.0))
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
