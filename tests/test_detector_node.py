"""detector_node on real executors and DDS: detections for every frame, the newest-frame rule,
malformed frames skipped while the node keeps answering, refusal to start without a model."""
import array
import time

import cv2
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from diagnostic_msgs.msg import DiagnosticArray

from train_fou import qos
from train_fou.msg import SignDetectionArray
from train_fou.nodes.detector_node import DetectorNode
from train_fou.vision import ModelNotFoundError

from helpers.waiting import wait_until
from helpers.fake_gpu import install_fake_gpu
from helpers.models import make_model


def raw_image(value, stamp_ns, height=240, width=320, frame_id='camera', encoding='bgr8', step=None, data=None):
    msg = Image(height=height, width=width, encoding=encoding, step=width * 3 if step is None else step)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    payload = np.full((height, width, 3), value, np.uint8).tobytes() if data is None else data
    msg.data = array.array('B', payload)
    return msg


def stamp_ns(header):
    return header.stamp.sec * 10**9 + header.stamp.nanosec


class Harness:
    """The detector and a test node (image publisher, detections subscriber) on one executor."""

    def __init__(self, context, model, compressed=False, **params):
        overrides = [Parameter('model_path', value=str(model)),
                     Parameter('input_transport', value='compressed' if compressed else 'raw')]
        overrides += [Parameter(k, value=v) for k, v in params.items()]
        self.detector = DetectorNode(context=context, parameter_overrides=overrides)
        from rclpy.node import Node
        self.node = Node('detector_test', context=context)
        msg_type = CompressedImage if compressed else Image
        topic = 'camera/image_raw/compressed' if compressed else 'camera/image_raw'
        self.pub = self.node.create_publisher(msg_type, topic, qos.SENSOR)
        self.detections: list = []
        self.diagnostics: list = []
        self.node.create_subscription(SignDetectionArray, 'signs/detections',
                                      lambda m: self.detections.append((time.monotonic(), m)), qos.RELIABLE)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.detector)
        self.executor.add_node(self.node)
        assert wait_until(lambda: self.pub.get_subscription_count() > 0
                          and self.detector._detections_pub.get_subscription_count() > 0, 10, self.spin)

    def spin(self, step_s):
        self.executor.spin_once(timeout_sec=step_s)

    def answer(self, stamp, timeout_s=10.0):
        """The detections message for `stamp` (ns), waiting for it."""
        found = []

        def arrived():
            found[:] = [m for _, m in self.detections if stamp_ns(m.header) == stamp]
            return bool(found)
        assert wait_until(arrived, timeout_s, self.spin), f'no detections for stamp {stamp}'
        return found[0]

    def close(self):
        self.executor.shutdown()
        self.detector.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def model(tmp_path):
    return make_model(tmp_path, imgsz=(96, 128))


@pytest.fixture
def harness(ros_context, model):
    h = Harness(ros_context, model)
    yield h
    h.close()


def test_every_frame_gets_a_detections_message_with_the_source_header(harness):
    harness.pub.publish(raw_image(255, 1_000_000_001, frame_id='cam_front'))
    msg = harness.answer(1_000_000_001)
    assert msg.header.frame_id == 'cam_front'
    assert (msg.image_width, msg.image_height) == (320, 240)
    assert msg.backend == 'onnxruntime-cpu'
    assert [d.label for d in msg.detections] == ['stop', 'danger']  # duplicate danger box suppressed
    stop = msg.detections[0]
    assert 0 <= stop.x_min and stop.x_min + stop.width <= 320 and stop.y_min + stop.height <= 240
    assert msg.inference_ms >= 0 and msg.preprocess_ms > 0
    harness.pub.publish(raw_image(0, 1_000_000_002))
    assert list(harness.answer(1_000_000_002).detections) == []  # empty arrays are published too


