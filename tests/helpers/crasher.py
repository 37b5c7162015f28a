"""A node whose callback raises once the hub drives: the runner must still brake the train.

It plays the speed controller (power 30 on train/speed_command every 50 ms) and,
as soon as hub/state shows that power applied, raises from its timer, as a bug in
any node's callback would.
"""
from rclpy.node import Node

from train_fou import qos
from train_fou.msg import HubState, SpeedCommand


class CrashingController(Node):
    def __init__(self, **kwargs):
        super().__init__('crasher', **kwargs)
        self.applied = None
        self._pub = self.create_publisher(SpeedCommand, 'train/speed_command', qos.RELIABLE)
        self.create_subscription(HubState, 'hub/state', self._on_state, qos.LATCHED)
        self.create_timer(0.05, self._tick)

    def _on_state(self, msg: HubState) -> None:
        self.applied = msg.applied_power

    def _tick(self) -> None:
        if self.applied == 30:
            raise RuntimeError('a bug in a callback')
        self._pub.publish(SpeedCommand(power=30, state=SpeedCommand.CRUISE, reason='crasher'))
