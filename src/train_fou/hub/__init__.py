"""The LEGO hub: transports (BLE with bleak, an in-process virtual hub) and the session that drives it.

Never imports rclpy; bleak is imported only by `hub.ble`, and only when a
BLE transport is used without injected stand-ins.
"""
from train_fou.hub.errors import HubError, HubNotFoundError, NoMotorError
from train_fou.hub.session import HubSession, HubStatus, health
from train_fou.hub.transport import Advertiser, HubInfo, Transport
from train_fou.hub.virtual import SimTransport, VirtualHub

__all__ = ['Advertiser', 'HubError', 'HubInfo', 'HubNotFoundError', 'HubSession', 'HubStatus', 'NoMotorError',
           'SimTransport', 'Transport', 'VirtualHub', 'health']
