"""`vla-bench` command line: eval, suites, policies."""

from __future__ import annotations

import dataclasses
import sys
from typing import Annotated, Union

import tyro

from vla_bench.config import EvalConfig
from vla_bench.errors import VlaBenchError


@dataclasses.dataclass(frozen=True)
class SuitesCommand:
    """List suites and protocol presets."""


@dataclasses.dataclass(frozen=True)
class PoliciesCommand:
    """List registered policies."""


Command = Union[
    Annotated[EvalConfig, tyro.conf.subcommand("eval")],
    Annotated[SuitesCommand, tyro.conf.subcommand("suites")],
    Annotated[PoliciesCommand, tyro.conf.subcommand("policies")],
]


def cmd_eval(config: EvalConfig) -> int:
    from vla_bench.evaluate import evaluate
    from vla_bench.results.summary import suite_table

    result = evaluate(config)
    print(suite_table(result.summary))
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_suites(_: SuitesCommand) -> int:
    from vla_bench.specs import protocols, suites

    print("suites:")
    for name in suites():
        s = suites().get(name)
        alias = f" (alias: {', '.join(s.aliases)})" if s.aliases else ""
        print(f"  {name:<15} {s.n_tasks:>3} tasks x {s.init_states_per_task} init states  {s.description}{alias}")
    print("protocols:")
    for name in protocols():
        p = protocols().get(name)
        steps = ", ".join(f"{k}={v}" for k, v in p.max_steps.items())
        print(f"  {name:<9} {p.description}")
        print(
            f"            render {p.render_size}px flip={p.flip_images} model {p.model_image_size}px settle {p.settle_steps} "
            f"trials {p.trials_per_task} seed {p.env_seed} state {p.state} execution {p.execution} "
            f"chunk {p.action_chunk} history {p.history}"
        )
        print(f"            max steps: {steps}")
    return 0


def cmd_policies(_: PoliciesCommand) -> int:
    from vla_bench.policies import POLICIES

    for name in POLICIES:
        factory = POLICIES.get(name)
        doc = (factory.__doc__ or "").strip().splitlines()
        print(f"  {name:<12} {doc[0] if doc else ''}")
    return 0


HANDLERS = {EvalConfig: cmd_eval, SuitesCommand: cmd_suites, PoliciesCommand: cmd_policies}


def main(argv: list[str] | None = None) -> int:
    try:
        command = tyro.cli(Command, args=argv, prog="vla-bench")
    except ValueError as exc:  # __post_init__ validation
        print(f"vla-bench: error: {exc}", file=sys.stderr)
        return 2
    try:
        return HANDLERS[type(command)](command)
    except VlaBenchError as exc:
        print(f"vla-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vla-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
