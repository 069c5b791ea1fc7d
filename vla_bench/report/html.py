"""The report as one self-contained HTML page: no network fetches, charts embedded as PNG data URIs,
episode videos linked by relative path."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd
from matplotlib.figure import Figure

from vla_bench.report.categories import CATEGORY_NOTE
from vla_bench.report.differences import DIFFERENCE_NOTE, difference_lines
from vla_bench.report.compare import show
from vla_bench.report.markdown import CI_NOTE, average_note, cell, column_titles, lookup, table_suites
from vla_bench.report.runs import LoadedRun
from vla_bench.report.table import NO_TASK

if TYPE_CHECKING:
    from vla_bench.report.build import Report

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
ul.warnings li { color: #8a4b00; }
img.chart { max-width: 100%; border: 1px solid #eee; margin-bottom: 1em; }
details { margin: 0.5em 0 1em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """An HTML table; the first `text_columns` columns are left-aligned. Cells are escaped here."""
    def row_html(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(
            f'<{tag}{" class=text" if i < text_columns else ""}>{_e(c)}</{tag}>' for i, c in enumerate(cells)
        ) + "</tr>"  # fmt: skip

    body = "\n".join(row_html(r, "td") for r in rows)
    return f"<table>\n{row_html(header, 'th')}\n{body}\n</table>"


def suite_chart(frame: pd.DataFrame, suite: str, titles: dict[str, str]) -> str:
    """A PNG (base64) bar chart of one suite: per task and overall, one bar per run with its Wilson
    interval as error bar; published baselines as dashed lines at their suite rate."""
    rows = lookup(frame)
    runs = [c for c in titles if (c, "suite", suite, NO_TASK) in rows and rows[(c, "suite", suite, NO_TASK)]["kind"] == "run"]
    baselines = [c for c in titles if c not in runs and (c, "suite", suite, NO_TASK) in rows]
    task_ids = sorted({int(t) for t in frame.loc[(frame["suite"] == suite) & (frame["level"] == "task"), "task_id"]})
    groups = [(str(t), "task", t) for t in task_ids] + [("all", "suite", NO_TASK)]
    width = min(18.0, 4.0 + 0.45 * len(groups) * max(1, len(runs)))
    figure = Figure(figsize=(width, 3.6), dpi=100)
    axes = figure.add_subplot()
    bar = 0.8 / max(1, len(runs))
    for index, column in enumerate(runs):
        xs, heights, low, high = [], [], [], []
        for position, (_, level, task_id) in enumerate(groups):
            row = rows.get((column, level, suite, task_id))
            if row is None or pd.isna(row["success_rate"]):
                continue
            rate = 100 * row["success_rate"]
            xs.append(position - 0.4 + bar * (index + 0.5))
            heights.append(rate)
            low.append(rate - 100 * row["ci_low"])
            high.append(100 * row["ci_high"] - rate)
        axes.bar(xs, heights, width=bar, yerr=[low, high], capsize=2, label=titles[column], color=COLOURS[index % len(COLOURS)])
    for index, column in enumerate(baselines):
        rate = 100 * rows[(column, "suite", suite, NO_TASK)]["success_rate"]
        axes.axhline(rate, linestyle="--", linewidth=1, color=COLOURS[(len(runs) + index) % len(COLOURS)], label=f"{titles[column]} (published)")
    axes.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=90 if len(groups) > 20 else 0)
    axes.set_xlabel("task id")
    axes.set_ylabel("success %")
    axes.set_ylim(0, 105)
    axes.set_title(f"{suite}: success with 95% Wilson intervals")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _suite_table(frame: pd.DataFrame, titles: dict[str, str]) -> str:
    rows = lookup(frame)
    body = [[suite, *(cell(rows.get((c, "suite", suite, NO_TASK))) for c in titles)] for suite in table_suites(frame)]
    body.append(["Average", *(cell(rows.get((c, "average", "", NO_TASK))) for c in titles)])
    return _table(["suite", *titles.values()], body)


def _task_table(frame: pd.DataFrame, titles: dict[str, str]) -> str:
    rows = lookup(frame)
    tasks = frame[frame["level"] == "task"]
    columns = [c for c in titles if c in set(tasks["column"])]
    order = table_suites(frame)
    keys = sorted({(r["suite"], int(r["task_id"])): r["task"] for _, r in tasks.iterrows()}.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1]))
    body = [[suite, str(task_id), name, *(cell(rows.get((c, "task", suite, task_id))) for c in columns)] for (suite, task_id), name in keys]
    return _table(["suite", "task", "instruction", *(titles[c] for c in columns)], body, text_columns=3)


def _key_values(data: dict[str, Any]) -> str:
    return _table(["field", "value"], [[k, "–" if v is None else show(v)] for k, v in data.items()], text_columns=2)


def _videos(run: LoadedRun, html_dir: Path) -> str:
    videos = run.videos()
    if not videos:
        return "<p>No episode videos in this run folder.</p>"
    outcome = {(r.suite, r.task_id, r.init_idx): r for r in run.records}
    # An episode key in the file name, e.g. libero_object_task3_init7.mp4 or libero_10/3/7.mp4.
    suites = "|".join(re.escape(s) for s in sorted(run.suites, key=len, reverse=True))
    pattern = re.compile(rf"({suites})\D+(\d+)\D+(\d+)")
    items = []
    for video in videos:
        relative = video.relative_to(run.path / "videos").as_posix()
        href = urllib.parse.quote(Path(os.path.relpath(video.resolve(), html_dir)).as_posix())
        note = ""
        match = pattern.search(relative.rsplit(".", 1)[0])
        if match:
            record = outcome.get((match.group(1), int(match.group(2)), int(match.group(3))))
            if record is not None:
                note = " — error" if record.status != "ok" else (" — success" if record.success else " — failure")
        items.append(f'<li><a href="{_e(href)}">{_e(relative)}</a>{_e(note)}</li>')
    return "<ul>\n" + "\n".join(items) + "\n</ul>"


def _run_section(run: LoadedRun, html_dir: Path) -> str:
    info = run.info
    overview = {
        "folder": str(run.path.resolve()),
        "policy": run.policy_name,
        "checkpoint": run.checkpoint.get("path"),
        "checkpoint sha256": run.checkpoint.get("sha256"),
        "env": info.get("env"),
        "rendering": info.get("rendering"),
        "renderer": info.get("renderer"),
        "suites": ", ".join(run.suites),
        "tasks": info.get("tasks"),
        "trials per task": info.get("trials"),
        "step limits": info.get("max_steps"),
        "seed": info.get("seed"),
        "status": info.get("status"),
        "started": info.get("started_at"),
        "finished": info.get("finished_at"),
        "git": info.get("git"),
    }
    parts = [
        f"<h3>{_e(run.label)}</h3>",
        _key_values(overview),
        f"<details><summary>protocol {_e(run.protocol_name)}</summary>{_key_values(run.protocol)}</details>",
        f"<details><summary>deviations from the protocol</summary>{_key_values(info.get('deviations') or {})}</details>",
        f"<details><summary>versions</summary>{_key_values(info.get('versions') or {})}</details>",
        "<h4>Episode videos</h4>",
        _videos(run, html_dir),
    ]
    return "\n".join(parts)


def _markdown_tables(lines: list[str]) -> str:
    """Markdown tables (and their ### titles) as HTML tables with the same cells."""
    html: list[str] = []
    rows: list[str] = []
    for line in lines + [""]:
        if line.startswith("### "):
            html.append(f"<h3>{_e(line[4:])}</h3>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{_e(c)}</{tag}>" for c in cells) + "</tr>")
        elif rows:
            html.append("<table>" + "".join(rows) + "</table>")
            rows = []
    return "\n".join(html)


