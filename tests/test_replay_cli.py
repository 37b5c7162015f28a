"""`train-fou replay` end to end: a bag written by another tool (rosbags), the whole pipeline, --record, --report."""
from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers.models import make_model, write_image_bag  # noqa: E402

TRAIN_FOU = pathlib.Path(sys.executable).parent / 'train-fou'


def replay(*args, timeout=120):
    return subprocess.run([str(TRAIN_FOU), 'replay', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def replayed(tmp_path_factory):
    """One replay of a 30-frame rosbags-written bag with a tiny model, recorded and reported."""
    root = tmp_path_factory.mktemp('replay')
    model = make_model(root)
    bag = write_image_bag(root / 'camera_bag', count=30, period_s=0.1, size=(240, 320))
    out = root / 'out.mcap'
    done = replay(bag, '--model', model, '--rate', '0', '--record', out, '--report', root / 'report')
    return root, out, done


def test_replay_prints_state_changes_then_a_json_summary_last(replayed):
    _root, _out, done = replayed
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary['frames_published'] == summary['frames_processed'] == 30
    assert summary['frames_dropped'] == summary['frames_lost_before_node'] == 0
    assert summary['final_state'] == 'DANGER_LATCHED'   # the tiny model sees a danger sign in bright frames
    changes = [line for line in lines[:-1] if ' -> ' in line]
    assert len(changes) == summary['state_changes'] >= 2
    assert changes[-1].endswith('brake, latched until train/resume') and 'DANGER_LATCHED (brake)' in changes[-1]


def test_replay_record_is_an_mcap_bag_rosbags_can_read(replayed):
    from rosbags.highlevel import AnyReader

    _root, out, _done = replayed
    with AnyReader([out]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics['/signs/detections'] == 'train_fou/msg/SignDetectionArray'
        assert topics['/train/speed_command'] == 'train_fou/msg/SpeedCommand'
        assert topics['/hub/state'] == 'train_fou/msg/HubState'
        assert topics['/camera/image_raw'] == 'sensor_msgs/msg/Image'
        wanted = [c for c in reader.connections if c.topic == '/signs/detections']
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp.sec for c, _t, raw in reader.messages(wanted)]
    assert stamps == list(range(100, 130))  # every frame answered, stamps copied from the source images


def test_replay_report_has_plot_animation_and_summary(replayed):
    root, _out, done = replayed
    report = root / 'report'
    summary = json.loads((report / 'summary.json').read_text())
    assert summary['frames_processed'] == 30
    for name in ('replay.png', 'replay.gif', 'replay.mp4'):
        assert (report / name).stat().st_size > 1000, name


def test_replay_of_a_missing_bag_is_one_error_line(tmp_path):
    done = replay(tmp_path / 'nope.mcap')
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f'train-fou replay: error: {tmp_path / "nope.mcap"}: bag not found']


def test_replay_refuses_to_overwrite_a_recording(tmp_path):
    bag = write_image_bag(tmp_path / 'bag', count=2)
    existing = tmp_path / 'out.mcap'
    existing.write_bytes(b'keep')
    done = replay(bag, '--record', existing)
    assert done.returncode == 2 and 'exists already' in done.stderr
    assert existing.read_bytes() == b'keep'


SHIPPED_MODEL = pathlib.Path(sys.executable).parents[1] / 'share' / 'train_fou' / 'models' / 'signs.onnx'
needs_shipped_model = pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason='no shipped model yet')

#: `[   8.90 s] LIMIT -> DANGER_LATCHED (brake): danger confirmed (...)`: README, "What make demo prints"
STATE_LINE = re.compile(r'\[ *(?P<t>\d+\.\d\d) s\] (?P<before>\w+) -> (?P<after>\w+) '
                        r'\((?P<action>brake|power \d+)\): (?P<reason>.+)')


