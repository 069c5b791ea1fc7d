"""Loading run folders for reporting: run.json (a RunDescription) + episode records, read-only, with a
label per run; and joining the runs of one experiment on different suites into one report column."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from vla_bench.errors import VlaBenchError
from vla_bench.results.description import RunDescription, read_description
from vla_bench.results.identity import Purpose, identity, identity_differences
from vla_bench.results.io import read_episodes
from vla_bench.results.schema import EPISODES_FILE, EpisodeRecord
from vla_bench.results.summary import Summary


@dataclasses.dataclass
class LoadedRun:
    """One run folder as read from disk (or several joined into one column, `parts`). `records` holds
    one record per episode key."""

    label: str
    path: Path
    description: RunDescription
    records: list[EpisodeRecord]
    notes: list[str]  # reading problems worth a warning (torn last line, duplicate records)
    parts: tuple[str, ...] = ()  # labels of the runs joined into this column (empty: one run)
    members: tuple[RunDescription, ...] = ()  # their descriptions

    def identity(self, purpose: Purpose) -> dict[str, Any]:
        """The run's identity (`vla_bench.results.identity`); for a joined column, the fields its runs
        agree on (each per-suite field comes from the one run that has the suite)."""
        values: dict[str, list[Any]] = {}
        for member in self.members or (self.description,):
            for field, value in identity(member, purpose).items():
                values.setdefault(field, []).append(value)
        return {field: found[0] for field, found in values.items() if all(v == found[0] for v in found)}

    @property
    def info(self) -> dict[str, Any]:
        """run.json as JSON (for display)."""
        return self.description.to_json()

    @property
    def summary(self) -> Summary:
        return Summary.from_records(self.records)

    @property
    def suites(self) -> list[str]:
        """Suites in the order run.json lists them, then any others found in the records."""
        listed = list(self.description.suites)
        seen = {r.suite for r in self.records}
        return [s for s in listed if s in seen] + sorted(seen - set(listed))

    @property
    def protocol(self) -> dict[str, Any]:
        return self.description.protocol.to_dict()

    @property
    def protocol_name(self) -> str:
        """The protocol preset's name ("libero-plus+openvla" for a column joining runs under both)."""
        return "+".join(dict.fromkeys(d.protocol.name for d in self.members or (self.description,)))

    def max_steps(self) -> dict[str, Any]:
        """Effective step limit per suite (the protocol's, or the --max-steps override)."""
        return dict(self.description.max_steps)

    def episode_set(self, suite: str) -> set[tuple[str, int, int, int]]:
        return {(r.suite, r.task_id, r.init_idx, r.seed) for r in self.records if r.suite == suite}

    @property
    def policy_name(self) -> str:
        return self.description.policy.name

    @property
    def checkpoint(self) -> dict[str, Any]:
        return dataclasses.asdict(self.description.policy.checkpoint)

    def videos(self) -> list[Path]:
        """Episode videos present under the run folder's videos/ directory."""
        root = self.path / "videos"
        if not root.is_dir():
            return []
        return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".ogv", ".mov", ".mkv")


def torn_tail(path: Path) -> bool:
    """Whether a JSON-lines file ends in a partial line (a writer died mid-record)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) != b"\n"


def load_run(path: str | Path, label: str | None = None) -> LoadedRun:
    """Read a run folder. Missing files and malformed records raise VlaBenchError naming the file
    (and line); nothing in the folder is written."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise VlaBenchError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise VlaBenchError(f"{run_dir}: not a directory (expected a run folder holding run.json and episodes.jsonl)")
    description = read_description(run_dir)
    episodes_path = run_dir / EPISODES_FILE
    if not episodes_path.is_file():
        raise VlaBenchError(f"{episodes_path}: missing; the run recorded no episodes")
    records = read_episodes(run_dir)
    if not records:
        raise VlaBenchError(f"{episodes_path}: no complete episode records")
    notes = []
    if torn_tail(episodes_path):
        notes.append(f"{episodes_path}: last line is incomplete (the run was cut off mid-write); it was ignored")
    unique: dict[tuple[str, int, int], EpisodeRecord] = {}
    for record in records:
        unique[(record.suite, record.task_id, record.init_idx)] = record
    if len(unique) != len(records):
        notes.append(
            f"{episodes_path}: {len(records) - len(unique)} duplicate episode record(s); the last record of each episode is used"
        )
    return LoadedRun(
        label=label or run_dir.resolve().name,
        path=run_dir,
        description=description,
        records=list(unique.values()),
        notes=notes,
    )


def parse_names(names: str | None, count: int) -> list[str | None]:
    """Labels from a comma-separated --names value (one per run), or None for the folder name."""
    if names is None:
        return [None] * count
    labels = [n.strip() for n in names.split(",")]
    if len(labels) != count or not all(labels):
        raise VlaBenchError(f"--names: expected {count} non-empty comma-separated label(s), one per run; got {names!r}")
    return labels


def load_runs(paths: Sequence[str], names: str | None = None) -> list[LoadedRun]:
    """Load several runs; labels must be distinct so columns can be told apart."""
    if not paths:
        raise VlaBenchError("no run folder given")
    runs = [load_run(p, label) for p, label in zip(paths, parse_names(names, len(paths)))]
    labels = [r.label for r in runs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise VlaBenchError(f"two runs share the label {duplicates[0]!r}; give distinct labels with --names")
    return runs


def join_columns(runs: Sequence[LoadedRun]) -> list[LoadedRun]:
    """Runs of one experiment (same policy, checkpoint and protocol constants: the COLUMN identity) on
    different suites, joined into one column labelled by the first; runs that share a suite stay apart."""
    columns: list[LoadedRun] = []
    for run in runs:
        for i, column in enumerate(columns):
            if not set(column.suites) & set(run.suites) and not identity_differences(column.description, run.description, Purpose.COLUMN):
                columns[i] = _joined(column, run)
                break
        else:
            columns.append(run)
    return columns


def _joined(column: LoadedRun, run: LoadedRun) -> LoadedRun:
    first, other = column.description, run.description
    planned = None if first.episodes_planned is None or other.episodes_planned is None else first.episodes_planned + other.episodes_planned
    statuses = {first.status, other.status}
    description = dataclasses.replace(
        first,
        suites=(*first.suites, *other.suites),
        tasks={**first.tasks, **other.tasks},
        max_steps={**first.max_steps, **other.max_steps},
        episodes_planned=planned,
        status=statuses.pop() if len(statuses) == 1 else "mixed",
        finished_at=max(filter(None, (first.finished_at, other.finished_at)), default=None),
    )
    return LoadedRun(
        label=column.label,
        path=column.path,
        description=description,
        records=[*column.records, *run.records],
        notes=[*column.notes, *run.notes],
        parts=(*(column.parts or (column.label,)), run.label),
        members=(*(column.members or (column.description,)), run.description),
    )
