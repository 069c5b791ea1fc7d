"""A report over run folders: the table, the warnings, and its markdown / CSV / JSON / HTML forms."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from vla_bench.errors import VlaBenchError
from vla_bench.report.baselines import Baseline, select_baselines
from vla_bench.report.categories import CATEGORY_NOTE, CategoryTable, build_category_table, category_lines
from vla_bench.report.compare import comparability_warnings
from vla_bench.report.differences import DIFFERENCE_NOTE, Difference, build_differences, difference_lines, differences_json, parse_pairs
from vla_bench.report.markdown import render_markdown
from vla_bench.report.runs import LoadedRun, join_columns, load_runs
from vla_bench.report.table import build_table
from vla_bench.results.identity import Purpose

REPORT_KIND = "vla_bench.report"
REPORT_VERSION = 1
CONFIDENCE = 0.95


def episode_id(suite: str, task_id: int, init_idx: int, seed: int) -> str:
    """An episode's identity as one string: "<suite>/<task_id>/<init_idx>@<seed>"."""
    return f"{suite}/{task_id}/{init_idx}@{seed}"


def _clean(value: Any) -> Any:
    """NaN and pandas NA -> None, numpy scalars -> Python, for JSON."""
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def run_entry(run: LoadedRun, frame: pd.DataFrame) -> dict[str, Any]:
    """What the JSON report says about one run; the same shape `vla-bench gate --baseline` reads."""
    mine = frame[(frame["column"] == run.label) & (frame["kind"] == "run")]
    suites = {}
    for _, row in mine[mine["level"] == "suite"].iterrows():
        suite = row["suite"]
        episodes = sorted(run.episode_set(suite))
        suites[suite] = {
            **{k: _clean(row[k]) for k in ("episodes", "ok", "successes", "errors", "success_rate", "ci_low", "ci_high")},
            "episode_set": [episode_id(*e) for e in episodes],
        }
    average = mine.loc[mine["level"] == "average", "success_rate"]
    info = run.info
    return {
        "label": run.label,
        "joined": list(run.parts),
        "path": str(run.path),
        "policy": info.get("policy"),
        "protocol": info.get("protocol"),
        "deviations": info.get("deviations"),
        "env": info.get("env"),
        "trials": run.identity(Purpose.COMPARE).get("trials"),  # None: a joined column's runs differ
        "seed": info.get("seed"),
        "max_steps": info.get("max_steps"),
        "rendering": info.get("rendering"),
        "renderer": info.get("renderer"),
        "versions": info.get("versions"),
        "git": info.get("git"),
        "status": info.get("status"),
        "started_at": info.get("started_at"),
        "finished_at": info.get("finished_at"),
        "suites": suites,
        "average": _clean(average.iloc[0]) if len(average) else None,
    }


@dataclasses.dataclass
class Report:
    runs: list[LoadedRun]
    baselines: list[Baseline]
    frame: pd.DataFrame
    warnings: list[str]
    categories: CategoryTable | None = None
    differences: list[Difference] = dataclasses.field(default_factory=list)

    def markdown(self, with_tasks: bool = True) -> str:
        text = render_markdown(self.frame, self.runs, self.baselines, self.warnings, with_tasks)
        extra: list[str] = []
        if self.differences:
            extra += ["## Differences", "", DIFFERENCE_NOTE, "", *difference_lines(self.differences), ""]
        if self.categories is not None and not self.categories.empty():
            extra += ["## Perturbation categories", "", CATEGORY_NOTE, "", *category_lines(self.categories, self.baselines)]
        if not extra:
            return text
        return text.rstrip("\n") + "\n\n" + "\n".join(extra).rstrip("\n") + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": REPORT_KIND,
            "version": REPORT_VERSION,
            "confidence": CONFIDENCE,
            "interval": "wilson",
            "average": "mean of suite rates",
            "warnings": self.warnings,
            "runs": [run_entry(run, self.frame) for run in self.runs],
            "baselines": [dataclasses.asdict(b) for b in self.baselines],
            "rows": frame_records(self.frame),
            "categories": [] if self.categories is None else self.categories.to_json(),
            "differences": differences_json(self.differences),
        }

    def write_csv(self, path: str | Path) -> None:
        _write(path, self.frame.to_csv(index=False, lineterminator="\n"))

    def write_json(self, path: str | Path) -> None:
        _write(path, json.dumps(self.to_json(), indent=2) + "\n")

    def write_html(self, path: str | Path) -> None:
        from vla_bench.report.html import render_html

        target = Path(path)
        _write(target, render_html(self, target.resolve().parent))


def _write(path: str | Path, text: str) -> None:
    target = Path(path)
    if target.is_dir():
        raise VlaBenchError(f"{target}: is a directory; give a file name")
    if not target.parent.is_dir():
        raise VlaBenchError(f"{target}: folder {target.parent} does not exist")
    target.write_text(text)


def build_report(paths: Sequence[str], names: str | None = None, baselines: str | None = None, differences: str | None = None) -> Report:
    """Read the run folders and build the report (nothing is written). Runs of one experiment on
    different suites (same policy, checkpoint and protocol constants) form one column. `differences`:
    'A:B,...' pairs of column labels whose success-rate differences get intervals."""
    runs = join_columns(load_runs(paths, names))
    chosen = select_baselines(baselines)
    clash = sorted({run.label for run in runs} & {b.name for b in chosen})
    if clash:
        raise VlaBenchError(f"run label {clash[0]!r} is also the name of a baseline; choose other labels with --names")
    frame = build_table(runs, chosen, CONFIDENCE)
    return Report(
        runs=runs,
        baselines=chosen,
        frame=frame,
        warnings=comparability_warnings(runs, chosen),
        categories=build_category_table(runs, chosen),
        differences=build_differences(frame, parse_pairs(differences, [r.label for r in runs]), CONFIDENCE) if differences else [],
    )
