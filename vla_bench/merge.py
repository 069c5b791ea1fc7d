"""Combining run folders (typically the shards of one run) into one run folder."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Sequence

from vla_bench.errors import VlaBenchError
from vla_bench.results.description import RunDescription, read_description
from vla_bench.results.identity import Purpose, identity_differences
from vla_bench.results.io import RunWriter, read_episodes
from vla_bench.results.schema import EpisodeRecord
from vla_bench.results.summary import Summary

MAX_LISTED = 5


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def check_shards(runs: Sequence[tuple[Path, RunDescription]]) -> None:
    """Shard folders must come from one sharding (same n, each index once) or all be unsharded."""
    shards = [(path, run.shard) for path, run in runs]
    if all(shard is None for _, shard in shards):
        return
    if any(shard is None for _, shard in shards):
        plain = [str(path) for path, shard in shards if shard is None]
        raise VlaBenchError(f"cannot merge sharded and unsharded runs (unsharded: {', '.join(plain)})")
    counts = {shard.count for _, shard in shards}
    if len(counts) > 1:
        raise VlaBenchError(f"cannot merge shards of different splits (n = {sorted(counts)})")
    seen: dict[int, Path] = {}
    for path, shard in shards:
        if shard.index in seen:
            raise VlaBenchError(f"shard {shard.index}/{shard.count} given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    missing = sorted(set(range(counts.pop())) - set(seen))
    if missing:
        raise VlaBenchError(f"shards missing: {', '.join(str(i) for i in missing)} (of n = {shard.count})")


def merge_runs(sources: Sequence[Path], output: Path) -> Summary:
    """Write one run folder holding every record of `sources`; refuses runs with different protocol,
    selection, checkpoint or simulator versions, and duplicate or missing episodes (naming them)."""
    if not sources:
        raise VlaBenchError("merge: no run folders given")
    if len({p.resolve() for p in sources}) != len(sources):
        raise VlaBenchError("merge: a run folder is given twice")
    runs = [(path, read_description(path)) for path in sources]
    first_path, first = runs[0]
    for path, run in runs[1:]:
        problems = identity_differences(first, run, Purpose.MERGE)
        if problems:
            listed = "; ".join(str(p) for p in problems)
            raise VlaBenchError(f"cannot merge {path} with {first_path}, not the same run ({first_path} vs {path}): {listed}")
    check_shards(runs)

    records: dict[str, tuple[Path, EpisodeRecord]] = {}
    duplicates = []
    for path, _ in runs:
        for record in read_episodes(path):
            if record.key in records:
                duplicates.append(f"{record.key} (in {records[record.key][0]} and {path})")
            else:
                records[record.key] = (path, record)
    if duplicates:
        raise VlaBenchError(f"duplicate episodes: {_listing(duplicates)}")
    expected = first.expected_keys()
    missing = [key for key in expected if key not in records]
    if missing:
        raise VlaBenchError(f"episodes missing (resume the shard that lacks them): {_listing(missing)}")
    unexpected = sorted(set(records) - set(expected))
    if unexpected:
        raise VlaBenchError(f"episodes outside the run's selection: {_listing(unexpected)}")

    info = dataclasses.replace(
        first,
        shard=None,
        resumed=(),
        status=None,
        episodes_planned=len(expected),
        merged_from=tuple(
            {"path": str(path.resolve()), "shard": None if run.shard is None else dataclasses.asdict(run.shard), "status": run.status, "host": run.host}
            for path, run in runs
        ),
        wall_s=sum(run.wall_s or 0.0 for _, run in runs),
    )
    writer = RunWriter.create(output, info)
    for key in expected:
        writer.append(records[key][1])
    merged_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    status = "finished" if all(run.status == "finished" for _, run in runs) else "merged-incomplete"
    return writer.finish(status, merged_at=merged_at)
