"""Errors of the simulator package."""

from train_fou.errors import TrainFouError


class SimError(TrainFouError):
    """A scenario that cannot be loaded or sampled, or a simulation that cannot run."""
