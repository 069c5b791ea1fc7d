"""Per-perturbation tables for the robustness suites (LIBERO-Plus, LIBERO-PRO).

Rows: each perturbation category of a robustness suite (and each category x level), with Wilson
intervals, plus "all" and an "unperturbed" row: the column's success on the base LIBERO suites of
those variants. Columns are the report's (`report.runs.join_columns`): runs of one policy and
checkpoint under the same protocol constants (e.g. its libero_plus run under libero-plus and its
libero_goal run under openvla, which differ only in the preset's name and trial count) share one.
Published per-category numbers come from vla_bench/data/baselines.toml (`[NAME.categories]`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from vla_bench.report.baselines import Baseline
from vla_bench.report.runs import LoadedRun
from vla_bench.report.stats import wilson_interval
from vla_bench.results.schema import STATUS_OK, EpisodeRecord

CATEGORY_NOTE = (
    "Robustness suites by perturbation category and level (L1-L5; rows without a level are the whole category), "
    "success in percent [95% Wilson interval] successes/ok. Runs of one policy, checkpoint and protocol constants share a column; "
    "the unperturbed row is that column's success on the variants' base LIBERO suites, from its runs on them."
)


@dataclasses.dataclass(frozen=True)
class Cell:
    successes: int
    ok: int
    errors: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.ok if self.ok else None

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.ok, confidence) if self.ok else None

    def text(self) -> str:
        if not self.ok:
            return "n/a 0/0" + (f" ({self.errors} err)" if self.errors else "")
        low, high = self.interval()
        text = f"{100 * self.rate:.1f} [{100 * low:.1f}, {100 * high:.1f}] {self.successes}/{self.ok}"
        return text + (f" ({self.errors} err)" if self.errors else "")

    def to_json(self) -> dict:
        interval = self.interval()
        return {
            "successes": self.successes, "ok": self.ok, "errors": self.errors, "success_rate": self.rate,
            "ci_low": interval[0] if interval else None, "ci_high": interval[1] if interval else None,
        }  # fmt: skip


def tally(records: Sequence[EpisodeRecord]) -> Cell:
    ok = [r for r in records if r.status == STATUS_OK]
    return Cell(sum(r.success for r in ok), len(ok), len(records) - len(ok))


@dataclasses.dataclass
class CategoryTable:
    """Rows (suite, category, level) x columns; level None = the whole category, category "all" = the suite."""

    columns: list[str]
    rows: list[tuple[str, str, int | None]]
    cells: dict[tuple[str, str, int | None, str], Cell]
    unperturbed: dict[tuple[str, str], Cell]  # (robust suite, column) -> base suites' success
    published: dict[tuple[str, str, str], float]  # (suite, category, baseline name) -> rate

    def empty(self) -> bool:
        return not self.rows

    def to_json(self) -> list[dict]:
        out = []
        for suite, category, level in self.rows:
            for column in self.columns:
                cell = self.cells.get((suite, category, level, column))
                if cell is not None:
                    out.append({"suite": suite, "category": category, "level": level, "column": column, **cell.to_json()})
        return out


def build_category_table(runs: Sequence[LoadedRun], baselines: Sequence[Baseline] = ()) -> CategoryTable:
    """The per-category table of the robustness-suite episodes in `runs`, the report's columns (empty
    when there are none)."""
    by_column = {run.label: list(run.records) for run in runs}
    columns = [c for c in by_column if any(r.category for r in by_column[c])]
    rows: list[tuple[str, str, int | None]] = []
    cells: dict[tuple[str, str, int | None, str], Cell] = {}
    unperturbed: dict[tuple[str, str], Cell] = {}
    robust_suites = list(dict.fromkeys(r.suite for c in columns for r in by_column[c] if r.category))
    for suite in robust_suites:
        mine = {c: [r for r in by_column[c] if r.suite == suite and r.category] for c in columns}
        categories = list(dict.fromkeys(r.category for c in columns for r in mine[c]))
        categories = _ordered(suite, categories)
        for category in categories:
            levels = sorted({r.level for c in columns for r in mine[c] if r.category == category and r.level is not None})
            for level in [None, *levels]:
                rows.append((suite, category, level))
                for c in columns:
                    chosen = [r for r in mine[c] if r.category == category and (level is None or r.level == level)]
                    if chosen:
                        cells[(suite, category, level, c)] = tally(chosen)
        rows.append((suite, "all", None))
        for c in columns:
            if mine[c]:
                cells[(suite, "all", None, c)] = tally(mine[c])
            bases = {r.base_suite for r in mine[c]}
            plain = [r for r in by_column[c] if r.suite in bases and r.category is None]
            if plain:
                unperturbed[(suite, c)] = tally(plain)
    published = {
        (suite, category, b.name): rate
        for b in baselines
        for (suite, category), rate in b.categories.items()
        if suite in robust_suites
    }
    for b in baselines:
        for suite in robust_suites:
            if suite in b.success and any(key[2] == b.name for key in published):
                published[(suite, "all", b.name)] = b.success[suite]
    return CategoryTable(columns, rows, cells, unperturbed, published)


def _ordered(suite: str, found: list[str]) -> list[str]:
    """Categories in the suite's table order."""
    from vla_bench.specs import suites
    from vla_bench.variants import categories

    if suite not in suites():
        return found
    order = categories(suites().get(suite))
    return sorted(found, key=lambda c: order.index(c) if c in order else len(order))


def category_lines(table: CategoryTable, baselines: Sequence[Baseline]) -> list[str]:
    """Markdown: one table per robustness suite, categories then their levels, unperturbed last."""
    named = [b for b in baselines if any(key[2] == b.name for key in table.published)]
    lines: list[str] = []
    for suite in dict.fromkeys(row[0] for row in table.rows):
        header = ["perturbation", *table.columns, *(f"{b.model} (published)" for b in named)]
        lines += [f"### {suite}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for row_suite, category, level in table.rows:
            if row_suite != suite:
                continue
            name = f"**{category}**" if level is None else f"{category} L{level}"
            cells = [table.cells[(suite, category, level, c)].text() if (suite, category, level, c) in table.cells else "–" for c in table.columns]
            published = [
                f"{100 * table.published[(suite, category, b.name)]:.1f}" if level is None and (suite, category, b.name) in table.published else "–"
                for b in named
            ]
            lines.append(f"| {name} | " + " | ".join(cells + published) + " |")
        base = [table.unperturbed[(suite, c)].text() if (suite, c) in table.unperturbed else "–" for c in table.columns]
        lines.append("| unperturbed (base suites, other runs of the column) | " + " | ".join(base + ["–"] * len(named)) + " |")
        lines.append("")
    return lines
