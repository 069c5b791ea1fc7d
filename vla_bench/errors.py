"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class VlaBenchError(Exception):
    """An error caused by the user's input or installation, reported without a traceback."""


class PolicyOutputError(VlaBenchError):
    """A policy returned actions that cannot be sent to the simulator (NaN, wrong shape)."""


class PolicyEpisodeErrors(PolicyOutputError):
    """Some rows of a batched `infer` failed (e.g. a remote policy's connection broke).

    `actions` holds usable actions for the other rows, (B, 7) or a PolicyOutput; `errors` maps a failed row to
    (message, retry): retry True means the episode may be run again from its start.
    """

    def __init__(self, actions, errors: dict[int, tuple[str, bool]]) -> None:
        super().__init__("; ".join(message for message, _ in errors.values()))
        self.actions = actions
        self.errors = errors
