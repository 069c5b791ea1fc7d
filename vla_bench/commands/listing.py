"""`vla-bench suites` and `vla-bench policies`: what can be evaluated, and with what."""

from __future__ import annotations

import dataclasses

from vla_bench.commands import command


@dataclasses.dataclass(frozen=True)
class SuitesCommand:
    """List suites and protocol presets."""


@dataclasses.dataclass(frozen=True)
class PoliciesCommand:
    """List registered policies."""


@command("suites", SuitesCommand)
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


@command("policies", PoliciesCommand)
def cmd_policies(_: PoliciesCommand) -> int:
    from vla_bench.policies import POLICIES

    for name in POLICIES:
        doc = (POLICIES.get(name).__doc__ or "").strip().splitlines()
        print(f"  {name:<12} {doc[0] if doc else ''}")
    return 0