def render_html(report: Report, html_dir: Path) -> str:
    """The whole page. `html_dir` is where the page will live (video links are relative to it)."""
    frame = report.frame
    titles = column_titles(report.runs, report.baselines)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>vla_bench report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>vla_bench report</h1>",
        f"<p>Runs: {_e(', '.join(r.label for r in report.runs))}</p>",
    ]
    if report.warnings:
        parts += ["<h2>Comparability warnings</h2>", '<ul class="warnings">', *(f"<li>{_e(w)}</li>" for w in report.warnings), "</ul>"]
    parts += ["<h2>Suites</h2>", f"<p>{_e(CI_NOTE)}</p>", _suite_table(frame, titles), f"<p>{_e(average_note(table_suites(frame)))}</p>"]
    if report.differences:
        lines = difference_lines(report.differences)
        parts += ["<h2>Differences</h2>", f"<p>{_e(DIFFERENCE_NOTE)}</p>", _markdown_tables(lines)]
    parts.append("<h2>Charts</h2>")
    for suite in table_suites(frame):
        png = suite_chart(frame, suite, titles)
        parts.append(f'<img class="chart" alt="{_e(suite)} success chart" src="data:image/png;base64,{png}">')
    if report.categories is not None and not report.categories.empty():
        from vla_bench.report.categories import category_lines

        lines = category_lines(report.categories, report.baselines)
        parts += ["<h2>Perturbation categories</h2>", f"<p>{_e(CATEGORY_NOTE)}</p>", _markdown_tables(lines)]
    parts += ["<h2>Tasks</h2>", _task_table(frame, titles)]
    if report.baselines:
        parts.append("<h2>Published baselines</h2><ol>")
        for b in report.baselines:
            note = f"; {b.protocol_note}" if b.protocol_note else ""
            parts.append(f"<li>{_e(b.model)} (<code>{_e(b.name)}</code>): {_e(b.source)}; protocol {_e(b.protocol)}{_e(note)}.</li>")
        parts.append("</ol>")
    parts.append("<h2>Runs: protocol, versions, videos</h2>")
    parts += [_run_section(run, html_dir) for run in report.runs]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
