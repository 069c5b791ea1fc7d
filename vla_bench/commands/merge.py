"""`vla-bench merge`: combine shard folders into one run folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import tyro

from vla_bench.commands import command


@dataclasses.dataclass(frozen=True)
class MergeConfig:
    """Combine run folders (the shards of one run, from --shard i/n) into one run folder."""

    runs: Annotated[tuple[str, ...], tyro.conf.Positional]
    """Run folders to merge."""
    output: str
    """The merged run folder to create (must not hold a run yet)."""


@command("merge", MergeConfig)
def cmd_merge(config: MergeConfig) -> int:
    from vla_bench.merge import merge_runs
    from vla_bench.results.summary import suite_table

    summary = merge_runs([Path(p) for p in config.runs], Path(config.output))
    print(suite_table(summary))
    print(f"merged run folder: {config.output}")
    return 0