def test_annotated_image_is_published_to_a_subscriber(harness):
    frames = []
    harness.node.create_subscription(Image, 'signs/annotated', frames.append, qos.SENSOR)
    assert wait_until(lambda: harness.detector._annotated_pub.get_subscription_count() > 0, 10, harness.spin)
    stamp = 2_000_000_000
    harness.pub.publish(raw_image(255, stamp))
    assert wait_until(lambda: frames, 10, harness.spin)
    assert frames[0].encoding == 'bgr8' and (frames[0].width, frames[0].height) == (320, 240)
    assert stamp_ns(frames[0].header) == stamp


BAD_FRAMES = {
    'wrong step': dict(step=100),
    'wrong size': dict(height=240, data=bytes(320 * 3 * 200)),
    'unsupported encoding': dict(encoding='32FC1'),
    'truncated data': dict(data=bytes(320 * 3 * 240 - 7)),
    'zero size': dict(height=0, width=0, data=b''),
}


@pytest.mark.parametrize('bad', list(BAD_FRAMES), ids=list(BAD_FRAMES))
def test_a_malformed_raw_frame_is_skipped_and_the_node_still_answers(harness, bad):
    harness.pub.publish(raw_image(255, 3_000_000_001, **BAD_FRAMES[bad]))
    assert wait_until(lambda: harness.detector.worker.counters.bad_frames == 1, 10, harness.spin)
    harness.pub.publish(raw_image(255, 3_000_000_002))
    assert harness.answer(3_000_000_002).detections
    assert not [m for _, m in harness.detections if stamp_ns(m.header) == 3_000_000_001]
    assert 'malformed image' in harness.detector.worker.counters.last_problem


