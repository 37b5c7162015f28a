"""The speed policy state machine: every transition, table-driven, plus hypothesis properties."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train_fou.paths import config_path
from train_fou.policy import (Action, Detection, EmergencyStop, Frame, Mode, PolicyConfig, PolicyConfigError,
                              Resume, SignRule, State, load_policy, policy_from_mapping, step)

CONFIG = PolicyConfig()  # cruise 60, ramp 40 %/s, 2 of 3, hold 3 s, timeout 0.5 s
H = 480


def frame(*labels, score=0.9, height_px=40.0, stamp_ns=0):
    return Frame(stamp_ns, H, tuple(Detection(label, score, height_px) for label in labels))


def run(script, config=CONFIG, state=None):
    """script: [(t, observation)], observation None = clock tick. Returns the final state."""
    state = state or State()
    for t, obs in script:
        state = step(state, obs, t, config)
    return state


def frames(t0, t1, *labels, dt=0.1, **kw):
    """A frame every dt from t0 (inclusive) to t1 (exclusive)."""
    n = round((t1 - t0) / dt)
    return [(round(t0 + i * dt, 6), frame(*labels, **kw)) for i in range(n)]


# (name, script, expected mode, expected power, expected limit)
TRANSITIONS = [
    ('start: no detections yet is FAILSAFE',
     [(0.0, None)], Mode.FAILSAFE, 0, None),
    ('FAILSAFE -> CRUISE on the first detections message, power starts at 0',
     [(0.0, None), (0.1, frame())], Mode.CRUISE, 0, None),
    ('CRUISE ramps at 40 %/s: 1 s of frames gives 40',
     frames(0.0, 1.1), Mode.CRUISE, 40, None),
    ('CRUISE ramp stops at cruise power 60',
     frames(0.0, 3.0), Mode.CRUISE, 60, None),
    ('one sighting is not a confirmation',
     frames(0.0, 3.0) + [(3.0, frame('speed_limit_30')), (3.1, frame())], Mode.CRUISE, 60, None),
    ('2 of 3 frames confirm: CRUISE -> LIMIT, power drops at once',
     frames(0.0, 3.0) + [(3.0, frame('speed_limit_30')), (3.1, frame()), (3.2, frame('speed_limit_30'))],
     Mode.LIMIT, 30, 30),
    ('hits 3 frames apart are outside the window of 3',
     frames(0.0, 3.0) + [(3.0, frame('speed_limit_30')), (3.1, frame()), (3.2, frame()),
                         (3.3, frame('speed_limit_30'))], Mode.CRUISE, 60, None),
    ('proximity gate: 15 px of 480 (3 %) is too far',
     frames(0.0, 3.0) + frames(3.0, 3.5, 'speed_limit_30', height_px=15), Mode.CRUISE, 60, None),
    ('proximity gate: 20 px of 480 (4.2 %) is near enough',
     frames(0.0, 3.0) + frames(3.0, 3.3, 'speed_limit_30', height_px=20), Mode.LIMIT, 30, 30),
    ('score under the threshold does not count',
     frames(0.0, 3.0) + frames(3.0, 3.5, 'speed_limit_30', score=0.3), Mode.CRUISE, 60, None),
    ('unknown labels are ignored',
     frames(0.0, 3.0) + frames(3.0, 3.5, 'giraffe'), Mode.CRUISE, 60, None),
    ('a limit persists after the sign leaves the view',
     frames(0.0, 1.0) + frames(1.0, 1.3, 'speed_limit_30') + frames(1.3, 9.0), Mode.LIMIT, 30, 30),
    ('next limit sign replaces the limit; the rise to 50 is ramped',
     frames(0.0, 2.0, 'speed_limit_30') + frames(2.0, 2.2, 'speed_limit_50') + frames(2.2, 2.5),
     Mode.LIMIT, 46, 50),
    ('two limit signs in the same frames: the lower wins',
     frames(0.0, 3.0) + frames(3.0, 3.3, 'speed_limit_30', 'speed_limit_50'), Mode.LIMIT, 30, 30),
    ('a limit above cruise power leaves cruise power in charge',
     frames(0.0, 3.0, 'speed_limit_50'), Mode.LIMIT, 50, 50),
    ('stop confirmed: STOP_HOLD brakes',
     frames(0.0, 3.0) + frames(3.0, 3.2, 'stop'), Mode.STOP_HOLD, 0, None),
    ('stop holds for 3 s while the sign stays in view',
     frames(0.0, 3.0) + frames(3.0, 6.0, 'stop'), Mode.STOP_HOLD, 0, None),
    ('after the hold the train resumes (ramping) although the sign is still in view',
     frames(0.0, 3.0) + frames(3.0, 6.5, 'stop'), Mode.CRUISE, 12, None),
    ('stop resumes at the current limit',
     frames(0.0, 1.0, 'speed_limit_30') + frames(1.0, 1.2, 'stop') + frames(1.2, 7.0), Mode.LIMIT, 30, 30),
    ('danger confirmed: DANGER_LATCHED brakes',
     frames(0.0, 3.0) + frames(3.0, 3.2, 'danger'), Mode.DANGER_LATCHED, 0, None),
    ('danger stays latched long after the sign is gone',
     frames(0.0, 3.0) + frames(3.0, 3.2, 'danger') + frames(3.2, 30.0), Mode.DANGER_LATCHED, 0, None),
    ('train/resume clears the danger latch and the train ramps up again',
     frames(0.0, 3.0) + frames(3.0, 3.2, 'danger') + frames(3.2, 5.0) + [(5.0, Resume())] + frames(5.1, 5.6),
     Mode.CRUISE, 20, None),
    ('resume in front of the still visible danger sign does not re-latch (edge triggered)',
     frames(0.0, 0.2, 'danger') + [(0.2, Resume())] + frames(0.3, 0.6, 'danger'), Mode.CRUISE, 12, None),
    ('a stop sign flickering out of confirmation after the hold does not stop the train again',
     frames(0.0, 3.0) + frames(3.0, 6.5, 'stop') + frames(6.5, 6.8) + frames(6.8, 7.2, 'stop'),
     Mode.CRUISE, 40, None),
    ('the same stop sign acts again once unseen for rearm_s (2 s)',
     frames(0.0, 3.0) + frames(3.0, 6.5, 'stop') + frames(6.5, 8.6) + frames(8.6, 8.9, 'stop'),
     Mode.STOP_HOLD, 0, None),
    ('limit signs are never spent: a 30 re-confirmed after a 50 wins again (newest reading)',
     frames(0.0, 1.0) + frames(1.0, 1.3, 'speed_limit_30') + frames(1.3, 1.6, 'speed_limit_50')
     + frames(1.6, 1.9, 'speed_limit_30'), Mode.LIMIT, 30, 30),
    ('danger re-seen after resume and unseen for rearm_s latches again',
     frames(0.0, 0.2, 'danger') + [(0.2, Resume())] + frames(0.3, 2.5) + frames(2.5, 2.8, 'danger'),
     Mode.DANGER_LATCHED, 0, None),
    ('danger outranks stop and limit in the same frames',
     frames(0.0, 3.0) + frames(3.0, 3.2, 'danger', 'stop', 'speed_limit_30'), Mode.DANGER_LATCHED, 0, 30),
    ('emergency stop latches',
     frames(0.0, 3.0) + [(3.0, EmergencyStop())] + frames(3.1, 10.0), Mode.DANGER_LATCHED, 0, None),
    ('resume clears the emergency stop',
     frames(0.0, 3.0) + [(3.0, EmergencyStop())] + frames(3.1, 4.0) + [(4.0, Resume())] + frames(4.1, 4.6),
     Mode.CRUISE, 20, None),
    ('resume without a latch changes nothing',
     frames(0.0, 1.0, 'speed_limit_30') + [(1.0, Resume())] + frames(1.1, 3.0), Mode.LIMIT, 30, 30),
    ('0.5 s without detections is not yet FAILSAFE',
     frames(0.0, 3.0) + [(3.4, None)], Mode.CRUISE, 60, None),
    ('more than 0.5 s without detections is FAILSAFE with power 0',
     frames(0.0, 3.0) + [(3.45, None)], Mode.FAILSAFE, 0, None),
    ('fresh detections end FAILSAFE; the limit survives; power ramps from 0',
     frames(0.0, 1.0, 'speed_limit_30') + [(2.0, None)] + frames(2.0, 2.5), Mode.LIMIT, 16, 30),
    ('FAILSAFE overrides a stop hold; the hold still ends on time',
     frames(0.0, 0.2, 'stop') + [(1.0, None)] + frames(3.2, 3.6), Mode.CRUISE, 12, None),
    ('a latch outranks FAILSAFE',
     frames(0.0, 0.2, 'danger') + [(5.0, None)], Mode.DANGER_LATCHED, 0, None),
    ('after FAILSAFE the sign history starts afresh: one old + one new sighting is no confirmation',
     frames(0.0, 1.0) + [(1.0, frame('speed_limit_30')), (1.6, None), (2.0, frame('speed_limit_30'))],
     Mode.CRUISE, 0, None),
]


@pytest.mark.parametrize(('script', 'mode', 'power', 'limit'),
                         [pytest.param(*row[1:], id=row[0]) for row in TRANSITIONS])
def test_transition(script, mode, power, limit):
    state = run(script)
    assert state.mode == mode, state.reason
    assert state.power == power
    assert state.brake == (mode in (Mode.STOP_HOLD, Mode.DANGER_LATCHED, Mode.FAILSAFE))
    assert state.limit_pct == limit


L30, L50 = 'speed_limit_30', 'speed_limit_50'


def signs(*items, t0=3.0, dt=0.1):
    """Cruise for 3 s, then one frame per item, dt apart: a label, a tuple of labels, None (no
    sign) or a ready Frame (for scores and heights)."""
    def as_frame(item):
        if isinstance(item, Frame):
            return item
        return frame() if item is None else frame(*((item,) if isinstance(item, str) else item))
    return frames(0.0, t0) + [(round(t0 + i * dt, 6), as_frame(item)) for i, item in enumerate(items)]


# (name, script, expected mode, expected limit, fragment of the reason)
LIMIT_READINGS = [
    ('30, 50: the limit classes together are confirmed, unreadable: the lower limit',
     signs(L30, L50), Mode.LIMIT, 30,
     'speed limit confirmed but unreadable (speed_limit_30 or speed_limit_50, 2 of 3 frames): lowest limit 30 %'),
    ('flicker 30/50/30 confirms LIMIT 30',
     signs(L30, L50, L30), Mode.LIMIT, 30, 'unreadable (speed_limit_30 or speed_limit_50, 3 of 3 frames)'),
    ('a steady 30/50 flicker stays at 30 (each class alone reaches 2 of 3 in turn)',
     signs(L30, L50, L30, L50, L30, L50, L30, L50), Mode.LIMIT, 30, 'unreadable'),
    ('50/50/30 confirms 50: one contrary sighting is no confirmation',
     signs(L50, L50, L30), Mode.LIMIT, 50, 'speed_limit_50 confirmed (2 of 3 frames, score 0.90, 40 px): limit 50 %'),
    ('30/30/50 confirms 30',
     signs(L30, L30, L50), Mode.LIMIT, 30, 'speed_limit_30 confirmed (2 of 3 frames, score 0.90, 40 px): limit 30 %'),
    ('50/30/50: 50 reaches 2 of 3 but the newest two disagree: the lower limit',
     signs(L50, L30, L50), Mode.LIMIT, 30, 'unreadable'),
    ('50/30/50/50: the newest two now read 50: 50',
     signs(L50, L30, L50, L50), Mode.LIMIT, 50, 'speed_limit_50 confirmed (2 of 3 frames, score 0.90, 40 px), '
                                                 'now readable: limit 50 %'),
    ('the sign comes nearer and its digits become readable: 30,50,30,50,50,50 -> 30, then 50',
     signs(L30, L50, L30, L50, L50, L50), Mode.LIMIT, 50, 'now readable: limit 50 %'),
    ('a 50 sign directly after a 30 sign: 50 once its two sightings are the newest',
     signs(L30, L30, L30, L50, L50), Mode.LIMIT, 50, 'speed_limit_50 confirmed (2 of 3 frames'),
    ('a 30 sign directly after a 50 sign: 30',
     signs(L50, L50, L30, L30), Mode.LIMIT, 30, 'speed_limit_30 confirmed (2 of 3 frames'),
    ('both classes in the same frames: both confirmed, the lower wins',
     signs((L30, L50), (L30, L50)), Mode.LIMIT, 30,
     'speed limits disagree (speed_limit_30 and speed_limit_50 confirmed in the last 3 frames): lowest limit 30 %'),
    ('a limit sighting under its score gate does not count toward the group',
     signs(L30, frame(L50, score=0.3), None), Mode.CRUISE, None, ''),
    ('a limit sighting under its proximity gate does not count toward the group',
     signs(frame(L50, height_px=15), L30, None), Mode.CRUISE, None, ''),
    ('sightings 3 frames apart are outside the window for the group too',
     signs(L30, None, None, L50), Mode.CRUISE, None, ''),
    ('a danger sign in the window still latches; the unreadable limit still applies',
     signs((L30, 'danger'), (L50, 'danger')), Mode.DANGER_LATCHED, 30, 'danger confirmed'),
    ('a single danger sighting between the limit sightings changes nothing',
     signs(L30, 'danger', L50), Mode.LIMIT, 30, 'unreadable'),
    ('a stop sign in the window still holds; the unreadable limit still applies',
     signs((L30, 'stop'), (L50, 'stop')), Mode.STOP_HOLD, 30, 'stop confirmed'),
    ('after the group confirmed 30 and the sign left the view, a new 50 sign confirms 50',
     signs(L30, L50, L30, None, None, None, None, L50, L50), Mode.LIMIT, 50,
     'speed_limit_50 confirmed (2 of 3 frames, score 0.90, 40 px): limit 50 %'),
    ('the unreadable limit persists after the sign leaves the view',
     signs(L30, L50, *([None] * 20)), Mode.LIMIT, 30, 'unreadable'),
    ('after FAILSAFE the limit sightings start afresh: one old 30 + one new 50 is no confirmation',
     frames(0.0, 1.0) + [(1.0, frame(L30)), (1.6, None), (2.0, frame(L50))], Mode.CRUISE, None, ''),
]


@pytest.mark.parametrize(('script', 'mode', 'limit', 'reason'),
                         [pytest.param(*row[1:], id=row[0]) for row in LIMIT_READINGS])
def test_limit_reading(script, mode, limit, reason):
    state = run(script)
    assert state.mode == mode, state.reason
    assert state.limit_pct == limit
    assert reason in state.reason
    if limit is not None and not state.brake:
        assert state.power <= limit


def test_flicker_never_raises_the_power_above_the_lower_limit():
    state = run(frames(0.0, 3.0))
    for i in range(30):
        state = step(state, frame(L30 if i % 2 else L50), 3.0 + i * 0.1, CONFIG)
        if i >= 1:
            assert state.limit_pct == 30 and state.power <= 30, (i, state.reason)


def test_each_hit_must_pass_its_own_class_gates_to_count_for_the_group():
    config = CONFIG.replace_sign(L50, min_score=0.95)
    assert run(signs(L30, L50, None), config=config).limit_pct is None
    assert run(signs(L30, frame(L50, score=0.96)), config=config).limit_pct == 30


def test_unreadable_limit_is_the_lowest_of_every_limit_class_configured():
    """A 50/70 flicker of an unreadable sign may be a 30: the lowest limit the policy knows."""
    config = CONFIG.replace(signs=dict(CONFIG.signs, speed_limit_70=SignRule(Action.LIMIT, limit_pct=70)))
    state = run(signs(L50, 'speed_limit_70'), config=config)
    assert state.limit_pct == 30
    assert 'unreadable (speed_limit_50 or speed_limit_70, 2 of 3 frames): lowest limit 30 %' in state.reason
    assert run(signs('speed_limit_70', 'speed_limit_70'), config=config).limit_pct == 70


def test_a_readable_limit_stays_readable_under_a_wider_window():
    config = CONFIG.replace(confirm_hits=3, confirm_window=5)
    assert run(signs(L50, None, L50, L50), config=config).limit_pct == 50
    assert run(signs(L50, L30, L50, L50), config=config).limit_pct == 30   # newest 3 disagree
    assert run(signs(L50, L30, L50, L50, L50), config=config).limit_pct == 50


def test_confirmation_reason_names_the_sign_and_the_evidence():
    state = run(frames(0.0, 3.0) + frames(3.0, 3.2, 'speed_limit_30', score=0.91, height_px=42))
    assert state.reason == 'speed_limit_30 confirmed (2 of 3 frames, score 0.91, 42 px): limit 30 %'


def test_failsafe_reason_says_how_long_detections_were_missing():
    state = run(frames(0.0, 1.0) + [(1.5, None)])
    assert state.reason.startswith('no signs/detections (none for 0.60 s, timeout 0.5 s)')
    assert run([(2.0, frame())], state=state).reason == 'fresh signs/detections again: fail-safe over'


def test_source_stamp_is_the_newest_frame_behind_the_decision():
    state = run([(0.0, frame(stamp_ns=111)), (0.1, frame(stamp_ns=222)), (0.15, None)])
    assert state.source_stamp_ns == 222


def test_changed_confirmation_rule_applies_to_next_frames():
    config = CONFIG.replace(confirm_hits=1, confirm_window=1)
    assert run(frames(0.0, 1.0) + [(1.0, frame('stop'))], config=config).mode == Mode.STOP_HOLD


def test_per_class_threshold_change_is_validated():
    assert CONFIG.replace_sign('stop', min_score=0.8).signs['stop'].min_score == 0.8
    with pytest.raises(PolicyConfigError, match='signs.stop.min_score 1.5 outside 0..1'):
        CONFIG.replace_sign('stop', min_score=1.5)
    with pytest.raises(PolicyConfigError, match="unknown sign class 'yield'"):
        CONFIG.replace_sign('yield', min_score=0.5)


@pytest.mark.parametrize(('changes', 'problem'), [
    ({'rearm_s': -1.0}, 'rearm_s -1.0 must be >= 0'),
    ({'cruise_power_pct': 120}, 'cruise_power_pct 120 outside 0..100'),
    ({'confirm_hits': 4}, 'confirm_hits 4 must be 1..confirm_window (3)'),
    ({'ramp_up_pct_per_s': 0.0}, 'ramp_up_pct_per_s 0.0 must be a positive number'),
    ({'detections_timeout_s': -1.0}, 'detections_timeout_s -1.0 must be > 0'),
])
def test_invalid_config_is_refused_with_a_reason(changes, problem):
    with pytest.raises(PolicyConfigError, match=problem.replace('(', r'\(').replace(')', r'\)')):
        CONFIG.replace(**changes)


def test_shipped_policy_file_loads_and_lets_20_px_signs_through():
    config = load_policy(config_path('policy.yaml'))
    assert config.cruise_power_pct == 60
    assert set(config.signs) == {'speed_limit_30', 'speed_limit_50', 'stop', 'danger'}
    assert all(20 / 480 >= rule.min_height_frac for rule in config.signs.values())


@pytest.mark.parametrize(('data', 'problem'), [
    ({'cruise_power': 50}, 'unknown key'),
    ({'cruise_power_pct': 'fast'}, 'cruise_power_pct must be int'),
    ({'signs': {'stop': {'action': 'jump'}}}, "signs.stop.action 'jump'"),
    ({'signs': {'x': {'action': 'limit'}}}, 'signs.x.limit_pct None must be 0..100'),
    ({'signs': {'x': {'action': 'stop', 'colour': 'red'}}}, 'unknown key'),
])
def test_bad_policy_data_names_the_bad_value(data, problem):
    with pytest.raises(PolicyConfigError, match=problem):
        policy_from_mapping(data, origin='test.yaml')


def test_missing_policy_file_is_one_clear_error(tmp_path):
    with pytest.raises(PolicyConfigError, match='policy file not found'):
        load_policy(tmp_path / 'nope.yaml')


def test_pure_packages_never_import_rclpy_and_hub_imports_bleak_only_for_ble():
    import subprocess
    import sys
    code = ('import sys, train_fou.policy, train_fou.lwp3, train_fou.hub, train_fou.hub.ble; '
            'print("rclpy" in sys.modules, "bleak" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False False'


LABELS = st.sampled_from(['speed_limit_30', 'speed_limit_50', 'stop', 'danger', 'other'])
OBSERVATIONS = st.one_of(
    st.none(), st.just(Resume()), st.just(EmergencyStop()),
    st.builds(lambda labels, score, h: Frame(0, H, tuple(Detection(lab, score, h) for lab in labels)),
              st.lists(LABELS, max_size=3), st.floats(0, 1), st.floats(0, 200)))
CONFIGS = st.builds(lambda cruise, ramp, hits: PolicyConfig(cruise_power_pct=cruise, ramp_up_pct_per_s=ramp,
                                                            confirm_hits=hits),
                    st.integers(0, 100), st.floats(1, 500), st.integers(1, 3))


@settings(max_examples=400, deadline=None)
@given(CONFIGS, st.lists(st.tuples(st.floats(0, 0.7), OBSERVATIONS), max_size=60))
def test_power_never_exceeds_the_active_limit_and_is_zero_when_braking(config, script):
    state, t = State(), 0.0
    for dt, obs in script:
        t += dt
        before = state.power_pct
        state = step(state, obs, t, config)
        assert 0 <= state.power <= config.cruise_power_pct
        if state.limit_pct is not None:
            assert state.power <= state.limit_pct
        if state.brake:
            assert state.power == 0
        assert state.power_pct - before <= config.ramp_up_pct_per_s * dt + 1e-9


LIMIT_LABELS = st.sampled_from([(), (L30,), (L50,), (L30, L50), ('stop',), (L30, 'danger'), ('other',)])
WINDOWS = st.integers(1, 5).flatmap(lambda window: st.tuples(st.integers(1, window), st.just(window)))


@settings(max_examples=400, deadline=None)
@given(WINDOWS, st.lists(LIMIT_LABELS, max_size=40))
def test_a_limit_rises_only_on_agreeing_sightings_and_never_above_a_confirmed_class(window, sequence):
    """Whenever the limit changes to v: v is at most the highest limit confirmed by a class
    itself (the lowest limit when no class is), and v above the lowest limit only when the
    newest confirm_hits limit sightings all read exactly that limit."""
    hits, size = window
    config = CONFIG.replace(confirm_hits=hits, confirm_window=size)
    pct = {L30: 30, L50: 50}
    state, recent = run(frames(0.0, 1.0), config=config), []
    for i, labels in enumerate(sequence):
        before = state.limit_pct
        state = step(state, frame(*labels), 1.0 + i * 0.1, config)
        recent = (recent + [set(labels) & set(pct)])[-size:]
        if state.limit_pct == before:
            continue
        sightings = [seen for seen in recent if seen]
        assert len(sightings) >= hits
        confirmed = [pct[c] for c in pct if sum(c in seen for seen in recent) >= hits]
        assert state.limit_pct <= max(confirmed, default=30)
        if state.limit_pct != 30:
            newest = sightings[-hits:]
            assert all(seen == {L50} for seen in newest), (recent, state.reason)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.lists(st.integers(0, 1), min_size=2, max_size=30))
def test_a_30_50_flicker_with_gaps_never_applies_50(start_with_30, gaps):
    """Readings that alternate (maybe with a frame without signs between) never read as 50."""
    script, t, label = frames(0.0, 1.0), 1.0, L30 if start_with_30 else L50
    for gap in gaps:
        script += [(round(t + 0.1 * k, 6), frame()) for k in range(gap)] + [(round(t + 0.1 * gap, 6), frame(label))]
        t += 0.1 * (gap + 1)
        label = L50 if label == L30 else L30
    state = State()
    for when, obs in script:
        state = step(state, obs, when, CONFIG)
        assert state.limit_pct in (None, 30), state.reason
