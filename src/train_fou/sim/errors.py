"""Errors of the simulator package."""


class SimError(Exception):
    """A scenario that cannot be loaded or sampled, or a simulation that cannot run."""
