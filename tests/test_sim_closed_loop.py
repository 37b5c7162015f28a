"""`train-fou sim` over real DDS: the real controller and sim hub in the loop, results independent of speed."""
from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import pytest

from train_fou.executors import executor_kind
from train_fou.paths import config_path, default_model
from train_fou.policy import load_policy
from train_fou.sim.drive import drive
from train_fou.sim.episode import Episode
from train_fou.sim.scenario import default_scenario_path, load_scenario

TRAIN_FOU = pathlib.Path(sys.executable).parent / 'train-fou'


def sim(*args, timeout=240):
    done = subprocess.run([str(TRAIN_FOU), 'sim', '--json', *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert done.stdout, done.stderr[-3000:]
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def pure_result(seed: int, run: int) -> dict:
    episode = Episode(load_scenario(default_scenario_path()).sample(seed, run))
    drive(episode, load_policy(config_path('policy.yaml')))
    return episode.result().as_dict()


def test_closed_loop_over_dds_equals_the_pure_loop_frame_for_frame(tmp_path):
    """Lockstep on /clock: the nodes decide exactly what the pure policy decides on the same frames."""
    done, document = sim('--oracle', '--runs', '1', '--seed', '4', '--report', tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = document['runs']
    expected = pure_result(4, 0)
    for key in ('end_reason', 'margin_m', 'frames', 'time_s', 'limit_violations', 'stop_sign_holds', 'ok'):
        assert run[key] == expected[key], key
    assert run['ok'] and run['unanswered_frames'] == 0
    assert document['totals']['all_ok'] is True and document['totals']['runs'] == 1
    assert document['model'] is None  # no detector judged
    assert document['executor'] == executor_kind()  # events unless $TRAIN_FOU_EXECUTOR says otherwise
    for name in ('run_000.png', 'run_000.gif', 'run_000.mp4', 'summary.json'):
        assert (tmp_path / name).stat().st_size > 1000, name


@pytest.mark.skipif(not default_model().is_file(), reason='no shipped model yet')
def test_closed_loop_with_the_shipped_detector_stops_before_the_cliff():
    """The real detector in the loop: every frame answered, the train safe. How well it obeys the
    signs is the model's figure, measured by the 100-run campaign (README), not asserted here."""
    _done, document = sim('--runs', '1', '--seed', '1')
    [run] = document['runs']
    assert run['end_reason'] == 'stopped' and run['stopped_before_cliff'], run
    assert run['unanswered_frames'] == 0 and run['frames'] > 10
    # the results say which detector they judged
    assert document['model']['sha256'] == hashlib.sha256(default_model().read_bytes()).hexdigest()
    assert document['model']['imgsz'] == json.loads(default_model().with_suffix('.json').read_text())['imgsz']
    # and the file the detector opened: on this CPU, auto runs the INT8 copy when one is beside it
    int8 = default_model().with_name(default_model().stem + '.int8.onnx')
    [ran] = document['model']['ran']
    assert ran['path'] == str(int8 if int8.is_file() else default_model()) and ran['runs'] == 1
    assert ran['sha256'] == hashlib.sha256(pathlib.Path(ran['path']).read_bytes()).hexdigest()


def test_bad_scenario_is_one_error_line(tmp_path):
    done = subprocess.run([str(TRAIN_FOU), 'sim', '--scenario', str(tmp_path / 'nope.yaml')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f'train-fou sim: error: {tmp_path / "nope.yaml"}: scenario file not found']
