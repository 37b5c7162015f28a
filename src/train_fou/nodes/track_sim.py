"""track_sim: the closed-loop virtual track as a camera (camera/image_raw) driven by hub/state.

Publishes the train camera's view, `camera/camera_info`, the signs' true boxes
on `sim/ground_truth`, `/clock` (lockstep mode) and `/diagnostics`; subscribes
to `signs/detections`, `train/speed_command` and `hub/state`, and moves the
train with the hub's applied power. In lockstep mode (the default, with the
other nodes on `use_sim_time`) the world steps only when the pipeline has
answered the current frame (see train_fou.sim.lockstep), so a run gives the
same result on a fast or a slow machine. When the run ends the node publishes
its result as JSON on `sim/result` (latched) and stops publishing frames.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from train_fou import qos
from train_fou.msg import HubState, SignDetection, SignDetectionArray, SpeedCommand
from train_fou.nodes.image_msgs import diagnostics, image_msg
from train_fou.nodes.parameters import CheckedParameters
from train_fou.sim.episode import Episode
from train_fou.sim.lockstep import Command, LockstepGate, motor_input
from train_fou.sim.scenario import default_scenario_path, load_scenario

#: Width of the frames kept for reports.
REPORT_WIDTH = 320


@dataclass
class FrameLog:
    """What happened on one simulated frame (for reports)."""
    t_s: float
    position_m: float
    speed_mps: float
    applied_power: int
    command_power: int = 0
    brake: bool = False
    state: int = -1
    reason: str = ''
    detections: list = field(default_factory=list)   #: (label, score, (x, y, w, h))
    truths: list = field(default_factory=list)       #: (kind, (x, y, w, h))
    frame: np.ndarray | None = None                  #: kept every `keep_frames_every` frames, downscaled
    frame_scale: float = 1.0


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class TrackSim(CheckedParameters, Node):
    def __init__(self, **kwargs):
        super().__init__('track_sim', **kwargs)
        ro = dict(read_only=True)
        self.declare_parameter('scenario', '', ParameterDescriptor(
            description='scenario YAML; empty: share/train_fou/config/scenarios/default.yaml', **ro))
        self.declare_parameter('seed', 0, ParameterDescriptor(
            description='campaign seed', integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)], **ro))
        self.declare_parameter('run_index', 0, ParameterDescriptor(
            description='run of the campaign (the world is drawn from (seed, run_index))',
            integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)], **ro))
        self.declare_parameter('lockstep', True, ParameterDescriptor(
            description='step only when the pipeline answered the frame, publish /clock (others: use_sim_time)', **ro))
        self.declare_parameter('wait_for_command', True, ParameterDescriptor(
            description='lockstep also waits for train/speed_command with the frame as source_stamp', **ro))
        self.declare_parameter('retry_s', 5.0, ParameterDescriptor(
            description='wall time before an unanswered frame is published again (0.5 s before the first answer)',
            floating_point_range=[FloatingPointRange(from_value=0.05, to_value=60.0, step=0.0)], **ro))
        self.declare_parameter('max_retries', 5, ParameterDescriptor(
            description='republications of an unanswered frame before the world moves on',
            integer_range=[IntegerRange(from_value=0, to_value=1000, step=1)], **ro))
        self.declare_parameter('oracle', False, ParameterDescriptor(
            description='publish the true sign boxes as signs/detections (a perfect detector; run without one)',
            **ro))
        self.declare_parameter('frame_id', 'camera', ParameterDescriptor(description='header.frame_id', **ro))
        self.declare_parameter('keep_frames_every', 0, ParameterDescriptor(
            description='keep every Nth rendered frame in memory for reports (0: none)',
            integer_range=[IntegerRange(from_value=0, to_value=1000, step=1)], **ro))
        self.add_on_set_parameters_callback(lambda _params: SetParametersResult(
            successful=False, reason='track_sim parameters are read-only; restart the run'))

        p = {name: self.get_parameter(name).value for name in (
            'scenario', 'seed', 'run_index', 'lockstep', 'wait_for_command', 'retry_s', 'max_retries',
            'frame_id', 'keep_frames_every', 'oracle')}
        scenario = load_scenario(p['scenario'] or default_scenario_path())
        self.world = scenario.sample(p['seed'], p['run_index'])
        self.episode = Episode(self.world)
        self.lockstep = bool(p['lockstep'])
        self.frame_id = p['frame_id']
        self.keep_every = int(p['keep_frames_every'])
        self.oracle = bool(p['oracle'])
        self.gate = LockstepGate(wait_for_command=bool(p['wait_for_command']),
                                 retry_s=float(p['retry_s']), max_retries=int(p['max_retries']))
        self.log: list[FrameLog] = []
        self.done = threading.Event()
        self.result: dict | None = None
        self._started = False
        self._current: FrameLog | None = None
        self._image: Image | None = None
        self._command: Command | None = None
        self._hub_power: int | None = None

        group = MutuallyExclusiveCallbackGroup()
        self._image_pub = self.create_publisher(Image, 'camera/image_raw', qos.SENSOR)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info', qos.SENSOR)
        truth_topic = 'signs/detections' if self.oracle else 'sim/ground_truth'
        self._truth_pub = self.create_publisher(SignDetectionArray, truth_topic, qos.RELIABLE)
        self._result_pub = self.create_publisher(String, 'sim/result', qos.LATCHED)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self._clock_pub = self.create_publisher(Clock, '/clock', qos.LATCHED) if self.lockstep else None
        if not self.oracle:
            self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE,
                                     callback_group=group)
        self.create_subscription(SpeedCommand, 'train/speed_command', self._on_command, qos.RELIABLE,
                                 callback_group=group)
        self.create_subscription(HubState, 'hub/state', self._on_hub, qos.LATCHED, callback_group=group)
        period = 0.05 if self.lockstep else self.world.dt_s
        self.create_timer(period, self._on_timer, callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=_stamp(self.episode.stamp_ns)))

    # --- time ---------------------------------------------------------------------------------
    def _sim_ns(self) -> int:
        return self.episode.stamp_ns

    # --- callbacks ----------------------------------------------------------------------------
    def _on_detections(self, msg: SignDetectionArray) -> None:
        stamp = _ns(msg.header.stamp)
        if self._current is not None and stamp == self.gate.stamp_ns:
            self._current.detections = [(d.label, float(d.score), (d.x_min, d.y_min, d.width, d.height))
                                        for d in msg.detections]
        self.gate.on_detections(stamp, time.monotonic())
        self._pump()

    def _on_command(self, msg: SpeedCommand) -> None:
        command = Command(int(msg.power), bool(msg.brake), int(msg.state), msg.reason)
        self._command = command
        self.gate.on_command(_ns(msg.source_stamp), command, time.monotonic())
        self._pump()

    def _on_hub(self, msg: HubState) -> None:
        self._hub_power = int(msg.applied_power)
        self.gate.on_hub(msg.applied_power)
        self._pump()

    def _on_timer(self) -> None:
        if self.done.is_set():
            return
        if not self.lockstep:
            self._step()
            return
        if not self._started:
            if not self._pipeline_ready():
                return
            self._started = True
            self._publish_frame()
            return
        self._pump()

    def _pipeline_ready(self) -> bool:
        """Lockstep starts once the detector listens (and the controller/hub talk, when waited for)."""
        if self.oracle:
            if self._truth_pub.get_subscription_count() < 1:
                return False
        elif self._image_pub.get_subscription_count() < 1:
            return False
        if self.gate.wait_for_command and self.count_publishers('train/speed_command') < 1:
            return False
        return self.count_publishers('hub/state') < 1 or self._hub_power is not None

    def _pump(self) -> None:
        if not self.lockstep or not self._started or self.done.is_set():
            return
        decision = self.gate.decide(time.monotonic())
        if decision == 'step':
            self._step()
        elif decision == 'resend' and self._image is not None:
            self.gate.sent(self.gate.stamp_ns, time.monotonic(), retry=True)
            self._image_pub.publish(self._image)

    # --- the world ----------------------------------------------------------------------------
    def _applied_power(self) -> int:
        """The motor's input: the hub's applied power (127: braked); without a hub, the command's."""
        if self._hub_power is not None:
            return motor_input(self._hub_power, self._command)
        if self._command is None:
            return 0
        return motor_input(self._command.applied, self._command)

    def _step(self) -> None:
        applied = self._applied_power()
        current = self._current
        if current is not None:
            command = self.gate.command or self._command
            if command is not None:
                current.command_power, current.brake = command.power, command.brake
                current.state, current.reason = command.state, command.reason
            current.applied_power = applied
            self.episode.advance(applied, commanded_power=current.command_power, brake=current.brake,
                                 state=current.state, labels=[d[0] for d in current.detections])
        if self.episode.done:
            self._finish()
            return
        self._publish_frame()

    def _publish_frame(self) -> None:
        stamp_ns = self._sim_ns() if self.lockstep else self.get_clock().now().nanoseconds
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=_stamp(stamp_ns)))
        image, truths = self.episode.frame()
        header = Header(stamp=_stamp(stamp_ns), frame_id=self.frame_id)
        state = self.episode.state
        entry = FrameLog(self.episode.t_s, state.position_m, state.speed_mps, self._applied_power(),
                         truths=[(t.kind, t.box) for t in truths])
        if self.keep_every and self.episode.frame_index % self.keep_every == 0:
            entry.frame_scale = REPORT_WIDTH / image.shape[1]
            entry.frame = cv2.resize(image, (REPORT_WIDTH, round(image.shape[0] * entry.frame_scale)),
                                     interpolation=cv2.INTER_AREA)
        self.log.append(entry)
        self._current = entry
        self._image = image_msg(image, header)
        self.gate.sent(stamp_ns, time.monotonic())
        self._image_pub.publish(self._image)
        self._info_pub.publish(self._camera_info(header))
        truth = self._truth_msg(header, truths)
        self._truth_pub.publish(truth)
        if self.oracle:  # the truth is the detector's answer
            entry.detections = [(d.label, 1.0, (d.x_min, d.y_min, d.width, d.height)) for d in truth.detections]
            self.gate.on_detections(stamp_ns, time.monotonic())

    def _finish(self) -> None:
        result = self.episode.result().as_dict()
        result['unanswered_frames'] = self.gate.unanswered
        result['hub_mismatches'] = self.gate.hub_mismatches
        self.result = result
        self._result_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(
            f'run {self.world.seed}: {result["end_reason"]}, margin {result["margin_m"]:.2f} m, '
            f'{result["limit_violations"]} limit violation(s), {result["stop_sign_holds"]}/'
            f'{result["stop_signs"]} stop hold(s)')
        self.done.set()

    # --- messages -----------------------------------------------------------------------------
    def _camera_info(self, header: Header) -> CameraInfo:
        cam = self.world.camera
        f = cam.focal_px
        cx, cy = cam.centre
        return CameraInfo(header=header, width=cam.width, height=cam.height, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def _truth_msg(self, header: Header, truths) -> SignDetectionArray:
        from train_fou.render.signs import CLASS_NAMES
        from train_fou.sim.track import label_of
        cam = self.world.camera
        msg = SignDetectionArray(header=header, image_width=cam.width, image_height=cam.height, backend='sim')
        for t in truths:
            label = label_of(t.kind)
            if label is None:
                continue
            x, y, w, h = t.box
            msg.detections.append(SignDetection(class_id=CLASS_NAMES.index(label), label=label, score=1.0,
                                                x_min=x, y_min=y, width=w, height=h))
        return msg

    def _publish_diagnostics(self) -> None:
        state = self.episode.state
        if self.done.is_set():
            level, message = 'ok', f'run over: {self.episode.end_reason}'
        elif self.lockstep and not self._started:
            level, message = 'warn', 'waiting for the pipeline (detector, controller, hub)'
        else:
            level, message = 'ok', f'running, {state.position_m:.2f} m at {state.speed_mps:.2f} m/s'
        values = {'scenario': self.world.name, 'seed': str(list(self.world.seed)),
                  'sim_time_s': self.episode.t_s, 'position_m': state.position_m, 'speed_mps': state.speed_mps,
                  'cliff_at_m': self.world.track.cliff_at_m, 'frames': self.episode.frame_index,
                  'frame_retries': self.gate.retries, 'unanswered_frames': self.gate.unanswered}
        self._diag_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'track_sim: virtual track',
                                           level, message, values))
