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

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from train_fou import qos
from train_fou.msg import HubState, SignDetection, SignDetectionArray, SpeedCommand
from train_fou.nodes.image_msgs import image_msg
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import (described, destroyed_on_failure, diagnostics, float_range, int_range,
                                         stamp_from_ns, stamp_ns)
from train_fou.sim.closed_loop import ClosedLoop
from train_fou.sim.lockstep import Command, LockstepGate
from train_fou.sim.scenario import default_scenario_path, load_scenario

MAX_INT32 = 2**31 - 1


class TrackSim(CheckedParameters, Node):
    def __init__(self, **kwargs):
        super().__init__('track_sim', **kwargs)
        with destroyed_on_failure(self):
            self._setup()

    def _setup(self) -> None:
        ro = dict(read_only=True)
        declare = lambda name, value, descriptor: self.declare_parameter(name, value, descriptor).value  # noqa: E731
        scenario = declare('scenario', '', described(
            'scenario YAML; empty: share/train_fou/config/scenarios/default.yaml', **ro))
        seed = declare('seed', 0, int_range('campaign seed', 0, MAX_INT32, **ro))
        run_index = declare('run_index', 0, int_range(
            'run of the campaign (the world is drawn from (seed, run_index))', 0, MAX_INT32, **ro))
        self.lockstep = bool(declare('lockstep', True, described(
            'step only when the pipeline answered the frame, publish /clock (others: use_sim_time)', **ro)))
        wait_for_command = declare('wait_for_command', True, described(
            'lockstep also waits for train/speed_command with the frame as source_stamp', **ro))
        retry_s = declare('retry_s', 5.0, float_range(
            'wall time before an unanswered frame is published again (0.5 s before the first answer)', 0.05, 60.0,
            **ro))
        max_retries = declare('max_retries', 5, int_range(
            'republications of an unanswered frame before the world moves on', 0, 1000, **ro))
        self.oracle = bool(declare('oracle', False, described(
            'publish the true sign boxes as signs/detections (a perfect detector; run without one)', **ro)))
        self.frame_id = declare('frame_id', 'camera', described('header.frame_id', **ro))
        keep_every = declare('keep_frames_every', 0, int_range(
            'keep every Nth rendered frame in memory for reports (0: none)', 0, 1000, **ro))
        self.add_on_set_parameters_callback(lambda _params: SetParametersResult(
            successful=False, reason='track_sim parameters are read-only; restart the run'))

        world = load_scenario(scenario or default_scenario_path()).sample(seed, run_index)
        gate = LockstepGate(wait_for_command=bool(wait_for_command), retry_s=float(retry_s),
                            max_retries=int(max_retries))
        self.loop = ClosedLoop(world, gate, int(keep_every))
        self.world, self.episode, self.log = world, self.loop.episode, self.loop.log  # the run, for the CLI
        self.done = threading.Event()
        self._started = False
        self._image: Image | None = None

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
        self.create_timer(0.05 if self.lockstep else world.dt_s, self._on_timer, callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp_from_ns(self.loop.episode.stamp_ns)))

    @property
    def result(self) -> dict | None:
        """The run's result (also published on sim/result) once it has ended."""
        return self.loop.result

    # --- callbacks ----------------------------------------------------------------------------
    def _on_detections(self, msg: SignDetectionArray) -> None:
        detections = [(d.label, float(d.score), (d.x_min, d.y_min, d.width, d.height)) for d in msg.detections]
        self.loop.on_detections(stamp_ns(msg.header.stamp), detections, time.monotonic())
        self._pump()

    def _on_command(self, msg: SpeedCommand) -> None:
        command = Command(int(msg.power), bool(msg.brake), int(msg.state), msg.reason)
        self.loop.on_command(stamp_ns(msg.source_stamp), command, time.monotonic())
        self._pump()

    def _on_hub(self, msg: HubState) -> None:
        self.loop.on_hub(msg.applied_power)
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
        if self.loop.gate.wait_for_command and self.count_publishers('train/speed_command') < 1:
            return False
        return self.count_publishers('hub/state') < 1 or self.loop.hub_power is not None

    def _pump(self) -> None:
        if not self.lockstep or not self._started or self.done.is_set():
            return
        gate = self.loop.gate
        decision = gate.decide(time.monotonic())
        if decision == 'step':
            self._step()
        elif decision == 'resend' and self._image is not None:
            gate.sent(gate.stamp_ns, time.monotonic(), retry=True)
            self._image_pub.publish(self._image)

    # --- the world ----------------------------------------------------------------------------
    def _step(self) -> None:
        if self.loop.step():
            self._finish()
        else:
            self._publish_frame()

    def _publish_frame(self) -> None:
        stamp = self.loop.episode.stamp_ns if self.lockstep else self.get_clock().now().nanoseconds
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp_from_ns(stamp)))
        image, truths = self.loop.frame(stamp, time.monotonic())
        header = Header(stamp=stamp_from_ns(stamp), frame_id=self.frame_id)
        self._image = image_msg(image, header)
        self._image_pub.publish(self._image)
        self._info_pub.publish(self._camera_info(header))
        truth = self._truth_msg(header, truths)
        self._truth_pub.publish(truth)
        if self.oracle:  # the truth is the detector's answer
            self.loop.on_detections(stamp, [(d.label, 1.0, (d.x_min, d.y_min, d.width, d.height))
                                            for d in truth.detections], time.monotonic())

    def _finish(self) -> None:
        result = self.loop.result
        self._result_pub.publish(String(data=json.dumps(result)))
        self.get_logger().info(
            f'run {self.world.seed}: {result["end_reason"]}, margin {result["margin_m"]:.2f} m, '
            f'{result["limit_violations"]} limit violation(s), {result["stop_sign_holds"]}/'
            f'{result["stop_signs"]} stop hold(s)')
        self.done.set()

    # --- messages -----------------------------------------------------------------------------
    def _camera_info(self, header: Header) -> CameraInfo:
        cam = self.world.camera
        f, (cx, cy) = cam.focal_px, cam.centre
        return CameraInfo(header=header, width=cam.width, height=cam.height, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def _truth_msg(self, header: Header, truths) -> SignDetectionArray:
        from train_fou.render.signs import CLASS_NAMES
        from train_fou.sim.track import label_of
        cam = self.world.camera
        signs = [(label_of(t.kind), t.box) for t in truths if label_of(t.kind) is not None]
        return SignDetectionArray(header=header, image_width=cam.width, image_height=cam.height, backend='sim',
                                  detections=[SignDetection(class_id=CLASS_NAMES.index(label), label=label, score=1.0,
                                                            x_min=x, y_min=y, width=w, height=h)
                                              for label, (x, y, w, h) in signs])

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
                  'frame_retries': self.loop.gate.retries, 'unanswered_frames': self.loop.gate.unanswered}
        self._diag_pub.publish(diagnostics(self.get_clock().now().to_msg(), 'track_sim: virtual track',
                                           level, message, values))
