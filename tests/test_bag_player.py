"""bag_player and ImageBag: MCAP and sqlite3 bags, raw and compressed, pace, loop, offset,
lockstep with the detector, and one clear error for missing, corrupt and image-less bags."""
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from train_fou import qos
from train_fou.msg import SignDetectionArray
from train_fou.nodes.bag_player import BagPlayer
from train_fou.vision.errors import BagError, BagNotFoundError
from train_fou.vision.image_bag import ImageBag

from helpers.waiting import wait_until
from helpers.models import make_model, write_image_bag


def test_image_bag_reads_mcap_and_sqlite3_with_their_stamps(tmp_path):
    for storage in ('mcap', 'sqlite3'):
        with ImageBag(write_image_bag(tmp_path / storage, storage=storage, extra_topics=['/rosout'])) as bag:
            frames = list(bag.frames())
            assert (bag.topic, bag.kind, bag.message_count) == ('/camera/image_raw', 'raw', 10)
            assert [f.stamp for f in frames] == [(100 + i, 0) for i in range(10)]


def test_image_bag_start_offset_skips_the_beginning(tmp_path):
    with ImageBag(write_image_bag(tmp_path / 'b', count=10, period_s=0.1)) as bag:
        assert [f.stamp[0] for f in bag.frames(start_offset_s=0.45)] == [105, 106, 107, 108, 109]


def test_image_bag_on_a_missing_path_names_it(tmp_path):
    with pytest.raises(BagNotFoundError, match=f'{tmp_path}/nope.mcap: bag not found'):
        ImageBag(tmp_path / 'nope.mcap')


def test_image_bag_on_a_corrupt_file_names_it(tmp_path):
    bad = tmp_path / 'broken.mcap'
    bad.write_bytes(b'\x89MCAP0\r\n' + b'garbage' * 10)
    with pytest.raises(BagError, match=f'{bad}: cannot read bag'):
        ImageBag(bad)


def test_image_bag_without_an_image_topic_lists_the_topics_it_has(tmp_path):
    path = write_image_bag(tmp_path / 'b', topic='/chatter_img', extra_topics=['/rosout'])
    with pytest.raises(BagError, match=r"no image topic `/camera/image_raw`; topics: /chatter_img "
                                       r"\(sensor_msgs/msg/Image\), /rosout \(std_msgs/msg/String\)"):
        ImageBag(path, topic='/camera/image_raw')
    with pytest.raises(BagError, match=r'no CompressedImage topic .*topics: /chatter_img'):
        ImageBag(path, kind='compressed')


#: Best effort like the player's sensor QoS, deep enough to keep every test frame.
DEEP_BEST_EFFORT = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


