"""Loading run folders for reporting: run.json + episode records, read-only, with a label per run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from vla_bench.errors import VlaBenchError
from vla_bench.specs import recorded_protocol
from vla_bench.results.io import read_episodes, read_run
from vla_bench.results.schema import EPISODES_FILE, EpisodeRecord
from vla_bench.results.summary import Summary

# Protocol entries that describe a preset rather than change an outcome.
PROTOCOL_DOC_FIELDS = ("description", "sources")


@dataclasses.dataclass
class LoadedRun:
    """One run folder as read from disk. `records` holds one record per episode key."""

    label: str
    path: Path
    info: dict[str, Any]
    records: list[EpisodeRecord]
    notes: list[str]  # reading problems worth a warning (torn last line, duplicate records)

    @property
    def summary(self) -> Summary:
        return Summary.from_records(self.records)

    @property
    def suites(self) -> list[str]:
        """Suites in the order run.json lists them, then any others found in the records."""
        listed = [s for s in self.info.get("suites", []) if isinstance(s, str)]
        seen = {r.suite for r in self.records}
        return [s for s in listed if s in seen] + sorted(seen - set(listed))

    @property
    def protocol(self) -> dict[str, Any]:
        protocol = self.info.get("protocol")
        return recorded_protocol(protocol) if isinstance(protocol, dict) else {}

    @property
    def protocol_name(self) -> str:
        return str(self.protocol.get("name", "?"))

    def protocol_constants(self) -> dict[str, Any]:
        """The protocol's outcome-relevant constants (description and sources left out)."""
        return {k: v for k, v in self.protocol.items() if k not in PROTOCOL_DOC_FIELDS}

    def max_steps(self) -> dict[str, Any]:
        """Effective step limit per suite (the protocol's, or the --max-steps override)."""
        steps = self.info.get("max_steps")
        return steps if isinstance(steps, dict) else {}

    def episode_set(self, suite: str) -> set[tuple[str, int, int, int]]:
        return {(r.suite, r.task_id, r.init_idx, r.seed) for r in self.records if r.suite == suite}

    @property
    def policy_name(self) -> str:
        policy = self.info.get("policy")
        return str(policy.get("name", "?")) if isinstance(policy, dict) else "?"

    @property
    def checkpoint(self) -> dict[str, Any]:
        policy = self.info.get("policy")
        checkpoint = policy.get("checkpoint") if isinstance(policy, dict) else None
        return checkpoint if isinstance(checkpoint, dict) else {}

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
    info = read_run(run_dir)
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
        info=info,
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
