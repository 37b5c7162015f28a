"""The exception of the hub package."""

from train_fou.errors import TrainFouError


class HubError(TrainFouError):
    """The hub cannot be found, reached or written to; the message says which hub and why."""


class HubNotFoundError(HubError):
    """No advertiser matched the configured name or address (the message lists the hubs seen)."""


class NoMotorError(HubError):
    """The configured port has no motor: nothing attached there, or another kind of device."""
