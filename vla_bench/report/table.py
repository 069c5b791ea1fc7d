"""Success tables as a pandas DataFrame: per task, per suite and an Average row, for runs and baselines.

The frame is long-form, one row per (column, level, suite, task):

    column   the run label or baseline name shown as a table column
    kind     "run" or "baseline"
    level    "task", "suite" or "average"
    suite    suite name ("" on the average row)
    task_id  task index (-1 on suite and average rows)
    task     instruction ("" on suite and average rows)
    episodes, ok, successes, errors   counts (ok = episodes - errors; missing for baselines)
    success_rate, ci_low, ci_high     fractions; the interval is a Wilson score interval over ok episodes

The Average row is the unweighted mean of the suite rates, as LIBERO papers compute their "Avg"
column; it has no interval. A baseline's average is over the same suites as the table, and only when
the baseline has all of them.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from vla_bench import specs
from vla_bench.report.baselines import Baseline
from vla_bench.report.runs import LoadedRun
from vla_bench.report.stats import wilson_interval
from vla_bench.results.summary import Tally

COLUMNS = [
    "column", "kind", "level", "suite", "task_id", "task",
    "episodes", "ok", "successes", "errors", "success_rate", "ci_low", "ci_high",
]  # fmt: skip
NO_TASK = -1
NAN = math.nan


def suite_order(names: Iterable[str]) -> list[str]:
    """Registry order (spatial, object, goal, 10, 90), unknown suites last by name."""
    known = specs.suites().names()
    unique = set(names)
    return sorted(unique, key=lambda s: (known.index(s) if s in known else len(known), s))


def _count_row(column: str, level: str, suite: str, task_id: int, task: str, tally: Tally, confidence: float) -> dict:
    low, high = wilson_interval(tally.successes, tally.ok, confidence) if tally.ok else (NAN, NAN)
    return {
        "column": column, "kind": "run", "level": level, "suite": suite, "task_id": task_id, "task": task,
        "episodes": tally.episodes, "ok": tally.ok, "successes": tally.successes, "errors": tally.errors,
        "success_rate": tally.rate if tally.rate is not None else NAN, "ci_low": low, "ci_high": high,
    }  # fmt: skip


def _rate_row(column: str, level: str, suite: str, rate: float, kind: str) -> dict:
    return {
        "column": column, "kind": kind, "level": level, "suite": suite, "task_id": NO_TASK, "task": "",
        "episodes": NAN, "ok": NAN, "successes": NAN, "errors": NAN,
        "success_rate": rate, "ci_low": NAN, "ci_high": NAN,
    }  # fmt: skip


def run_rows(run: LoadedRun, confidence: float = 0.95) -> list[dict]:
    summary = run.summary
    rows = []
    order = suite_order(summary.suites)
    for (suite, task_id), tally in sorted(summary.tasks.items(), key=lambda item: (order.index(item[0][0]), item[0][1])):
        rows.append(_count_row(run.label, "task", suite, task_id, summary.task_names[(suite, task_id)], tally, confidence))
    suite_rates = []
    for suite in order:
        tally = summary.suites[suite]
        rows.append(_count_row(run.label, "suite", suite, NO_TASK, "", tally, confidence))
        if tally.rate is not None:
            suite_rates.append(tally.rate)
    average = sum(suite_rates) / len(suite_rates) if suite_rates else NAN
    rows.append(_rate_row(run.label, "average", "", average, "run"))
    return rows


def baseline_rows(baseline: Baseline, table_suites: Sequence[str]) -> list[dict]:
    rows = [_rate_row(baseline.name, "suite", s, baseline.success[s], "baseline") for s in table_suites if s in baseline.success]
    covered = all(s in baseline.success for s in table_suites)
    average = sum(baseline.success[s] for s in table_suites) / len(table_suites) if covered and table_suites else NAN
    rows.append(_rate_row(baseline.name, "average", "", average, "baseline"))
    return rows


def build_table(runs: Sequence[LoadedRun], baselines: Sequence[Baseline] = (), confidence: float = 0.95) -> pd.DataFrame:
    """The long-form success table of `runs` and `baselines` (see the module docstring)."""
    rows: list[dict] = []
    for run in runs:
        rows.extend(run_rows(run, confidence))
    table_suites = suite_order(s for run in runs for s in run.suites)
    for baseline in baselines:
        rows.extend(baseline_rows(baseline, table_suites))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for name in ("episodes", "ok", "successes", "errors"):
        frame[name] = frame[name].astype("Int64")
    return frame
