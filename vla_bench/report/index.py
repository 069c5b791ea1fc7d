"""An index of run folders under a directory: who ran what, under which protocol, with what result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from vla_bench.errors import VlaBenchError
from vla_bench.results.description import read_description
from vla_bench.results.io import read_episodes
from vla_bench.results.schema import RUN_FILE
from vla_bench.results.summary import Summary

MAX_DEPTH = 4
INDEX_COLUMNS = ["run", "policy", "checkpoint", "protocol", "suites", "episodes", "success", "errors", "date", "status"]


def find_run_dirs(root: Path) -> list[Path]:
    """Folders under `root` (itself included) that hold a run.json, at most MAX_DEPTH levels down."""
    found = []
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if RUN_FILE in files:
            found.append(Path(folder))
            subfolders[:] = []  # a run folder's subfolders (videos/) hold no runs
        elif depth >= MAX_DEPTH:
            subfolders[:] = []
        subfolders.sort()
    return found


def index_row(run_dir: Path, root: Path) -> dict[str, Any]:
    info = read_description(run_dir)
    summary = Summary.from_records(read_episodes(run_dir))
    path, digest = info.policy.checkpoint.path, info.policy.checkpoint.sha256
    shown_checkpoint = "-" if not path else Path(path).name + (f" ({digest[:8]})" if digest else "")
    episodes = sum(t.episodes for t in summary.suites.values())
    ok = sum(t.ok for t in summary.suites.values())
    successes = sum(t.successes for t in summary.suites.values())
    planned = info.episodes_planned
    return {
        "run": str(run_dir.relative_to(root)) if run_dir != root else str(root),
        "policy": info.policy.name,
        "checkpoint": shown_checkpoint,
        # "*": the run overrode protocol settings (tasks, trials, step limits, seed).
        "protocol": info.protocol.name + ("*" if info.deviations else ""),
        "suites": ",".join(info.suites or sorted(summary.suites)),
        "episodes": f"{episodes}/{planned}" if planned is not None else str(episodes),
        "success": f"{100 * successes / ok:.1f}%" if ok else "n/a",
        "errors": sum(t.errors for t in summary.suites.values()),
        "date": str(info.started_at or "")[:19],
        "status": info.status or "?",
    }


def build_index(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per readable run folder (sorted by start date) and a message per unreadable one."""
    base = Path(root)
    if not base.is_dir():
        raise VlaBenchError(f"{base}: no such directory")
    rows, problems = [], []
    for run_dir in find_run_dirs(base):
        try:
            rows.append(index_row(run_dir, base))
        except VlaBenchError as exc:
            problems.append(f"skipped {run_dir}: {exc}")
    frame = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    return frame.sort_values(["date", "run"], kind="stable").reset_index(drop=True), problems
