"""The detector's inference loop without ROS (train_fou.vision.worker): answers with the source header,
the newest-frame rule, bad frames and model faults counted and skipped, loading on its own thread."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.models import make_model
from helpers.waiting import wait_until
from train_fou.vision.detector import open_detector
from train_fou.vision.errors import ImageDecodeError, ModelNotFoundError
from train_fou.vision.frames import NewestSlot
from train_fou.vision.worker import DECODERS, InferenceWorker


def serialized_image(value, sec, nanosec=0, frame_id='camera', height=48, width=64) -> bytes:
    """A sensor_msgs/Image in CDR, as a subscription with raw=True receives it (rosbags: no rclpy)."""
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    header = types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                                          frame_id=frame_id)
    msg = types['sensor_msgs/msg/Image'](header=header, height=height, width=width, encoding='bgr8',
                                         is_bigendian=0, step=width * 3,
                                         data=np.full(height * width * 3, value, np.uint8))
    return bytes(store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))


def frame(sec, image=None):
    """What the fake decoder hands the worker: (fields, BGR image)."""
    image = np.full((48, 64, 3), 255, np.uint8) if image is None else image
    return SimpleNamespace(sec=sec, nanosec=0, frame_id='cam'), image


class FakeDetector:
    """Answers one detection per frame; `gate` (when set) holds each inference until the test releases it."""

    def __init__(self, fail_on=()):
        self.metadata = SimpleNamespace(imgsz=(32, 32))
        self.backend_name = 'fake'
        self.fail_on = set(fail_on)
        self.gate: threading.Semaphore | None = None
        self.inferring = threading.Event()
        self.seen: list[np.ndarray] = []
        self.closed = False

    def infer(self, tensor, info, image):
        self.inferring.set()
        if self.gate is not None:
            assert self.gate.acquire(timeout=10)
        self.seen.append(image)
        if int(image[0, 0, 0]) in self.fail_on:
            raise RuntimeError('boom')
        return [('sign', info.src_width)], 1.0, 0.5

    def close(self):
        self.closed = True


class Run:
    """A worker over a fake detector and, by default, a fake decoder (`submit` takes what `frame` returns)."""

    def __init__(self, detector=None, open_detector=None, decode=lambda data: data, on_result=None,
                 on_annotate=None, **kwargs):
        self.detector = detector or FakeDetector()
        self.results, self.problems, self.annotated = [], [], []
        self.worker = InferenceWorker(open_detector or (lambda: (self.detector, 'the fake')), decode,
                                      on_result or self.results.append, on_problem=self.problems.append,
                                      on_annotate=on_annotate or self.annotated.append, **kwargs)

    def __enter__(self):
        assert self.worker.start(10)
        return self

    def __exit__(self, *exc):
        self.worker.stop()

    def wait_results(self, n):
        assert wait_until(lambda: len(self.results) >= n, 10), self.results
        return self.results


@pytest.fixture
def model(tmp_path):
    return make_model(tmp_path, imgsz=(96, 128))


def test_every_frame_is_answered_with_its_header_detections_and_timings(model):
    results = []
    worker = InferenceWorker(lambda: open_detector(model), DECODERS['raw'], results.append)
    assert worker.start(30)
    try:
        assert worker.choice.backend.name == 'onnxruntime-cpu' and worker.detector.backend_name == 'onnxruntime-cpu'
        worker.submit(serialized_image(255, 7, 11, 'cam_front'))
        assert wait_until(lambda: results, 10)
        [result] = results
        assert (result.sec, result.nanosec, result.frame_id) == (7, 11, 'cam_front')
        assert result.image.shape == (48, 64, 3)
        assert [d.label for d in result.detections] == ['stop', 'danger']  # duplicate danger box suppressed
        assert result.preprocess_ms > 0 and result.inference_ms >= 0 and result.postprocess_ms >= 0
        worker.submit(serialized_image(0, 8))
        assert wait_until(lambda: len(results) == 2, 10)
        assert results[1].detections == []  # an empty answer is an answer too
        assert worker.counters.processed == 2 and worker.counters.received == 2
    finally:
        worker.stop()


def test_a_slow_model_drops_the_frames_replaced_while_it_runs_and_takes_the_newest():
    detector = FakeDetector()
    detector.gate = threading.Semaphore(0)
    with Run(detector) as run:
        run.worker.submit(frame(0))
        assert detector.inferring.wait(10)  # frame 0 is in the model
        for sec in range(1, 6):
            run.worker.submit(frame(sec))  # each replaces the one before: never queued
        detector.gate.release(2)
        results = run.wait_results(2)
        assert [r.sec for r in results] == [0, 5]
        assert [r.frames_dropped for r in results] == [4, 4]  # counted so far, when each was answered
        counters = run.worker.counters
        assert (counters.received, counters.dropped, counters.processed) == (6, 4, 2)
        assert len(detector.seen) == 2  # the dropped frames never reached the model


def test_a_malformed_frame_is_counted_reported_and_skipped_and_the_next_one_answered():
    def decode(data):
        if data == 'bad':
            raise ImageDecodeError('truncated message: data needs 9216 bytes')
        if data == 'weird':
            raise KeyError('no such field')
        return data
    with Run(decode=decode) as run:
        run.worker.submit('bad')
        run.worker.submit('weird')
        run.worker.submit(frame(3))
        assert [r.sec for r in run.wait_results(1)] == [3]
    counters = run.worker.counters
    assert (counters.bad_frames, counters.errors, counters.received) == (1, 1, 1)
    assert run.problems == ['skipping a malformed image: truncated message: data needs 9216 bytes',
                            "cannot read an image message: 'no such field'"]
    assert counters.last_problem == run.problems[-1]


def test_an_image_that_cannot_be_letterboxed_is_a_bad_frame():
    with Run() as run:
        run.worker.submit(frame(1, image=np.zeros((48, 64), np.float32)))
        # taken before the next one comes (else it is replaced in the mailbox, never letterboxed)
        assert wait_until(lambda: run.worker.counters.bad_frames == 1, 10)
        run.worker.submit(frame(2))
        assert [r.sec for r in run.wait_results(1)] == [2]
    assert run.worker.counters.bad_frames == 1
    assert run.problems[0].startswith('skipping an image that cannot be letterboxed: expected a uint8 HxWx3')


def test_a_model_fault_is_counted_as_an_error_and_the_worker_keeps_serving():
    with Run(FakeDetector(fail_on={7})) as run:
        run.worker.submit(frame(1, image=np.full((48, 64, 3), 7, np.uint8)))
        assert wait_until(lambda: run.worker.counters.errors == 1, 10)
        run.worker.submit(frame(2))
        assert [r.sec for r in run.wait_results(1)] == [2]
    assert run.problems == ['inference failed: boom'] and run.worker.counters.last_problem == 'inference failed: boom'


def test_latency_runs_from_submit_to_the_return_of_on_result_and_leaves_the_annotation_out():
    now = [100.0]
    results, annotated = [], []

    def publish(result):  # takes 0.25 s
        results.append(result)
        now[0] = 100.25

    def annotate(result):  # takes 9.75 s more
        annotated.append(result)
        now[0] = 110.0
    with Run(clock=lambda: now[0], on_result=publish, on_annotate=annotate) as run:
        run.worker.submit(frame(1))
        assert wait_until(lambda: annotated, 10)
        stats = run.worker.stats.snapshot(100.25)
    assert stats['latency_p50_ms'] == pytest.approx(250.0) and stats['last_s'] == 100.25
    assert annotated == results


def test_each_answered_frame_reports_its_clock_readings_in_order_after_on_result():
    ticks = iter(range(100, 1000))
    published = []
    with Run(clock=lambda: float(next(ticks)), on_result=lambda r: published.append(r.sec)) as run:
        timings = []
        run.worker.on_timing = lambda t: timings.append((t, list(published)))
        run.worker.submit(frame(4))
        assert wait_until(lambda: timings, 10)
    timing, published_then = timings[0]
    assert (timing.sec, timing.nanosec) == (4, 0) and published_then == [4]
    readings = [timing.received_s, timing.decoded_s, timing.taken_s, timing.letterboxed_s, timing.inferred_s,
                timing.published_s]
    assert readings == sorted(readings) and len(set(readings)) == 6


def test_the_detector_is_opened_and_closed_on_the_worker_thread():
    threads = {}
    detector = FakeDetector()
    detector.close = lambda: threads.setdefault('close', threading.current_thread().name)

    def opening():
        threads['open'] = threading.current_thread().name
        return detector, 'the fake'
    with Run(detector, open_detector=opening):
        pass
    assert threads == {'open': 'detector_inference', 'close': 'detector_inference'}


def test_a_load_error_is_raised_by_start_and_the_thread_has_ended(tmp_path):
    missing = tmp_path / 'signs.onnx'
    worker = InferenceWorker(lambda: open_detector(missing), DECODERS['raw'], lambda result: None)
    with pytest.raises(ModelNotFoundError, match=f'{missing}: model file not found'):
        worker.start(10)
    assert not worker._thread.is_alive() and worker.detector is None
    worker.stop()  # stopping a worker that never ran is fine


def test_start_gives_up_waiting_after_its_timeout_and_stop_ends_the_load_later():
    release = threading.Event()
    detector = FakeDetector()

    def slow_open():
        assert release.wait(10)
        return detector, 'the fake'
    worker = InferenceWorker(slow_open, lambda data: data, lambda result: None)
    assert worker.start(0.05) is False
    release.set()
    worker.stop()
    assert not worker._thread.is_alive() and detector.closed


def test_stop_closes_the_detector_and_may_be_called_twice():
    with Run() as run:
        pass
    run.worker.stop()
    assert run.detector.closed and not run.worker._thread.is_alive()


def test_newest_slot_counts_replaced_items_and_hands_out_the_newest():
    slot = NewestSlot()
    assert slot.put(1) is None and slot.put(2) == 1 and slot.put(3) == 2
    assert slot.take(0) == 3 and slot.dropped == 2 and slot.received == 3
    assert slot.take(0.01) is None
    slot.close()
    assert slot.take(None) is None
