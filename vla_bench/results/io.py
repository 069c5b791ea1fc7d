"""Reading and writing run folders. Records are appended one by one and flushed to disk."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from vla_bench.errors import VlaBenchError
from vla_bench.results.description import RUN_SCHEMA_VERSION, RunDescription, read_description, write_description
from vla_bench.results.schema import (
    EPISODES_FILE,
    RUN_FILE,
    SCHEMA_VERSION,
    SUMMARY_CSV,
    SUMMARY_MD,
    EpisodeRecord,
)
from vla_bench.results.summary import Summary, to_csv, to_markdown


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json as a JSON object, validated by `read_description` (scripts and tests; code reads the description)."""
    return read_description(run_dir).to_json()


def read_episodes(run_dir: Path) -> list[EpisodeRecord]:
    """All complete records. A torn last line (a crash mid-write: no trailing newline) is ignored;
    any other malformed line is an error naming the file and line."""
    path = run_dir / EPISODES_FILE
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.split("\n")
    torn_tail = not text.endswith("\n") and text != ""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if torn_tail and number == len(lines):
            break
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {data.get('schema_version')!r}")
            records.append(EpisodeRecord.from_dict(data))
        except (ValueError, TypeError) as exc:
            raise VlaBenchError(f"{path}:{number}: malformed episode record ({exc})") from None
    return records


def drop_torn_tail(path: Path) -> bool:
    """Cut a partial last line (a crash mid-append) off a JSON-lines file; True if one was cut."""
    if not path.is_file():
        return False
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return False
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())
    return True


class RunWriter:
    """Owns one run folder: run.json (its `RunDescription`), episodes.jsonl (append + fsync per record), summaries."""

    def __init__(self, run_dir: Path, description: RunDescription) -> None:
        self.run_dir = run_dir
        self.description = description
        self._episodes = None

    @classmethod
    def create(cls, run_dir: Path, description: RunDescription) -> RunWriter:
        """Start a new run folder; refuses a folder that already holds a run."""
        if (run_dir / RUN_FILE).exists() or (run_dir / EPISODES_FILE).exists():
            raise VlaBenchError(f"{run_dir} already holds a run; choose another --output")
        run_dir.mkdir(parents=True, exist_ok=True)
        writer = cls(run_dir, dataclasses.replace(description, schema_version=RUN_SCHEMA_VERSION, status="running"))
        writer.save_run()
        return writer

    @classmethod
    def reopen(cls, run_dir: Path, description: RunDescription) -> RunWriter:
        """Continue an existing run folder (resume): drops a torn last record so appends start on a
        fresh line, and stores `description` (marked running) as the new run.json."""
        drop_torn_tail(run_dir / EPISODES_FILE)
        writer = cls(run_dir, dataclasses.replace(description, schema_version=RUN_SCHEMA_VERSION, status="running"))
        writer.save_run()
        return writer

    def save_run(self) -> None:
        write_description(self.run_dir, self.description)

    def append(self, record: EpisodeRecord) -> None:
        if self._episodes is None:
            self._episodes = open(self.run_dir / EPISODES_FILE, "a")
        self._episodes.write(json.dumps(record.to_dict()) + "\n")
        self._episodes.flush()
        os.fsync(self._episodes.fileno())

    def finish(self, status: str, **fields: Any) -> Summary:
        """Close the episode file, record the end status (and `fields` of the description), write
        summary.md / summary.csv."""
        if self._episodes is not None:
            self._episodes.close()
            self._episodes = None
        self.description = dataclasses.replace(self.description, status=status, **fields)
        self.save_run()
        summary = Summary.from_records(read_episodes(self.run_dir))
        title = f"{self.description.policy.name} on {', '.join(self.description.suites)}"
        (self.run_dir / SUMMARY_MD).write_text(to_markdown(summary, title))
        (self.run_dir / SUMMARY_CSV).write_text(to_csv(summary, SCHEMA_VERSION))
        return summary
