"""Combining run folders (typically the shards of one run) into one run folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Sequence

from vla_bench.errors import VlaBenchError
from vla_bench.results.io import RunWriter, read_episodes, read_run
from vla_bench.results.schema import EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.runs import identity_differences

MAX_LISTED = 5


def expected_keys(run: dict[str, Any]) -> list[str]:
    """Episode keys of the full (unsharded) selection recorded in run.json, in canonical order."""
    return [
        f"{suite}/{task_id}/{init_idx}"
        for suite in run["suites"]
        for task_id in run["tasks"][suite]
        for init_idx in range(run["trials"])
    ]


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def check_shards(runs: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """Shard folders must come from one sharding (same n, each index once) or all be unsharded."""
    shards = [(path, run.get("shard")) for path, run in runs]
    if all(shard is None for _, shard in shards):
        return
    if any(shard is None for _, shard in shards):
        plain = [str(path) for path, shard in shards if shard is None]
        raise VlaBenchError(f"cannot merge sharded and unsharded runs (unsharded: {', '.join(plain)})")
    counts = {shard["count"] for _, shard in shards}
    if len(counts) > 1:
        raise VlaBenchError(f"cannot merge shards of different splits (n = {sorted(counts)})")
    seen: dict[int, Path] = {}
    for path, shard in shards:
        if shard["index"] in seen:
            raise VlaBenchError(f"shard {shard['index']}/{shard['count']} given twice: {seen[shard['index']]} and {path}")
        seen[shard["index"]] = path
    missing = sorted(set(range(counts.pop())) - set(seen))
    if missing:
        raise VlaBenchError(f"shards missing: {', '.join(str(i) for i in missing)} (of n = {shard['count']})")


def merge_runs(sources: Sequence[Path], output: Path) -> Summary:
    """Write one run folder holding every record of `sources`; refuses runs with different protocol,
    selection, checkpoint or simulator versions, and duplicate or missing episodes (naming them)."""
    if not sources:
        raise VlaBenchError("merge: no run folders given")
    if len({p.resolve() for p in sources}) != len(sources):
        raise VlaBenchError("merge: a run folder is given twice")
    runs = [(path, read_run(path)) for path in sources]
    first_path, first = runs[0]
    for path, run in runs[1:]:
        problems = identity_differences(first, run, shard=False)
        if problems:
            raise VlaBenchError(f"cannot merge {path} with {first_path}: {'; '.join(problems)}")
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
    expected = expected_keys(first)
    missing = [key for key in expected if key not in records]
    if missing:
        raise VlaBenchError(f"episodes missing (resume the shard that lacks them): {_listing(missing)}")
    unexpected = sorted(set(records) - set(expected))
    if unexpected:
        raise VlaBenchError(f"episodes outside the run's selection: {_listing(unexpected)}")

    info = {k: v for k, v in first.items() if k not in ("status", "schema_version", "shard", "resumed")}
    info["shard"] = None
    info["episodes_planned"] = len(expected)
    info["merged_from"] = [
        {"path": str(path.resolve()), "shard": run.get("shard"), "status": run.get("status"), "host": run.get("host")}
        for path, run in runs
    ]
    info["wall_s"] = sum(run.get("wall_s") or 0.0 for _, run in runs)
    writer = RunWriter.create(output, info)
    for key in expected:
        writer.append(records[key][1])
    merged_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    status = "finished" if all(run.get("status") == "finished" for _, run in runs) else "merged-incomplete"
    return writer.finish(status, merged_at=merged_at)
