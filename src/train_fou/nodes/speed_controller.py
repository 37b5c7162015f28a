"""speed_controller: signs/detections in, train/speed_command out, over the pure policy.

The policy lives in train_fou.policy (no rclpy); this node only converts
messages, keeps time, publishes on every decision and at `publish_rate_hz`,
watches for stale detections (FAILSAFE) and serves train/resume and
train/emergency_stop. One log line per state change.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_srvs.srv import Trigger

from train_fou import qos
from train_fou.msg import SignDetectionArray, SpeedCommand
from train_fou.nodes.parameters import CheckedParameters
from train_fou.nodes.ros_helpers import (described, destroyed_on_failure, diagnostics, float_range, int_range,
                                         stamp_from_ns, stamp_ns)
from train_fou.policy import (Action, Detection, EmergencyStop, Frame, Mode, PolicyConfig, PolicyConfigError,
                              Resume, State, load_policy, step)

#: How often the watchdog steps the policy without new detections (FAILSAFE reaction time).
WATCHDOG_HZ = 50.0
#: Image height assumed when a detections message carries none (proximity gates need one).
FALLBACK_IMAGE_HEIGHT = 480

_TOP_LEVEL_RANGES: dict[str, tuple[type, float, float, str]] = {
    'cruise_power_pct': (int, 0, 100, 'power on an open track, percent'),
    'ramp_up_pct_per_s': (float, 1.0, 1000.0, 'largest power rise per second; braking is immediate'),
    'confirm_hits': (int, 1, 30, 'a sign acts when seen in this many of the last confirm_window frames'),
    'confirm_window': (int, 1, 30, 'frames considered for confirmation'),
    'stop_hold_s': (float, 0.0, 60.0, 'how long a stop sign holds the train'),
    'detections_timeout_s': (float, 0.1, 5.0, 'no signs/detections for this long -> FAILSAFE'),
    'rearm_s': (float, 0.0, 60.0, 'a stop/danger sign that acted acts again only after unseen this long'),
}
_SIGN_RANGES: dict[str, tuple[type, float, float, str]] = {
    'min_score': (float, 0.0, 1.0, 'lowest detector score that counts'),
    'min_height_frac': (float, 0.0, 1.0, 'proximity gate: box height / image height'),
    'limit_pct': (int, 0, 100, 'power cap of a limit sign, percent'),
}


def _ranged(kind: type, low: float, high: float, text: str):
    return (int_range if kind is int else float_range)(text, low, high)


class SpeedControllerNode(CheckedParameters, Node):
    """Turns confirmed signs into a speed command, fail-safe when detections stop."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('speed_controller', **kwargs)
        with destroyed_on_failure(self):
            self._config = self._declare_policy_parameters()
            self._rate_hz = self.declare_parameter('publish_rate_hz', 20.0, float_range(
                'speed command republish rate', 10.0, 100.0, read_only=True)).value
        self._state = State()
        self._last_publish_s = float('-inf')

        self._command_pub = self.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self.create_subscription(SignDetectionArray, 'signs/detections', self._on_detections, qos.RELIABLE)
        self.create_service(Trigger, 'train/resume', self._on_resume)
        self.create_service(Trigger, 'train/emergency_stop', self._on_emergency_stop)
        self.create_timer(1.0 / WATCHDOG_HZ, self._on_tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._advance(None)
        self._publish()
        self.get_logger().info(f'state {self._state.mode.name}: {self._state.reason}')

    # -- parameters -----------------------------------------------------------------------------
    def _declare_policy_parameters(self) -> PolicyConfig:
        path = self.declare_parameter('policy_file', '', described(
            'policy YAML (classes, actions, gates); empty: config/policy.yaml of the package', read_only=True)).value
        if not path:
            from train_fou.paths import config_path
            path = str(config_path('policy.yaml'))
        base = load_policy(path)  # PolicyConfigError: the node refuses to start with one clear line
        values = {}
        for name, (kind, low, high, text) in _TOP_LEVEL_RANGES.items():
            values[name] = self.declare_parameter(name, kind(getattr(base, name)), _ranged(kind, low, high, text)).value
        config = PolicyConfig(**values, signs=base.signs)
        for label, rule in base.signs.items():
            for field, (kind, low, high, text) in _SIGN_RANGES.items():
                if field == 'limit_pct' and rule.action != Action.LIMIT:
                    continue
                value = self.declare_parameter(f'signs.{label}.{field}', kind(getattr(rule, field)),
                                               _ranged(kind, low, high, f'{label}: {text}')).value
                config = config.replace_sign(label, **{field: value}) if getattr(rule, field) != value else config
        return config.validate()

    def _on_set_parameters(self, params) -> SetParametersResult:
        config = self._config
        try:
            top = {p.name: p.value for p in params if p.name in _TOP_LEVEL_RANGES}
            if top:
                config = config.replace(**top)
            for p in params:
                if p.name.startswith('signs.'):
                    label, _, field = p.name[len('signs.'):].rpartition('.')
                    config = config.replace_sign(label, **{field: p.value})
        except (PolicyConfigError, TypeError) as err:
            self.get_logger().warning(f'parameter change rejected: {err}')
            return SetParametersResult(successful=False, reason=str(err))
        if config != self._config:
            self.get_logger().info('policy updated: ' + ', '.join(f'{p.name}={p.value}' for p in params))
        self._config = config
        return SetParametersResult(successful=True)

    @property
    def config(self) -> PolicyConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    # -- policy ---------------------------------------------------------------------------------
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _advance(self, observation) -> bool:
        """Step the policy; a change of mode or limit is published at once. True when it published.

        The command goes out before the change is logged: an rclpy log line costs more than
        the publish (docs/performance.md), and the brake must not wait for it.
        """
        before = self._state
        self._state = step(before, observation, self._now_s(), self._config)
        after = self._state
        if (after.mode, after.limit_pct) == (before.mode, before.limit_pct):
            return False
        self._publish()  # a change goes out at once, not at the next republish
        limit = f', limit {after.limit_pct} %' if after.limit_pct is not None else ''
        line = f'state {before.mode.name} -> {after.mode.name}{limit}: {after.reason}'
        if after.brake:  # one call site per severity: rclpy refuses to mix them
            self.get_logger().warning(line)
        else:
            self.get_logger().info(line)
        return True

    def _guarded(self, callback, *args) -> None:
        """Callback boundary: a bug never kills the executor; the train brakes instead."""
        try:
            callback(*args)
        except Exception as err:
            self.get_logger().error(f'{callback.__name__} failed: {err!r}; braking',
                                    throttle_duration_sec=5.0)
            self._state = dataclasses.replace(State(), reason=f'internal error: {err!r}')
            try:
                self._publish()
            except Exception:
                pass

    def _on_detections(self, msg: SignDetectionArray) -> None:
        self._guarded(self._handle_detections, msg)

    def _handle_detections(self, msg: SignDetectionArray) -> None:
        height = int(msg.image_height)
        if height <= 0:
            self.get_logger().warning('signs/detections without image_height: assuming 480 px',
                                   throttle_duration_sec=10.0)
            height = FALLBACK_IMAGE_HEIGHT
        frame = Frame(stamp_ns(msg.header.stamp), height,
                      tuple(Detection(d.label, float(d.score), float(d.height)) for d in msg.detections))
        if not self._advance(frame):
            self._publish()  # every decision goes out at once: latency is image -> hub

    def _on_tick(self) -> None:
        self._guarded(self._tick)

    def _tick(self) -> None:
        self._advance(None)
        if self._now_s() - self._last_publish_s >= 1.0 / self._rate_hz - 1e-3:
            self._publish()

    def _on_resume(self, request, response):
        was = self._state.mode
        latched = self._state.danger_latched or self._state.estop_latched
        self._advance(Resume())
        response.success = latched
        response.message = (f'resumed from {was.name}: {self._state.reason}' if latched
                            else f'nothing to resume: state {was.name} is not latched')
        self._publish()
        return response

    def _on_emergency_stop(self, request, response):
        self._advance(EmergencyStop())
        self._publish()
        response.success = True
        response.message = 'emergency stop latched: brake until train/resume'
        return response

    # -- output ---------------------------------------------------------------------------------
    def _publish(self) -> None:
        state = self._state
        msg = SpeedCommand()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.source_stamp = stamp_from_ns(state.source_stamp_ns)
        msg.power = state.power
        msg.brake = state.brake
        msg.state = int(state.mode)
        msg.reason = state.reason
        self._command_pub.publish(msg)
        self._last_publish_s = self._now_s()

    def _publish_diagnostics(self) -> None:
        state = self._state
        level = 'warn' if state.mode in (Mode.FAILSAFE, Mode.DANGER_LATCHED) else 'ok'
        age = 'never' if state.last_frame_time is None else f'{self._now_s() - state.last_frame_time:.2f}'
        values = {'state': state.mode.name, 'power_pct': str(state.power), 'brake': str(state.brake),
                  'limit_pct': str(state.limit_pct), 'detections_age_s': age}
        self._diag_pub.publish(diagnostics(self.get_clock().now().to_msg(), f'{self.get_name()}: speed policy',
                                           level, f'{state.mode.name}: {state.reason}', values))
