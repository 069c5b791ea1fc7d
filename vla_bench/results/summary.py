"""Per-task and per-suite success tables from episode records."""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Iterable

from vla_bench.results.schema import STATUS_OK, EpisodeRecord


@dataclasses.dataclass
class Tally:
    """Counts for one task or suite. Errors are not failures: the rate is over ok episodes."""

    episodes: int = 0
    successes: int = 0
    errors: int = 0

    def add(self, record: EpisodeRecord) -> None:
        self.episodes += 1
        if record.status != STATUS_OK:
            self.errors += 1
        elif record.success:
            self.successes += 1

    @property
    def ok(self) -> int:
        return self.episodes - self.errors

    @property
    def rate(self) -> float | None:
        return self.successes / self.ok if self.ok else None


@dataclasses.dataclass
class Summary:
    tasks: dict[tuple[str, int], Tally]
    task_names: dict[tuple[str, int], str]
    suites: dict[str, Tally]

    @classmethod
    def from_records(cls, records: Iterable[EpisodeRecord]) -> Summary:
        tasks: dict[tuple[str, int], Tally] = {}
        names: dict[tuple[str, int], str] = {}
        suites: dict[str, Tally] = {}
        for record in records:
            key = (record.suite, record.task_id)
            tasks.setdefault(key, Tally()).add(record)
            names[key] = record.task
            suites.setdefault(record.suite, Tally()).add(record)
        return cls(tasks=tasks, task_names=names, suites=suites)

    def ordered_tasks(self) -> list[tuple[tuple[str, int], Tally]]:
        """Tasks grouped by suite (in order of first appearance), then by task id."""
        rank = {suite: i for i, suite in enumerate(self.suites)}
        return sorted(self.tasks.items(), key=lambda item: (rank[item[0][0]], item[0][1]))

    def rows(self) -> list[dict[str, object]]:
        """One row per task, then one per suite (task_id empty)."""
        rows: list[dict[str, object]] = []
        for (suite, task_id), tally in self.ordered_tasks():
            rows.append(_row(suite, task_id, self.task_names[(suite, task_id)], tally))
        for suite, tally in self.suites.items():
            rows.append(_row(suite, None, "ALL", tally))
        return rows


def _row(suite: str, task_id: int | None, task: str, tally: Tally) -> dict[str, object]:
    return {
        "suite": suite,
        "task_id": "" if task_id is None else task_id,
        "task": task,
        "episodes": tally.episodes,
        "successes": tally.successes,
        "errors": tally.errors,
        "success_rate": "" if tally.rate is None else round(tally.rate, 4),
    }


def _percent(tally: Tally) -> str:
    return "n/a" if tally.rate is None else f"{100 * tally.rate:.1f}%"


def suite_table(summary: Summary) -> str:
    """Markdown table: one row per suite."""
    lines = ["| suite | success | successes / ok | errors |", "|---|---:|---:|---:|"]
    for suite, tally in summary.suites.items():
        lines.append(f"| {suite} | {_percent(tally)} | {tally.successes} / {tally.ok} | {tally.errors} |")
    return "\n".join(lines)


def to_markdown(summary: Summary, title: str) -> str:
    lines = [f"# {title}", "", "## Suites", "", suite_table(summary), "", "## Tasks", ""]
    lines += ["| suite | task | instruction | success | successes / ok | errors |", "|---|---:|---|---:|---:|---:|"]
    for (suite, task_id), tally in summary.ordered_tasks():
        name = summary.task_names[(suite, task_id)]
        lines.append(f"| {suite} | {task_id} | {name} | {_percent(tally)} | {tally.successes} / {tally.ok} | {tally.errors} |")
    return "\n".join(lines) + "\n"


def to_csv(summary: Summary, schema_version: int) -> str:
    out = io.StringIO()
    rows = summary.rows()
    fields = ["schema_version", *rows[0].keys()] if rows else ["schema_version"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"schema_version": schema_version, **row})
    return out.getvalue()
