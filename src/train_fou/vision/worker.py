"""The detector's inference loop without ROS: serialized images in, newest first; detections out.

`InferenceWorker` owns one thread. The thread opens the detector (so it owns the
backend, and with TensorRT the CUDA context), then takes the newest frame from a
one-place mailbox, letterboxes it into its one reused tensor, runs the model and
hands the result to `on_result`. `submit` (the subscription's callback) only
reads the header and views the pixels in place (a JPEG is decoded there): a
frame that is replaced before inference is counted as dropped, never queued,
and costs no letterbox.

Why the letterbox runs on this thread, not in `submit`: right after a callback
the executor thread still has Python work of its own, which on a small CPU
competes with the model's thread pool; here the letterbox overlaps it instead
(figures: docs/performance.md).

A frame that cannot be decoded (ImageDecodeError) or letterboxed counts as a bad
frame; a fault of the model or backend, or any other failure to read a message,
as an error. Either is skipped, reported through `on_problem(message)` and kept
as `last_problem`, and the worker goes on with the next frame. Time comes from
`clock` (seconds): latency is `clock()` at `submit` to the return of `on_result`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from train_fou.vision.cdr import parse_compressed, parse_image
from train_fou.vision.errors import ImageDecodeError
from train_fou.vision.frames import NewestSlot, RollingStats
from train_fou.vision.images import decode_jpeg, image_from_raw
from train_fou.vision.postprocess import Detection
from train_fou.vision.preprocess import Letterboxer


def decode_raw(data) -> tuple[Any, np.ndarray]:
    """A serialized sensor_msgs/Image -> (its fields, the BGR pixels viewed in place for bgr8)."""
    fields = parse_image(data)
    return fields, image_from_raw(fields.encoding, fields.height, fields.width, fields.step, fields.data)


def decode_compressed(data) -> tuple[Any, np.ndarray]:
    """A serialized sensor_msgs/CompressedImage (JPEG) -> (its fields, the decoded BGR image)."""
    fields = parse_compressed(data)
    return fields, decode_jpeg(fields.data)


#: Input transport -> decoder: serialized message -> (fields with sec, nanosec, frame_id; BGR image).
DECODERS = {'raw': decode_raw, 'compressed': decode_compressed}


class _Pending(NamedTuple):
    """A decoded frame waiting for the model (the inference thread letterboxes it)."""

    fields: Any  # sec, nanosec, frame_id of the source header
    image: np.ndarray  # BGR (a view into the serialized message for bgr8)
    received_s: float  # clock() when submitted
    decoded_s: float  # clock() when it was put into the mailbox


class FrameTiming(NamedTuple):
    """`clock()` readings (seconds) along one answered frame, for a caller that shares the clock.

    Consecutive differences are the stages: decode (the callback), hand-off (mailbox ->
    inference thread), letterbox, detector.infer (inference, decoding, refiner), on_result
    (building and publishing the message).
    """

    sec: int
    nanosec: int
    received_s: float  # submit was called
    decoded_s: float  # the frame was in the mailbox
    taken_s: float  # the inference thread took it
    letterboxed_s: float
    inferred_s: float  # detector.infer returned
    published_s: float  # on_result returned


class InferenceResult(NamedTuple):
    """One processed frame: its source header, image and detections, timed per stage."""

    sec: int
    nanosec: int
    frame_id: str
    image: np.ndarray
    detections: list[Detection]
    preprocess_ms: float  # decode + letterbox
    inference_ms: float
    postprocess_ms: float
    frames_dropped: int  # so far, replaced in the mailbox before inference


@dataclass(frozen=True)
class WorkerCounters:
    received: int  # frames submitted (decoded)
    dropped: int  # replaced before inference
    processed: int  # results handed out
    bad_frames: int  # not readable or not letterboxable
    errors: int  # inference faults and unexpected decode failures
    last_problem: str


class InferenceWorker:
    """Mailbox, inference thread and counters between a subscription and a detections publisher.

    `open_detector()` -> (Detector, BackendChoice) runs on the inference thread; `decode` is one
    of DECODERS. `on_result(result)` publishes the detections (latency is measured when it
    returns); `on_annotate(result)`, when given, runs after that (drawing is not latency).
    """

    def __init__(self, open_detector: Callable[[], tuple[Any, Any]], decode: Callable[[Any], tuple[Any, np.ndarray]],
                 on_result: Callable[[InferenceResult], None],
                 on_problem: Callable[[str], None] | None = None,
                 on_annotate: Callable[[InferenceResult], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, thread_name: str = 'detector_inference') -> None:
        self._open = open_detector
        self._decode = decode
        self._on_result = on_result
        self._on_problem = on_problem
        self._on_annotate = on_annotate
        self.clock = clock
        self.stats = RollingStats()
        self._slot: NewestSlot[_Pending] = NewestSlot()
        self._lock = threading.Lock()  # counters are bumped by submit and the inference thread
        self._bad_frames = 0
        self._errors = 0
        self._last_problem = ''
        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self.detector = None  #: the loaded Detector (thresholds may be changed live), None before
        self.choice = None  #: the BackendChoice: which backend and why, None before
        #: called with each answered frame's FrameTiming after on_result (a bench's probe; None: off)
        self.on_timing: Callable[[FrameTiming], None] | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # --- life cycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float) -> bool:
        """Start the thread and wait for the detector: True once loaded, False after `timeout_s`.

        A load error is raised here (the thread has ended).
        """
        self._thread.start()
        if not self._ready.wait(timeout_s):
            return False
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the mailbox, let the thread finish its frame and close the detector; idempotent."""
        self._slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    # --- input --------------------------------------------------------------------------------
    def submit(self, serialized) -> None:
        """Decode the header, view the pixels and replace the waiting frame (never raises)."""
        received = self.clock()
        try:
            fields, image = self._decode(serialized)
        except ImageDecodeError as err:
            self._problem('bad_frames', f'skipping a malformed image: {err}')
            return
        except Exception as err:  # never let a frame take the caller (the executor) down
            self._problem('errors', f'cannot read an image message: {err}')
            return
        self._slot.put(_Pending(fields, image, received, self.clock()))
        time.sleep(0)  # hand the GIL to the inference thread now, not after the executor's next wait

    # --- what it has done ---------------------------------------------------------------------
    @property
    def counters(self) -> WorkerCounters:
        with self._lock:
            return WorkerCounters(self._slot.received, self._slot.dropped, self.stats.count,
                                  self._bad_frames, self._errors, self._last_problem)

    @property
    def frames_dropped(self) -> int:
        return self._slot.dropped

    # --- the inference thread -----------------------------------------------------------------
    def _problem(self, counter: str, message: str) -> None:
        with self._lock:
            if counter == 'bad_frames':
                self._bad_frames += 1
            else:
                self._errors += 1
            self._last_problem = message
        if self._on_problem is not None:
            self._on_problem(message)

    def _run(self) -> None:
        try:
            detector, choice = self._open()
        except BaseException as err:
            self._load_error = err
            self._ready.set()
            return
        # this thread's: one tensor in the backend's input type (uint8 on the CPU), reused every frame
        boxer = Letterboxer(detector.metadata.imgsz, getattr(detector, 'input_dtype', np.float32))
        self.detector, self.choice = detector, choice
        self._ready.set()
        try:
            while True:
                frame = self._slot.take(timeout_s=0.5)
                if frame is None:
                    if self._slot.closed:
                        return
                    continue
                self._process(detector, boxer, frame)
        finally:
            detector.close()

    def _process(self, detector, boxer: Letterboxer, frame: _Pending) -> None:
        clock = self.clock
        taken = clock()
        try:
            tensor, info = boxer(frame.image)
        except Exception as err:
            self._problem('bad_frames', f'skipping an image that cannot be letterboxed: {err}')
            return
        letterboxed = clock()
        preprocess_ms = (frame.decoded_s - frame.received_s + letterboxed - taken) * 1e3
        try:
            detections, inference_ms, postprocess_ms = detector.infer(tensor, info, frame.image)
        except Exception as err:  # a model/backend fault: report, skip the frame, keep serving
            self._problem('errors', f'inference failed: {err}')
            return
        inferred = clock()
        fields = frame.fields
        result = InferenceResult(fields.sec, fields.nanosec, fields.frame_id, frame.image, detections,
                                 preprocess_ms, inference_ms, postprocess_ms, self._slot.dropped)
        self._on_result(result)
        done = clock()
        self.stats.add(done, (done - frame.received_s) * 1e3)
        if self.on_timing is not None:
            self.on_timing(FrameTiming(fields.sec, fields.nanosec, frame.received_s, frame.decoded_s, taken,
                                       letterboxed, inferred, done))
        if self._on_annotate is not None:
            self._on_annotate(result)