def test_a_truncated_serialized_message_is_skipped_and_the_node_still_answers(harness):
    from rclpy.serialization import serialize_message
    whole = serialize_message(raw_image(255, 3_500_000_001))
    harness.pub.publish(whole[:len(whole) // 2])  # cut in the middle of the pixels
    assert wait_until(lambda: harness.detector.worker.counters.bad_frames == 1, 10, harness.spin)
    assert 'truncated message: data needs 230400 bytes' in harness.detector.worker.counters.last_problem
    harness.pub.publish(raw_image(255, 3_500_000_002))
    assert harness.answer(3_500_000_002).detections


def _truncated_jpeg() -> bytes:
    ok, jpeg = cv2.imencode('.jpg', np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    return jpeg.tobytes()[:-2000]  # libjpeg would decode this, grey where the bytes are missing


@pytest.mark.parametrize('data', [b'\xff\xd8\xff garbage', _truncated_jpeg()], ids=['undecodable', 'truncated'])
def test_an_undecodable_or_truncated_jpeg_is_skipped_counted_and_the_node_still_answers(ros_context, model, data):
    h = Harness(ros_context, model, compressed=True)
    try:
        bad = CompressedImage(format='jpeg', data=array.array('B', data))
        bad.header.stamp.sec = 4
        h.pub.publish(bad)
        assert wait_until(lambda: h.detector.worker.counters.bad_frames == 1, 10, h.spin)
        ok, jpeg = cv2.imencode('.jpg', np.full((240, 320, 3), 255, np.uint8))
        good = CompressedImage(format='jpeg', data=array.array('B', jpeg.tobytes()))
        good.header.stamp.sec = 5
        h.pub.publish(good)
        assert h.answer(5 * 10**9).detections
        assert not any(stamp_ns(m.header) == 4 * 10**9 for _, m in h.detections)  # the bad frame got no answer
    finally:
        h.close()


def test_diagnostics_report_backend_rates_and_bad_frames(harness):
    harness.pub.publish(raw_image(255, 6_000_000_000, step=5))
    assert wait_until(lambda: harness.detector.worker.counters.bad_frames == 1, 10, harness.spin)
    harness.pub.publish(raw_image(255, 6_000_000_001))
    harness.answer(6_000_000_001)

    def reported():
        for array_msg in harness.diagnostics:
            values = {kv.key: kv.value for kv in array_msg.status[0].values}
            if values.get('frames_processed') == '1':
                return values
        return None
    assert wait_until(lambda: reported() is not None, 10, harness.spin)
    values = reported()
    assert values['backend'] == 'onnxruntime-cpu' and values['bad_frames'] == '1'
    assert float(values['latency_p50_ms']) > 0


def test_thresholds_are_validated_and_applied_live(harness):
    result = harness.detector.set_parameters([Parameter('conf_threshold', value=2.0)])
    assert not result[0].successful
    assert harness.detector.set_parameters([Parameter('conf_threshold', value=0.85)])[0].successful
    harness.pub.publish(raw_image(255, 7_000_000_000))
    assert [d.label for d in harness.answer(7_000_000_000).detections] == ['stop']


def test_the_node_refuses_to_start_without_its_model(ros_context, tmp_path):
    missing = tmp_path / 'models' / 'signs.onnx'
    with pytest.raises(ModelNotFoundError, match=f'{missing}: model file not found'):
        DetectorNode(context=ros_context, parameter_overrides=[Parameter('model_path', value=str(missing))])


def test_with_a_slow_model_frames_are_dropped_and_counted_not_queued(ros_context, tmp_path):
    slow = make_model(tmp_path, name='slow', imgsz=(96, 128), matmuls=24, matmul_size=512)
    h = Harness(ros_context, slow, intra_op_threads=1)
    try:
        period_s, sent = 1 / 30, []
        start = time.monotonic()
        for i in range(45):  # 1.5 s at 30 fps, far faster than the model
            stamp = 10**10 + i
            h.pub.publish(raw_image(255, stamp))
            sent.append(stamp)
            wait_until(lambda i=i: time.monotonic() >= start + (i + 1) * period_s, 1.0, h.spin, step_s=0.005)
        h.answer(sent[-1])  # the newest frame is always processed
        processed = [stamp_ns(m.header) for _, m in h.detections]
        assert processed == sorted(processed) and len(set(processed)) == len(processed)
        inference_ms = np.median([m.inference_ms for _, m in h.detections])
        assert inference_ms > 1000 * period_s, 'the model must be slower than the frame period'
        last = h.detections[-1][1]
        assert last.frames_dropped > 0
        assert len(processed) + last.frames_dropped == h.detector.worker.counters.received
        # Latency stays bounded by about two inference times, never the queue length.
        lags = [(t - start) * 1e3 - (stamp_ns(m.header) - 10**10) * period_s * 1e3 for t, m in h.detections]
        assert max(lags[-5:]) < 4 * inference_ms + 200
    finally:
        h.close()


def test_an_engine_that_does_not_deserialize_falls_back_to_onnx_and_the_node_runs(ros_context, model, monkeypatch):
    from rcl_interfaces.msg import Log
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile

    install_fake_gpu(monkeypatch, deserializes=False)
    engine = model.with_suffix('.engine')
    engine.write_bytes(b'built for another GPU')
    listener = Node('rosout_listener', context=ros_context)  # /rosout keeps its history for late joiners
    logs = []
    listener.create_subscription(Log, '/rosout', lambda m: logs.append(m) if m.name == 'detector_node' else None,
                                 QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    h = Harness(ros_context, engine)
    h.executor.add_node(listener)
    try:
        h.pub.publish(raw_image(255, 8_000_000_000))
        assert h.answer(8_000_000_000).backend == 'onnxruntime-cpu'
        [error] = [n for n in h.detector.worker.choice.notes if n.level == 'error']
        assert error.backend == 'tensorrt' and f'{engine}: TensorRT 10.3.0 cannot deserialize' in error.message
        assert wait_until(lambda: any('backend onnxruntime-cpu' in m.msg for m in logs), 10, h.spin)
    finally:
        h.close()
        listener.destroy_node()
    errors = [m.msg for m in logs if m.level == Log.ERROR]
    infos = [m.msg for m in logs if m.level == Log.INFO]
    assert sum('cannot deserialize this engine' in m for m in errors) == 1  # one clear error line
    assert sum(m.startswith('backend onnxruntime-cpu (fastest available') for m in infos) == 1  # logged once
    assert any('tensorrt: could not load its model (error above)' in m for m in infos)
