"""Differences between two run columns of a report: success-rate difference per suite (and pooled over
the suites both ran) with a Newcombe hybrid score interval and a two-sided Fisher exact p-value.

This answers "does A beat B?" with the uncertainty of both samples, which two overlapping Wilson
intervals side by side do not (overlapping intervals can still differ significantly).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import pandas as pd
from scipy import stats

from vla_bench.errors import VlaBenchError
from vla_bench.report.stats import wilson_interval
from vla_bench.report.table import suite_order

POOLED = "all suites (pooled)"
DIFFERENCE_NOTE = (
    "Difference: first minus second success rate in percentage points over ok episodes, with a 95% Newcombe "
    "hybrid score interval (from the two Wilson intervals) and a two-sided Fisher exact p-value. An interval "
    "that contains 0 means these episodes cannot tell the two apart."
)


@dataclasses.dataclass(frozen=True)
class Difference:
    first: str
    second: str
    suite: str
    first_successes: int
    first_ok: int
    second_successes: int
    second_ok: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float


def newcombe_interval(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) for p1 - p2 from two Wilson intervals."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def difference(first: str, second: str, suite: str, s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> Difference:
    low, high = newcombe_interval(s1, n1, s2, n2, confidence)
    p_value = float(stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative="two-sided").pvalue)
    return Difference(first, second, suite, s1, n1, s2, n2, s1 / n1 - s2 / n2, low, high, p_value)


def parse_pairs(text: str, labels: Sequence[str]) -> list[tuple[str, str]]:
    """'A:B,C:D' -> [(A, B), (C, D)]; each label must be one of the report's run columns."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        first, sep, second = item.partition(":")
        if not sep or not first or not second:
            raise VlaBenchError(f"--differences {text!r}: expected FIRST:SECOND pairs of run labels separated by commas")
        for label in (first, second):
            if label not in labels:
                raise VlaBenchError(f"--differences: {label!r} is not a run column of this report (runs: {', '.join(labels)})")
        if first == second:
            raise VlaBenchError(f"--differences: {item!r} compares a column with itself")
        pairs.append((first, second))
    return pairs


def _counts(frame: pd.DataFrame, column: str) -> dict[str, tuple[int, int]]:
    rows = frame[(frame["column"] == column) & (frame["level"] == "suite") & (frame["kind"] == "run")]
    return {r.suite: (int(r.successes), int(r.ok)) for r in rows.itertuples() if not pd.isna(r.ok) and int(r.ok) > 0}


def build_differences(frame: pd.DataFrame, pairs: Sequence[tuple[str, str]], confidence: float = 0.95) -> list[Difference]:
    """Per suite both columns ran (with ok episodes), then pooled over those suites when there are several."""
    result = []
    for first, second in pairs:
        a, b = _counts(frame, first), _counts(frame, second)
        shared = suite_order(set(a) & set(b))
        if not shared:
            raise VlaBenchError(f"--differences {first}:{second}: the two runs share no suite with finished episodes")
        for suite in shared:
            result.append(difference(first, second, suite, *a[suite], *b[suite], confidence))
        if len(shared) > 1:
            s1, n1 = (sum(a[s][i] for s in shared) for i in (0, 1))
            s2, n2 = (sum(b[s][i] for s in shared) for i in (0, 1))
            result.append(difference(first, second, POOLED, s1, n1, s2, n2, confidence))
    return result


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def difference_lines(differences: Sequence[Difference]) -> list[str]:
    """The markdown table (header first)."""
    lines = [
        "| first | second | suite | first k/n | second k/n | difference (pp) [95% interval] | p (Fisher) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for d in differences:
        lines.append(
            f"| {d.first} | {d.second} | {d.suite} | {d.first_successes}/{d.first_ok} | {d.second_successes}/{d.second_ok} "
            f"| {_points(d.difference)} [{_points(d.ci_low)}, {_points(d.ci_high)}] | {d.p_value:.3g} |"
        )
    return lines


def differences_json(differences: Sequence[Difference]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(d) for d in differences]
