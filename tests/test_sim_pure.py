"""The simulator's pure logic: dynamics, pinhole camera, scenarios, metrics (no ROS)."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train_fou.sim import dynamics
from train_fou.sim.camera import CameraParams, CameraRenderer, project
from train_fou.sim.episode import Episode
from train_fou.sim.errors import SimError
from train_fou.sim.metrics import Sample, evaluate, limit_violations, stop_holds, totals
from train_fou.sim.scenario import Scenario, default_scenario_path, draw, load_scenario

PARAMS = dynamics.TrainParams(max_speed_mps=1.0, motor_lag_s=0.4, brake_decel_mps2=1.5,
                              coast_decel_mps2=0.4)


def test_sim_package_never_imports_rclpy():
    code = ('import sys, train_fou.sim.scenario, train_fou.sim.episode, train_fou.sim.metrics; '
            'sys.exit(1 if any(m == "rclpy" or m.startswith("rclpy.") for m in sys.modules) else 0)')
    assert subprocess.run([sys.executable, '-c', code]).returncode == 0


def test_speed_settles_to_power_times_max_speed():
    state = dynamics.TrainState()
    for _ in range(100):
        state = dynamics.step(PARAMS, state, 60, 0.1)
    assert state.speed_mps == pytest.approx(0.6, abs=1e-3)


def test_brake_decelerates_at_the_brake_rate_and_stops():
    state = dynamics.TrainState(0.0, 0.6)
    state = dynamics.step(PARAMS, state, dynamics.BRAKE_POWER, 0.1)
    assert state.speed_mps == pytest.approx(0.45)
    for _ in range(10):
        state = dynamics.step(PARAMS, state, dynamics.BRAKE_POWER, 0.1)
    assert state.speed_mps == 0.0
    assert state.position_m == pytest.approx(dynamics.stopping_distance_m(PARAMS, 0.6), rel=0.02)


def test_float_coasts_slower_than_brake():
    coast = dynamics.step(PARAMS, dynamics.TrainState(0.0, 0.6), 0, 0.1)
    brake = dynamics.step(PARAMS, dynamics.TrainState(0.0, 0.6), dynamics.BRAKE_POWER, 0.1)
    assert brake.speed_mps < coast.speed_mps < 0.6


@given(v0=st.floats(0.0, 1.0), power=st.integers(-100, 127), dt=st.floats(0.01, 0.5))
@settings(max_examples=200, deadline=None)
def test_speed_stays_between_start_and_target(v0, power, dt):
    new = dynamics.step(PARAMS, dynamics.TrainState(0.0, v0), power, dt)
    target = 0.0 if power in (0, dynamics.BRAKE_POWER) or power > 100 else PARAMS.target_speed(power)
    assert min(v0, target) - 1e-9 <= new.speed_mps <= max(v0, target) + 1e-9
    assert new.position_m == pytest.approx(0.5 * (v0 + new.speed_mps) * dt)


def test_pinhole_puts_a_point_at_camera_height_on_the_horizon_row():
    cam = CameraParams(pitch_deg=0.0)
    p = project(cam, 2.0, 0.0, cam.height_m)
    assert (p.u, p.v) == pytest.approx(cam.centre)


def test_pinhole_size_is_inverse_to_distance():
    cam = CameraParams(pitch_deg=0.0)
    top1, bottom1 = project(cam, 1.0, 0.2, 0.15), project(cam, 1.0, 0.2, 0.10)
    top2, bottom2 = project(cam, 2.0, 0.2, 0.15), project(cam, 2.0, 0.2, 0.10)
    assert (bottom1.v - top1.v) == pytest.approx(2 * (bottom2.v - top2.v))
    assert (bottom1.v - top1.v) == pytest.approx(cam.focal_px * 0.05)


def test_pinhole_ignores_points_behind_the_camera():
    assert project(CameraParams(), -0.5, 0.0, 0.0) is None


def test_scenario_runs_are_reproducible_and_distinct():
    scenario = load_scenario(default_scenario_path())
    a, b, c = scenario.sample(7, 3), scenario.sample(7, 3), scenario.sample(7, 4)
    assert a == b
    assert a.track != c.track


def test_default_scenario_places_every_policy_sign_before_the_cliff():
    scenario = load_scenario(default_scenario_path())
    for run in range(20):
        world = scenario.sample(1, run)
        labels = [s.label for s in world.track.signs if s.label]
        assert labels == ['speed_limit_30', 'stop', 'speed_limit_50', 'danger']
        assert world.track.danger_sign.at_m < world.track.cliff_at_m


def test_draw_keeps_integer_ranges_integer_and_scalars_fixed():
    rng = np.random.default_rng(0)
    assert isinstance(draw(rng, [1, 3]), int)
    assert 0.5 <= draw(rng, [0.5, 0.7]) <= 0.7
    assert draw(rng, 4.2) == 4.2


def test_scenario_with_overlapping_signs_names_them():
    spec = {'track': {'length_m': 10.0},
            'signs': {'min_gap_m': 2.0, 'placed': [{'kind': 'stop', 'at_m': 3.0},
                                                    {'kind': 'speed_limit_30', 'at_m': 4.0}]}}
    with pytest.raises(SimError, match='3.00 m and 4.00 m'):
        Scenario('bad', spec).sample(1)


@pytest.mark.parametrize(('spec', 'problem'), [
    ({'fps': 0}, 'fps = 0: expected a number > 0 and <= 120'),
    ({'fps': float('nan')}, 'fps = nan: expected a number > 0 and <= 120'),
    ({'track': {'length_m': -8.0}}, 'track.length_m = -8: expected a number > 0 and <= 1000'),
    ({'train': {'motor_lag_s': 0.0}}, 'train.motor_lag_s = 0: expected a number > 0 and <= 60'),
    ({'camera': {'hfov_deg': [200, 210]}}, 'camera.hfov_deg = 20'),
    ({'signs': {'distractors': float('inf')}}, 'signs.distractors'),
])
def test_a_scenario_value_out_of_its_range_is_one_line_naming_it(spec, problem):
    """Not a ZeroDivisionError in the node's callback (fps 0), not a meaningless run (a negative track)."""
    with pytest.raises(SimError) as caught:
        Scenario('bad', {'signs': {'placed': []}, **spec}).sample(0)
    assert str(caught.value).startswith(f'scenario bad: {problem}') and '\n' not in str(caught.value)