class Rig:
    def __init__(self, context, **params):
        self.node = Node('bag_test', context=context)
        self.raw, self.compressed, self.diagnostics = [], [], []
        self.node.create_subscription(Image, 'camera/image_raw', self.raw.append, DEEP_BEST_EFFORT)
        self.node.create_subscription(CompressedImage, 'camera/image_raw/compressed', self.compressed.append,
                                      DEEP_BEST_EFFORT)
        self.player = BagPlayer(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        for node in (self.player, self.node):
            self.executor.add_node(node)

    def spin(self, step_s):
        self.executor.spin_once(timeout_sec=step_s)

    def close(self):
        self.executor.shutdown()
        self.player.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def rig_factory(ros_context):
    rigs = []

    def make(**params):
        rigs.append(Rig(ros_context, **params))
        return rigs[-1]
    yield make
    for rig in rigs:
        rig.close()


def test_player_publishes_raw_frames_with_the_recorded_stamps_at_the_recorded_pace(tmp_path, rig_factory):
    path = write_image_bag(tmp_path / 'b', count=12, period_s=0.05)
    start = time.monotonic()
    rig = rig_factory(bag_path=str(path), rate=2.0)
    assert wait_until(lambda: rig.player.finished, 20, rig.spin)
    elapsed = time.monotonic() - start
    assert wait_until(lambda: len(rig.raw) == 12, 5, rig.spin)
    stamps = [m.header.stamp.sec for m in rig.raw]
    assert stamps == sorted(stamps) and stamps[-1] == 111
    assert rig.raw[0].header.frame_id == 'bag_camera' and rig.raw[0].encoding == 'bgr8'
    assert elapsed >= 11 * 0.05 / 2 * 0.9  # paced, not dumped
    assert rig.player.published == 12


def test_player_plays_compressed_sqlite3_bags_in_a_loop_from_an_offset(tmp_path, rig_factory):
    path = write_image_bag(tmp_path / 'c', count=5, period_s=0.01, storage='sqlite3', compressed=True)
    rig = rig_factory(bag_path=str(path), loop=True, rate=4.0, start_offset_s=0.025)
    assert wait_until(lambda: rig.player.loops >= 2 and len(rig.compressed) >= 4, 20, rig.spin)
    assert rig.compressed[0].format == 'jpeg' and not rig.raw
    assert {m.header.stamp.sec for m in rig.compressed} <= {103, 104}


@pytest.mark.parametrize('case', ['missing', 'corrupt', 'no image topic'])
def test_player_with_a_bad_bag_reports_one_error_and_stays_up(tmp_path, rig_factory, case):
    if case == 'missing':
        path, expected = tmp_path / 'missing.mcap', 'missing.mcap: bag not found'
    elif case == 'corrupt':
        path, expected = tmp_path / 'bad.db3', 'bad.db3: cannot read bag'
        path.write_bytes(b'SQLite format 3\x00' + bytes(100))
    else:
        path = write_image_bag(tmp_path / 'b', topic='/chatter', extra_topics=['/rosout'])
        path, expected = path, 'no CompressedImage topic (sensor_msgs/msg/Image or CompressedImage); topics: /chatter'
    rig = rig_factory(bag_path=str(path), message_type='compressed' if case == 'no image topic' else 'auto')
    assert expected in rig.player.error and str(path) in rig.player.error

    def error_reported():
        return any(s.level == DiagnosticStatus.ERROR and expected in s.message
                   for d in rig.diagnostics for s in d.status)
    assert wait_until(error_reported, 10, rig.spin)
    assert rig.player.context.ok()


def test_rate_zero_waits_for_each_answer_of_the_detector(tmp_path, ros_context):
    from train_fou.nodes.detector_node import DetectorNode
    model = make_model(tmp_path, imgsz=(32, 64))
    detector = DetectorNode(context=ros_context, parameter_overrides=[Parameter('model_path', value=str(model))])
    listener = Node('lockstep_test', context=ros_context)
    answers = []
    listener.create_subscription(SignDetectionArray, 'signs/detections', answers.append, qos.RELIABLE)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(detector)
    executor.add_node(listener)
    spin = lambda s: executor.spin_once(timeout_sec=s)  # noqa: E731
    assert wait_until(lambda: detector._detections_pub.get_subscription_count() >= 1, 10, spin)
    player = BagPlayer(context=ros_context, parameter_overrides=[
        Parameter('bag_path', value=str(write_image_bag(tmp_path / 'b', count=15, period_s=1.0))),
        Parameter('rate', value=0.0), Parameter('lockstep_timeout_s', value=5.0)])
    executor.add_node(player)
    try:
        started = time.monotonic()
        assert wait_until(lambda: player.finished and len(answers) == 15, 30, spin)
        assert time.monotonic() - started < 14  # far faster than the 14 s recording
        assert [m.header.stamp.sec for m in answers] == list(range(100, 115))
        assert answers[-1].frames_dropped == 0
    finally:
        executor.shutdown()
        for node in (player, detector, listener):
            node.destroy_node()


def test_a_new_rate_applies_from_the_next_frame(tmp_path, rig_factory):
    path = write_image_bag(tmp_path / 'b', count=10, period_s=0.5)
    rig = rig_factory(bag_path=str(path), rate=0.05)  # 90 s at this pace
    assert wait_until(lambda: rig.player.published >= 1, 10, rig.spin)
    assert rig.player.set_parameters([Parameter('rate', value=50.0)])[0].successful
    assert wait_until(lambda: rig.player.finished, 20, rig.spin)
    assert rig.player.published == 10
