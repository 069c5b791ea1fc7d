"""Typed options of `--policy remote` (flags of `vla-bench eval`, without a prefix)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from vla_bench.errors import VlaBenchError


@dataclasses.dataclass(frozen=True)
class RemoteOptions:
    """Options of `--policy remote`: a model served over openpi's websocket policy protocol."""

    server: Optional[str] = None
    """--policy remote: the policy server's URL, e.g. ws://127.0.0.1:8000 (openpi protocol)."""
    api_key: Optional[str] = None
    """--policy remote: sent as `Authorization: Api-Key KEY` when connecting (never recorded)."""
    model_name: Optional[str] = None
    """--policy remote: what the served model is (e.g. "pi05_libero step 30000"); recorded and part of the
    run identity, together with the server's metadata."""
    obs_preset: str = "openpi-libero"
    """--policy remote: how observations become requests (openpi-libero: openpi's LIBERO client)."""
    obs_keys: Optional[str] = None
    """--policy remote: rename request keys, "image=K,wrist_image=K,state=K,prompt=K" (any subset)."""
    replan_steps: Optional[int] = None
    """--policy remote: actions of each returned chunk executed before the next query (default: the preset's,
    5 for openpi-libero; fewer when the server returns fewer)."""
    connect_timeout: float = 10.0
    """--policy remote: seconds to wait for the connection and the server's metadata."""
    request_timeout: float = 120.0
    """--policy remote: seconds to wait for one reply before the episode is an error (retried)."""
    reconnect_timeout: float = 30.0
    """--policy remote: seconds to keep retrying the connection of an episode after the server dropped."""

    def __post_init__(self) -> None:
        if self.replan_steps is not None and self.replan_steps < 1:
            raise VlaBenchError(f"--replan-steps {self.replan_steps}: must be at least 1")
        for name in ("connect_timeout", "request_timeout", "reconnect_timeout"):
            if getattr(self, name) <= 0:
                raise VlaBenchError(f"--{name.replace('_', '-')} must be positive")

    def given(self) -> list[str]:
        """Flags set to other than their defaults (refused for other policies)."""
        default = RemoteOptions()
        return [
            "--" + f.name.replace("_", "-")
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with the value of --api-key replaced (it is recorded in run.json)."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg == "--api-key":
            out.append(arg)
            hide = True
        elif arg.startswith("--api-key="):
            out.append("--api-key=***")
        else:
            out.append(arg)
    return out