def test_missing_scenario_file_is_one_clear_error(tmp_path):
    with pytest.raises(SimError, match='scenario file not found'):
        load_scenario(tmp_path / 'nope.yaml')


def _world(signs):
    scenario = Scenario('t', {'track': {'length_m': 10.0}, 'train': {'max_speed_mps': 1.0},
                              'signs': {'placed': signs, 'distractors': 0}, 'fps': 10})
    return scenario.sample(0)


def _samples(profile):
    """[(t, position, speed)] -> samples."""
    return [Sample(t, x, v, 0) for t, x, v in profile]


def test_speed_over_a_limit_after_the_reaction_distance_is_a_violation():
    world = _world([{'kind': 'speed_limit_30', 'at_m': 2.0}])
    fine = _samples([(0, 1.0, 0.6), (1, 2.3, 0.5), (2, 2.7, 0.3), (3, 5.0, 0.3)])
    bad = _samples([(0, 1.0, 0.6), (1, 2.7, 0.4), (2, 3.0, 0.3)])
    assert limit_violations(world, fine) == []
    [violation] = limit_violations(world, bad)
    assert violation['limit'] == 30 and violation['at_m'] == 2.7


def test_raising_speed_for_the_next_limit_sign_ahead_is_no_violation():
    world = _world([{'kind': 'speed_limit_30', 'at_m': 2.0}, {'kind': 'speed_limit_50', 'at_m': 6.0}])
    early = _samples([(0, 3.0, 0.3), (1, 4.5, 0.5), (2, 7.0, 0.5)])
    too_early = _samples([(0, 3.0, 0.3), (1, 3.5, 0.5)])
    assert limit_violations(world, early) == []
    [violation] = limit_violations(world, too_early)
    assert violation['limit'] == 30


def test_standing_still_three_seconds_at_a_stop_sign_is_a_hold():
    world = _world([{'kind': 'stop', 'at_m': 4.0}])
    approach = [(-0.1, 3.4, 0.3)]
    held = _samples(approach + [(t / 10, 3.5, 0.0) for t in range(31)] + [(3.2, 4.5, 0.2)])
    short = _samples(approach + [(t / 10, 3.5, 0.0) for t in range(10)] + [(1.1, 4.5, 0.2)])
    never_moved = _samples([(t / 10, 3.5, 0.0) for t in range(40)])
    assert stop_holds(world, held) == (1, 1)
    assert stop_holds(world, short) == (0, 1)
    assert stop_holds(world, never_moved) == (0, 0)


def test_a_train_past_the_edge_did_not_stop_before_the_cliff():
    world = _world([])
    result = evaluate(world, _samples([(0, 9.0, 0.6), (0.1, 10.06, 0.6)]), 'fell')
    assert not result.stopped_before_cliff and not result.ok
    assert result.margin_m == pytest.approx(-0.06)
    assert totals([result.as_dict()])['fell'] == 1


def _fake_sprite(kind, height_px, rng):
    w = max(2, height_px)
    img = np.zeros((2 * height_px, w, 4), np.uint8)
    img[:height_px] = (255, 0, 0, 255)
    return img, (0, 0, w, height_px)


def test_signs_grow_as_the_train_approaches():
    world = _world([{'kind': 'stop', 'at_m': 5.0}])
    episode = Episode(world, sprite_fn=_fake_sprite)
    heights = []
    for _ in range(40):
        image, truths = episode.frame()
        assert image.shape == (480, 640, 3) and image.dtype == np.uint8
        heights.append(truths[0].box[3] if truths else 0.0)
        episode.advance(100)
    visible = [h for h in heights if h > 0]
    assert len(visible) > 10
    assert visible == sorted(visible) and visible[-1] > 3 * visible[0]


