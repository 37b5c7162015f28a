"""The one exception of the policy package."""

from train_fou.errors import TrainFouError


class PolicyConfigError(TrainFouError):
    """A policy value or file that is out of range, of the wrong type, or inconsistent."""
