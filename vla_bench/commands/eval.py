"""`vla-bench eval`: run a policy on LIBERO suites."""

from __future__ import annotations

from vla_bench.commands import command
from vla_bench.config import EvalConfig


@command("eval", EvalConfig)
def cmd_eval(config: EvalConfig) -> int:
    from vla_bench.evaluate import evaluate
    from vla_bench.results.summary import suite_table

    result = evaluate(config)
    print(suite_table(result.summary))
    print(f"run folder: {result.run_dir}")
    return 0
