"""The one exception of the policy package."""


class PolicyConfigError(Exception):
    """A policy value or file that is out of range, of the wrong type, or inconsistent."""
