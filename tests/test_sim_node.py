"""track_sim over real DDS: lockstep with a scripted detector and controller (no model needed)."""
from __future__ import annotations

import json
import threading

import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from helpers.waiting import wait_until
from train_fou import qos
from train_fou.msg import SignDetectionArray, SpeedCommand
from train_fou.nodes.runner import build_parameters
from train_fou.nodes.track_sim import TrackSim

SCENARIO = """
name: short
fps: 10
max_time_s: 20
end_still_s: 1.0
track: {length_m: 2.0}
train: {max_speed_mps: 1.0, motor_lag_s: 0.2}
signs: {placed: [{kind: stop, at_m: 1.5}], distractors: 0}
"""


class ScriptedPipeline(Node):
    """Answers every frame like detector + controller would: detections, then a command."""

    def __init__(self, context, power: int, delay_s: float = 0.0):
        super().__init__('scripted_pipeline', context=context)
        self.power, self.delay_s = power, delay_s
        self.stamps: list[int] = []
        self.clock_ns: list[int] = []
        self._det = self.create_publisher(SignDetectionArray, 'signs/detections', qos.RELIABLE)
        self._cmd = self.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
        self.create_subscription(Image, 'camera/image_raw', self._on_image, qos.NEWEST_FRAME)
        self.create_subscription(Clock, '/clock', lambda m: self.clock_ns.append(
            m.clock.sec * 10**9 + m.clock.nanosec), qos.NEWEST_FRAME)

    def _on_image(self, msg: Image) -> None:
        if self.delay_s:  # a slow machine: answer later, from another thread
            threading.Timer(self.delay_s, self._answer, args=(msg,)).start()
        else:
            self._answer(msg)

    def _answer(self, msg: Image) -> None:
        self.stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        self._det.publish(SignDetectionArray(header=msg.header, image_width=msg.width, image_height=msg.height))
        self._cmd.publish(SpeedCommand(header=msg.header, source_stamp=msg.header.stamp, power=self.power,
                                       state=SpeedCommand.CRUISE, reason='scripted'))


def run_sim(ros_context, scenario_file, power: int, delay_s: float = 0.0):
    sim = TrackSim(context=ros_context, parameter_overrides=build_parameters(
        {'scenario': str(scenario_file), 'seed': 3, 'retry_s': 2.0}))
    pipeline = ScriptedPipeline(ros_context, power, delay_s)
    results = []
    listener = Node('result_listener', context=ros_context)
    listener.create_subscription(String, 'sim/result', lambda m: results.append(json.loads(m.data)), qos.LATCHED)
    executor = MultiThreadedExecutor(context=ros_context)
    for node in (sim, pipeline, listener):
        executor.add_node(node)
    try:
        # generous: a run takes a few seconds, but a loaded 2-core CI machine can stall for many
        assert wait_until(lambda: bool(results), 180.0, spin=lambda s: executor.spin_once(timeout_sec=s))
        return sim, pipeline, results[0]
    finally:
        executor.shutdown()
        for node in (sim, pipeline, listener):
            node.destroy_node()


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / 'short.yaml'
    path.write_text(SCENARIO)
    return path


def test_lockstep_train_at_full_power_runs_off_the_cliff(ros_context, scenario_file):
    sim, pipeline, result = run_sim(ros_context, scenario_file, power=100)
    assert result['end_reason'] == 'fell' and result['stopped_before_cliff'] is False
    assert result['unanswered_frames'] == 0
    # one answered frame per 100 ms of simulated time, stamps strictly increasing
    steps = sorted(set(pipeline.stamps))
    assert [b - a for a, b in zip(steps, steps[1:])] == [100_000_000] * (len(steps) - 1)
    assert pipeline.clock_ns and pipeline.clock_ns[-1] >= steps[-1]
    assert sim.log[-1].detections == [] and sim.log[-1].command_power == 100


def test_unpowered_train_times_out_and_the_result_is_latched(ros_context, tmp_path):
    short_timeout = tmp_path / 'timeout.yaml'
    short_timeout.write_text(SCENARIO.replace('max_time_s: 20', 'max_time_s: 4'))  # 40 frames, not 200
    _sim, _pipeline, result = run_sim(ros_context, short_timeout, power=0)
    # power 0 from standstill: the train never moves, so the run can only end by timeout
    assert result['end_reason'] == 'timeout' and result['margin_m'] == pytest.approx(2.0)
    assert result['time_s'] == pytest.approx(4.0, abs=0.15)


def test_lockstep_results_do_not_depend_on_how_fast_the_pipeline_answers(ros_context, scenario_file):
    fast_sim, _, fast = run_sim(ros_context, scenario_file, power=40)
    slow_sim, _, slow = run_sim(ros_context, scenario_file, power=40, delay_s=0.03)
    assert fast == slow
    assert [e.position_m for e in fast_sim.log] == [e.position_m for e in slow_sim.log]


def test_free_running_sim_steps_on_wall_time_without_waiting(ros_context, scenario_file):
    """lockstep false: a camera at its frame rate, no /clock, stamps from the node's clock."""
    sim = TrackSim(context=ros_context, parameter_overrides=build_parameters(
        {'scenario': str(scenario_file), 'seed': 3, 'lockstep': False}))
    frames = []
    watcher = Node('watcher', context=ros_context)
    watcher.create_subscription(Image, 'camera/image_raw', frames.append, qos.SENSOR)
    executor = MultiThreadedExecutor(context=ros_context)
    for node in (sim, watcher):
        executor.add_node(node)
    try:
        assert wait_until(lambda: len(frames) >= 5, 20.0, spin=lambda s: executor.spin_once(timeout_sec=s))
    finally:
        executor.shutdown()
        sim.destroy_node()
        watcher.destroy_node()
    assert sim._clock_pub is None  # no /clock without lockstep
    stamps = [f.header.stamp.sec * 10**9 + f.header.stamp.nanosec for f in frames]
    assert stamps == sorted(stamps) and stamps[0] > 10**18  # wall-clock stamps, not simulated ones


def test_a_scenario_with_fps_0_is_one_line_for_the_node_and_for_train_fou_sim(ros_context, tmp_path, capfd):
    """Used to be a ZeroDivisionError traceback inside track_sim's timer callback."""
    from train_fou.cli import main
    from train_fou.sim.errors import SimError
    scenario = tmp_path / 'fps0.yaml'
    scenario.write_text(SCENARIO.replace('fps: 10', 'fps: 0'))
    with pytest.raises(SimError, match=f'^scenario {scenario}: fps = 0: expected a number > 0 and <= 120$'):
        TrackSim(context=ros_context, parameter_overrides=build_parameters({'scenario': str(scenario)}))
    assert main(['sim', '--oracle', '--scenario', str(scenario)]) == 2
    assert capfd.readouterr().err.splitlines()[-1] == (f'train-fou sim: error: scenario {scenario}: fps = 0: '
                                                       'expected a number > 0 and <= 120')
