"""The exception of the hub package."""


class HubError(Exception):
    """The hub cannot be found, reached or written to; the message says which hub and why."""


class HubNotFoundError(HubError):
    """No advertiser matched the configured name or address (the message lists the hubs seen)."""
