"""`vla-bench` command line. Subcommands live in `vla_bench.commands`, one module each."""

from __future__ import annotations

import sys
from typing import Annotated, Union

import tyro

from vla_bench.commands import load_all
from vla_bench.errors import VlaBenchError


def main(argv: list[str] | None = None) -> int:
    commands = load_all()
    choices = tuple(Annotated[commands.get(name).config, tyro.conf.subcommand(name)] for name in commands)
    config = tyro.cli(Union[choices], args=argv, prog="vla-bench")  # type: ignore[valid-type]
    handler = next(commands.get(name).handler for name in commands if type(config) is commands.get(name).config)
    try:
        return handler(config)
    except VlaBenchError as exc:
        print(f"vla-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vla-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
