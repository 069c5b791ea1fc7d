"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class VlaBenchError(Exception):
    """An error caused by the user's input or installation, reported without a traceback."""


class PolicyOutputError(VlaBenchError):
    """A policy returned actions that cannot be sent to the simulator (NaN, wrong shape)."""