def test_episode_ends_when_the_train_runs_off_the_table():
    world = _world([])
    episode = Episode(world, render=False)
    while not episode.done:
        episode.advance(100)
    result = episode.result()
    assert result.end_reason == 'fell' and not result.stopped_before_cliff


def test_episode_ends_stopped_after_standing_still():
    world = _world([])
    episode = Episode(world, render=False)
    for _ in range(20):
        episode.advance(60)
    while not episode.done:
        episode.advance(dynamics.BRAKE_POWER)
    result = episode.result()
    assert result.end_reason == 'stopped' and result.stopped_before_cliff
    assert result.margin_m == pytest.approx(10.0 - episode.state.position_m)
    assert math.isclose(result.time_s, episode.t_s)


def test_real_sign_renderer_draws_every_default_scenario_sign():
    world = load_scenario(default_scenario_path()).sample(1, 0)
    episode = Episode(world)
    image, truths = episode.frame()
    assert {t.kind for t in truths} <= {s.kind for s in world.track.signs}
    assert image.std() > 5


#: A pixel "changed" when a channel differs from the sign-free frame by more than this (both frames
#: share the background, light, contrast and noise, so unchanged pixels differ by 0).
CHANGED_LEVELS = 6
#: Share of a ground-truth box the sign must change: the face fills at least half of its box (a
#: triangle half, a disc 0.79); boxes cut by the image border keep less of their face (measured on
#: the default scenario: 0.52 and more for boxes at least half visible, 0.21 and more for all).
MIN_CHANGED_SHARE = 0.3
MIN_CHANGED_SHARE_CUT = 0.1


def _with_and_without_signs(world, positions, frame_index=3):
    """(frame, the same frame rendered from a track without signs, ground truth) at each position."""
    signed = CameraRenderer(world.camera, world.track, world.look)
    bare = CameraRenderer(world.camera, dataclasses.replace(world.track, signs=()), world.look)
    for position in positions:
        image, truths = signed.render(position, frame_index)
        clean, no_truths = bare.render(position, frame_index)
        assert no_truths == []
        yield image, clean, truths


def _changed(image, clean):
    return np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2) > CHANGED_LEVELS


def _box_pixels(changed, box):
    x, y, w, h = box
    return changed[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))]


def test_the_camera_draws_a_sign_under_every_ground_truth_box():
    """Each box the simulator reports (the labels of simview, the oracle's detections) lies on pixels
    its sign changed; a box is never reported for a sign that is not drawn."""
    scenario = load_scenario(default_scenario_path())
    boxes = 0
    for run in range(2):
        world = scenario.sample(1, run)
        positions = np.linspace(0.0, world.track.cliff_at_m - 0.3, 6)
        for image, clean, truths in _with_and_without_signs(world, positions):
            changed = _changed(image, clean)
            inside = np.zeros(changed.shape, bool)
            for truth in truths:
                share = float(_box_pixels(changed, truth.box).mean())
                least = MIN_CHANGED_SHARE if truth.visible_fraction >= 0.5 else MIN_CHANGED_SHARE_CUT
                assert share >= least, (run, truth)
                x, y, w, h = truth.box
                inside[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
                boxes += 1
            assert changed[~inside].mean() < 0.05   # only the signs (and their poles) differ
    assert boxes > 20, boxes


def test_default_scenario_is_winnable_with_a_perfect_detector():
    """The policy on true boxes: stops before the cliff, obeys limits, holds at stops (10 seeds)."""
    from train_fou.paths import config_path
    from train_fou.policy import load_policy
    from train_fou.sim.drive import drive

    config = load_policy(config_path('policy.yaml'))
    scenario = load_scenario(default_scenario_path())
    for run in range(10):
        episode = Episode(scenario.sample(11, run))
        drive(episode, config)
        result = episode.result()
        assert result.ok, result.as_dict()
        assert 0.5 < result.margin_m < 6.0


def test_truths_without_rendering_match_the_rendered_boxes():
    world = load_scenario(default_scenario_path()).sample(1, 0)
    episode = Episode(world)
    for _ in range(30):
        episode.advance(60)
    _image, rendered = episode.frame()
    assert episode.truths() == rendered and rendered


def test_a_train_at_rest_far_before_the_danger_sign_stopped_short():
    world = _world([{'kind': 'danger', 'at_m': 8.0}])
    short = evaluate(world, _samples([(0, 0.5, 0.2), (1, 1.0, 0.0)]), 'stopped')
    fine = evaluate(world, _samples([(0, 6.5, 0.2), (1, 7.0, 0.0)]), 'stopped')
    assert short.stopped_before_cliff and short.stopped_short and not short.ok
    assert fine.ok and not fine.stopped_short and fine.danger_sign_distance_m == pytest.approx(1.0)
    assert totals([short.as_dict(), fine.as_dict()])['stopped_short'] == 1
