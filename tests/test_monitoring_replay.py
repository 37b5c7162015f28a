"""The bundled bag replayed with the Foxglove live view and the Prometheus metrics on (docs/monitoring.md).

One `train-fou replay bags/cliff_danger.mcap --foxglove P --metrics M` at the
recorded pace; meanwhile a WebSocket client that speaks Foxglove's protocol
subscribes to every channel it is offered, and a scraper GETs /metrics with
urllib. The viewer must get every channel with payloads that decode, and the
scrapes must show the frames being counted and the final state.
"""
from __future__ import annotations

import json
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from helpers.foxglove_client import CHANNELS, FoxgloveClient

TRAIN_FOU = pathlib.Path(sys.executable).parent / 'train-fou'
BAG = pathlib.Path(__file__).resolve().parents[1] / 'bags' / 'cliff_danger.mcap'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def sample(text: str, name: str, labels: str = '') -> float | None:
    match = re.search(rf'^{re.escape(name)}{re.escape(labels)} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


@pytest.fixture(scope='module')
def watched(tmp_path_factory):
    """(completed replay, its summary, the viewer, the scrapes [(t, text)])."""
    root = tmp_path_factory.mktemp('monitoring')
    local = root / 'local.yaml'  # this machine only
    local.write_text('foxglove_bridge:\n  ros__parameters:\n    host: 127.0.0.1\n'
                     'metrics_exporter:\n  ros__parameters:\n    host: 127.0.0.1\n')
    ws_port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen([str(TRAIN_FOU), 'replay', str(BAG), '--foxglove', str(ws_port), '--metrics',
                             str(metrics_port), '--params', str(local)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    scrapes: list[tuple[float, str]] = []
    done = threading.Event()

    def scraper():
        while not done.is_set() and proc.poll() is None:
            text = scrape(metrics_port)
            if text is not None:
                scrapes.append((time.monotonic(), text))
            done.wait(0.25)

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    try:
        with FoxgloveClient(f'ws://127.0.0.1:{ws_port}', connect_timeout_s=120) as viewer:
            viewer.receive(180, until=lambda _v: proc.poll() is not None)
        out, err = proc.communicate(timeout=120)
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
    thread.join(5)
    assert proc.returncode == 0, err[-3000:]
    return proc, json.loads(out.strip().splitlines()[-1]), viewer, scrapes


def test_the_replay_with_a_viewer_ends_as_without_one(watched):
    _proc, summary, _viewer, _scrapes = watched
    assert summary['final_state'] == 'DANGER_LATCHED'
    assert summary['foxglove']['images_sent'] > 0 and summary['foxglove']['bad_frames'] == 0
    assert summary['foxglove']['images_reencoded'] == 0  # the bag's 640 px JPEGs go out as recorded


def test_the_viewer_is_offered_every_channel_with_foxglove_schemas_and_gets_messages_on_each(watched):
    _proc, _summary, viewer, _scrapes = watched
    offered = {c['topic']: (c['encoding'], c['schemaName']) for c in viewer.channels.values()}
    assert offered == CHANNELS
    assert {topic: len(viewer.messages[topic]) > 0 for topic in CHANNELS} == dict.fromkeys(CHANNELS, True)


def test_camera_frames_are_throttled_jpegs_that_decode(watched):
    _proc, summary, viewer, _scrapes = watched
    images = viewer.decoded('/camera/image/compressed')
    assert len(images) == summary['foxglove']['images_sent']
    for image in images:
        assert image.format == 'jpeg'
        pixels = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
        assert pixels is not None and pixels.shape == (480, 640, 3)
    frame_ids = {d['header']['frame_id'] for d in viewer.decoded('/signs/detections')}
    assert {image.frame_id for image in images} == frame_ids  # the source image's frame_id, as the detections
    # at most image_max_rate_hz (5, with 10 % slack) over the bag's 11.5 s of 10 fps frames
    stamps = sorted(i.timestamp.seconds + i.timestamp.nanos / 1e9 for i in images)
    assert len(images) <= 5.5 * (stamps[-1] - stamps[0]) + 1
    assert len(images) >= 0.3 * 115 / 2  # and not starved: most of the 57 the limit allows


def test_annotations_reference_frames_the_viewer_got_and_draw_the_detected_signs(watched):
    _proc, _summary, viewer, _scrapes = watched
    image_stamps = {(i.timestamp.seconds, i.timestamp.nanos) for i in viewer.decoded('/camera/image/compressed')}
    detections = {(d['header']['stamp']['sec'], d['header']['stamp']['nsec']): d
                  for d in viewer.decoded('/signs/detections')}
    annotations = viewer.decoded('/signs/annotations')
    assert annotations
    drawn = 0
    for a in annotations:
        stamp = (a.timestamp.seconds, a.timestamp.nanos)
        assert stamp in image_stamps
        signs = detections[stamp]['detections']
        assert len(a.points) == len(a.texts) == len(signs)
        for box, text, sign in zip(a.points, a.texts, signs):
            assert (box.timestamp.seconds, box.timestamp.nanos) == stamp
            assert [(p.x, p.y) for p in box.points][0] == pytest.approx((sign['x_min'], sign['y_min']), abs=1e-3)
            assert text.text == f'{sign["label"]} {sign["score"]:.2f}'
        drawn += len(signs)
    assert drawn > 0


def test_speed_commands_hub_state_and_diagnostics_arrive_as_json(watched):
    _proc, _summary, viewer, _scrapes = watched
    commands = viewer.decoded('/train/speed_command')
    assert commands[-1]['state_name'] == 'DANGER_LATCHED' and commands[-1]['brake'] is True
    assert {'LIMIT', 'DANGER_LATCHED'} <= {c['state_name'] for c in commands}
    hub = viewer.decoded('/hub/state')
    assert any(h['connected'] for h in hub) and hub[0]['backend'] == 'sim'
    names = {s['name'] for d in viewer.decoded('/diagnostics') for s in d['status']}
    assert {'detector_node: sign detector', 'foxglove_bridge: live view'} <= names
    assert any(name.endswith(': LEGO hub') for name in names) and any(n.endswith(': speed policy') for n in names)


def test_the_viewers_bandwidth_is_a_few_hundred_kilobytes_a_second(watched):
    _proc, _summary, viewer, _scrapes = watched
    rate = viewer.bytes_received / (viewer.last_s - viewer.first_s)
    assert 10_000 < rate < 500_000, rate


def test_scrapes_during_the_replay_count_frames_and_show_the_final_state(watched):
    _proc, summary, _viewer, scrapes = watched
    frames = [sample(text, 'train_fou_detector_frames_total') for _t, text in scrapes]
    frames = [f for f in frames if f is not None]
    assert len(frames) >= 3 and frames[0] < frames[-1]
    assert frames == sorted(frames)
    last = scrapes[-1][1]
    assert frames[-1] >= summary['frames_processed'] - 20  # the last scrape came near the end
    assert sample(last, 'train_fou_controller_state', '{train_fou_controller_state="DANGER_LATCHED"}') == 1.0
    assert sample(last, 'train_fou_controller_brake') == 1.0
    assert sample(last, 'train_fou_hub_connected') == 1.0
    assert sample(last, 'train_fou_detector_processing_seconds_count') == frames[-1]
    assert sample(last, 'train_fou_detector_fps') > 0
    assert re.search(r'^train_fou_detector_info\{backend="onnxruntime-cpu",model="[^"]+"\} 1\.0$', last,
                     re.MULTILINE)
    assert re.search(r'^train_fou_hub_info\{address="[^"]*",backend="sim",name="[^"]*"\} 1\.0$', last,
                     re.MULTILINE)
