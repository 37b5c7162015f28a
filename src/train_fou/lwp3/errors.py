"""The one exception of the LWP3 codec."""


class Lwp3DecodeError(Exception):
    """Bytes that are not a valid LEGO Wireless Protocol 3.0 message (truncated, bad length, bad value)."""