def replay_bag(name: str, rate: str):
    """Replay a bundled bag with the shipped model and the simulated hub: (state lines as dicts, summary)."""
    from train_fou.paths import share_dir

    bag = share_dir() / 'bags' / name
    done = replay(bag, '--rate', rate, '--hub', 'sim', timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary['frames_published'] == summary['frames_in_bag']
    if rate == '1':
        # at the recorded pace (10 fps) the detector keeps only the newest frame: a loaded machine may
        # skip a few, and each one is counted (the decisions below must still come out as documented)
        assert summary['frames_processed'] + summary['frames_dropped'] == summary['frames_published']
        assert summary['frames_dropped'] <= 0.05 * summary['frames_published'], summary
    else:
        assert summary['frames_processed'] == summary['frames_published']
    changes = [STATE_LINE.fullmatch(line) for line in lines[:-1]]
    assert all(changes) and len(changes) == summary['state_changes'], lines[:-1]
    changes = [dict(m.groupdict(), t=float(m['t'])) for m in changes]
    assert [c['after'] for c in changes] == summary['states']
    return changes, summary


def decisions(changes) -> list[str]:
    """The modes the controller went through, a repeated mode once (a limit confirmed again is a
    LIMIT -> LIMIT line), without a FAILSAFE after the first detections: the replay's controller
    counts the detections timeout on this machine's clock, and a stall of the machine longer than
    0.5 s is a (correct) fail-safe, not a decision about the bag. The first one is part of the promise."""
    modes = [changes[0]['after']] if changes else []
    for change in changes[1:]:
        if change['after'] != 'FAILSAFE' and change['after'] != modes[-1]:
            modes.append(change['after'])
    return modes


def limits(changes) -> list[int]:
    """The speed limits in force, in order, each change once (from the lines' `limit N %`)."""
    out: list[int] = []
    for change in changes:
        found = re.search(r'limit (\d+) %$', change['reason'])
        if found and (not out or out[-1] != int(found[1])):
            out.append(int(found[1]))
    return out


@needs_shipped_model
def test_demo_bag_replays_end_to_end_with_the_shipped_model():
    """`make demo` (README, "What make demo prints"): every frame of cliff_danger.mcap through the real
    detector; the controller goes FAILSAFE -> CRUISE -> LIMIT (the 50 sign) -> DANGER_LATCHED (the
    triangle before the cliff) and ends latched, braked; the summary is the last line."""
    changes, summary = replay_bag('cliff_danger.mcap', '0')
    assert decisions(changes) == ['FAILSAFE', 'CRUISE', 'LIMIT', 'DANGER_LATCHED'], changes
    assert summary['final_state'] == 'DANGER_LATCHED'
    danger = next(c for c in changes if c['after'] == 'DANGER_LATCHED')
    assert danger['action'] == 'brake' and danger['reason'].startswith('danger confirmed') and danger[
        'reason'].endswith('brake, latched until train/resume'), danger
    limit = next(c for c in changes if c['after'] == 'LIMIT')
    assert limit['t'] < danger['t'] and 'limit' in limit['reason'], limit


@needs_shipped_model
def test_limits_and_stop_bag_replays_its_documented_sequence_at_the_recorded_pace():
    """bags/README.md: a 30 limit, a stop sign (stop, hold stop_hold_s, resume at 30), a 50 limit, the
    danger triangle: CRUISE -> LIMIT (30) -> STOP_HOLD -> LIMIT (30) -> LIMIT (50) -> DANGER_LATCHED.
    At --rate 1 the hold (the controller's clock) spans its time in bag time too: stop_hold_s (3 s,
    config/policy.yaml) within 0.5 s (frames are 0.1 s apart; the player paces on this machine's clock)."""
    changes, summary = replay_bag('limits_and_stop.mcap', '1')
    assert decisions(changes) == ['FAILSAFE', 'CRUISE', 'LIMIT', 'STOP_HOLD', 'LIMIT', 'DANGER_LATCHED'], changes
    assert limits(changes) == [30, 50], changes
    assert summary['final_state'] == 'DANGER_LATCHED'
    stop = next(c for c in changes if c['after'] == 'STOP_HOLD')
    assert stop['action'] == 'brake' and stop['reason'].startswith('stop confirmed')
    over = next(c for c in changes if c['before'] == 'STOP_HOLD' and c['after'] != 'STOP_HOLD')
    assert over['reason'] == 'stop hold over, resuming' and over['after'] == 'LIMIT', over
    from train_fou.paths import config_path
    hold_s = yaml.safe_load(config_path('policy.yaml').read_text())['stop_hold_s']
    assert abs((over['t'] - stop['t']) - hold_s) <= 0.5, (stop, over)
    fifty = next(i for i, c in enumerate(changes) if c['reason'].endswith('limit 50 %'))
    assert changes.index(over) < fifty < len(changes) - 1   # the 50 after the stop, the danger last


@pytest.mark.parametrize(('args', 'line'), [
    (['--rate', 'nan'], '--rate nan: expected a number from 0 to 100 (1: as recorded, 0: each frame waits for '
                        'the detector)'),
    (['--rate', 'inf'], '--rate inf: expected a number from 0 to 100 (1: as recorded, 0: each frame waits for '
                        'the detector)'),
    (['--hub', 'ble'], '--hub ble needs the hub to drive: set hub_name (or hub_address) for hub_node in a --params '
                       'file (`train-fou hub scan` lists the hubs in range)'),
])
def test_replay_refuses_bad_options_with_one_line(args, line, capfd):
    from train_fou.cli import main
    from train_fou.paths import share_dir
    assert main(['replay', str(share_dir() / 'bags' / 'cliff_danger.mcap'), *args]) == 2
    assert capfd.readouterr().err.splitlines() == [f'train-fou replay: error: {line}']


def test_replay_with_a_ble_hub_that_never_connects_fails_before_the_bag_plays(tmp_path, capfd):
    """No Bluetooth here (or no such hub in range): one line with the hub's own error, exit 2, no summary."""
    from train_fou.cli import main
    from train_fou.paths import share_dir
    params = tmp_path / 'hub.yaml'
    params.write_text('hub_node:\n  ros__parameters:\n    hub_name: "No Such Train 7"\n    scan_timeout_s: 1.0\n')
    assert main(['replay', str(share_dir() / 'bags' / 'cliff_danger.mcap'), '--hub', 'ble',
                 '--params', str(params)]) == 2
    out, err = capfd.readouterr()
    assert out == ''
    assert err.splitlines()[-1].startswith('train-fou replay: error: hub not ready: ')
    assert 'Traceback' not in err
