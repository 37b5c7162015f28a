"""The one exception of the LWP3 codec."""

from train_fou.errors import TrainFouError


class Lwp3DecodeError(TrainFouError):
    """Bytes that are not a valid LEGO Wireless Protocol 3.0 message (truncated, bad length, bad value)."""
