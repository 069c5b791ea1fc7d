"""CLI subcommands. Each module registers a config dataclass and its handler in COMMANDS."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from vla_bench.registry import Registry


@dataclasses.dataclass(frozen=True)
class Command:
    config: type
    handler: Callable[[Any], int]


COMMANDS: Registry[Command] = Registry("command")


def command(name: str, config: type) -> Callable[[Callable[[Any], int]], Callable[[Any], int]]:
    """Register `handler(config_instance) -> exit code` as subcommand `name`."""

    def decorator(handler: Callable[[Any], int]) -> Callable[[Any], int]:
        COMMANDS.add(name, Command(config, handler))
        return handler

    return decorator


def load_all() -> Registry[Command]:
    """Import every command module (registration happens on import)."""
    from vla_bench.commands import collect as _collect  # noqa: F401
    from vla_bench.commands import doctor as _doctor  # noqa: F401
    from vla_bench.commands import eval as _eval  # noqa: F401
    from vla_bench.commands import listing as _listing  # noqa: F401
    from vla_bench.commands import report as _report  # noqa: F401
    from vla_bench.commands import checkpoints as _checkpoints  # noqa: F401
    from vla_bench.commands import merge as _merge  # noqa: F401
    from vla_bench.commands import serve as _serve  # noqa: F401
    from vla_bench.commands import train as _train  # noqa: F401
    from vla_bench.commands import distill as _distill  # noqa: F401

    return COMMANDS
