"""The report as markdown: runs, comparability warnings, suite table, task table, baseline sources."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from vla_bench.report.baselines import Baseline
from vla_bench.report.runs import LoadedRun
from vla_bench.report.table import NO_TASK, suite_order

CI_NOTE = (
    "Cells: success rate in percent, [95% Wilson score interval], successes / ok episodes. "
    "Episodes that ended in an error are not failures: they are excluded from the rate and shown as `err`."
)


def average_note(suites: Sequence[str]) -> str:
    return (
        f"Average: the unweighted mean of a column's suite rates, as LIBERO papers compute their Avg column (no interval); "
        f"published baselines are averaged over this table's suites ({', '.join(suites)}) when they report all of them."
    )


def percent(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def cell(row: pd.Series | None) -> str:
    """One table cell: rate [interval] k/n (err), or the bare rate for averages and baselines."""
    if row is None:
        return "–"
    if row["kind"] == "baseline" or row["level"] == "average":
        rate = row["success_rate"]
        return "–" if row["kind"] == "baseline" and math.isnan(rate) else percent(rate)
    if row["ok"]:
        text = f"{percent(row['success_rate'])} [{percent(row['ci_low'])}, {percent(row['ci_high'])}] {row['successes']}/{row['ok']}"
    else:  # every episode ended in an error
        text = "n/a 0/0"
    if row["errors"]:
        text += f" ({row['errors']} err)"
    return text


def escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def column_titles(runs: Sequence[LoadedRun], baselines: Sequence[Baseline]) -> dict[str, str]:
    """Table column key -> header text; baselines carry a footnote number."""
    titles = {run.label: run.label for run in runs}
    for number, baseline in enumerate(baselines, start=1):
        titles[baseline.name] = f"{baseline.model} [{number}]"
    return titles


def lookup(frame: pd.DataFrame) -> dict[tuple[str, str, str, int], pd.Series]:
    """Rows of the long-form table by (column, level, suite, task_id)."""
    return {(r["column"], r["level"], r["suite"], int(r["task_id"])): r for _, r in frame.iterrows()}


def table_suites(frame: pd.DataFrame) -> list[str]:
    return suite_order(frame.loc[(frame["level"] == "suite") & (frame["kind"] == "run"), "suite"])


def suite_lines(frame: pd.DataFrame, titles: dict[str, str]) -> list[str]:
    rows = lookup(frame)
    suites = table_suites(frame)
    columns = list(titles)
    lines = [
        "| suite | " + " | ".join(escape(titles[c]) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for suite in suites:
        lines.append(f"| {suite} | " + " | ".join(cell(rows.get((c, "suite", suite, NO_TASK))) for c in columns) + " |")
    lines.append("| **Average** | " + " | ".join(cell(rows.get((c, "average", "", NO_TASK))) for c in columns) + " |")
    return lines


def task_lines(frame: pd.DataFrame, titles: dict[str, str]) -> list[str]:
    rows = lookup(frame)
    tasks = frame[frame["level"] == "task"]
    columns = list(dict.fromkeys(tasks["column"]))
    order = suite_order(tasks["suite"])
    keys = sorted({(r["suite"], int(r["task_id"])) for _, r in tasks.iterrows()}, key=lambda k: (order.index(k[0]), k[1]))
    names = {(r["suite"], int(r["task_id"])): r["task"] for _, r in tasks.iterrows()}
    lines = [
        "| suite | task | instruction | " + " | ".join(escape(titles[c]) for c in columns) + " |",
        "|---|---:|---|" + "---:|" * len(columns),
    ]
    for suite, task_id in keys:
        cells = " | ".join(cell(rows.get((c, "task", suite, task_id))) for c in columns)
        lines.append(f"| {suite} | {task_id} | {escape(names[(suite, task_id)])} | {cells} |")
    return lines


def run_lines(runs: Sequence[LoadedRun]) -> list[str]:
    lines = [
        "| run | policy | checkpoint | protocol | env | suites | episodes | finished |",
        "|---|---|---|---|---|---|---:|---|",
    ]
    for run in runs:
        checkpoint = run.checkpoint
        path, digest = checkpoint.get("path"), checkpoint.get("sha256")
        shown = "–" if not path else f"`{escape(str(path).rsplit('/', 1)[-1])}`" + (f" (sha256 {digest[:12]})" if digest else "")
        planned = run.description.episodes_planned
        episodes = f"{len(run.records)}/{planned}" if planned is not None else str(len(run.records))
        finished = run.description.finished_at or run.description.status or "–"
        label = run.label + (f" (runs {' + '.join(run.parts)})" if run.parts else "")
        lines.append(
            f"| {escape(label)} | {escape(run.policy_name)} | {shown} | {escape(run.protocol_name)} | "
            f"{escape(run.description.env)} | {', '.join(run.suites)} | {episodes} | {escape(finished)} |"
        )
    return lines


def render_markdown(
    frame: pd.DataFrame,
    runs: Sequence[LoadedRun],
    baselines: Sequence[Baseline],
    warnings: Sequence[str],
    with_tasks: bool = True,
) -> str:
    """The full markdown report."""
    titles = column_titles(runs, baselines)
    lines = ["# vla_bench report", "", *run_lines(runs), ""]
    if warnings:
        lines += ["## Comparability warnings", "", *(f"- {escape(w)}" for w in warnings), ""]
    lines += ["## Suites", "", CI_NOTE, "", *suite_lines(frame, titles), "", average_note(table_suites(frame)), ""]
    if with_tasks:
        lines += ["## Tasks", "", *task_lines(frame, titles), ""]
    if baselines:
        lines += ["## Published baselines", ""]
        for number, b in enumerate(baselines, start=1):
            note = f"; {b.protocol_note}" if b.protocol_note else ""
            lines.append(f"{number}. {b.model} (`{b.name}`): {b.source}; protocol {b.protocol}{note}.")
        lines.append("")
    return "\n".join(lines)
