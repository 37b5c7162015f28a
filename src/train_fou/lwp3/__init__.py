"""LEGO Wireless Protocol 3.0 as plain Python: bytecodes, messages (encode/decode) and a stream parser.

No I/O and no rclpy here: the hub session writes `bytes(msg)` and feeds every
notification to `StreamParser.feed()`.
"""
from train_fou.lwp3.errors import Lwp3DecodeError
from train_fou.lwp3.messages import decode_message
from train_fou.lwp3.parser import StreamParser

__all__ = ['Lwp3DecodeError', 'StreamParser', 'decode_message']
