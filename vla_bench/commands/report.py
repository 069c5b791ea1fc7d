"""`vla-bench report`, `vla-bench gate` and `vla-bench runs`: read run folders (never write them)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import tyro

from vla_bench.commands import command


@dataclasses.dataclass(frozen=True)
class ReportCommand:
    """Success tables with 95% Wilson intervals for one or more run folders, side by side."""

    runs: Annotated[tyro.conf.Positional[tuple[str, ...]], tyro.conf.arg(metavar="RUN")]
    """Run folders (each holds run.json and episodes.jsonl)."""
    names: Optional[str] = None
    """Column labels, comma-separated, one per run (default: the run folder names), e.g. teacher,student."""
    baselines: Optional[str] = None
    """Published baselines to add as columns: names from suites/baselines.toml, comma-separated, or 'all'."""
    tasks: bool = True
    """Include the per-task table in the markdown (--no-tasks: suites only)."""
    csv: Optional[str] = None
    """Also write the long-form table (one row per column, suite and task) as CSV to this file."""
    json: Optional[str] = None
    """Also write tables, warnings, runs and baselines as JSON to this file (usable as a gate baseline)."""
    html: Optional[str] = None
    """Also write a self-contained HTML page (tables, bar charts, protocol/versions, video links)."""
    differences: Optional[str] = None
    """Pairs of run labels FIRST:SECOND, comma-separated (e.g. student:student-stage2-only): the success-rate
    difference per suite with a 95% Newcombe interval and a two-sided Fisher p-value."""


@command("report", ReportCommand)
def cmd_report(config: ReportCommand) -> int:
    from vla_bench.report.build import build_report

    report = build_report(config.runs, names=config.names, baselines=config.baselines, differences=config.differences)
    print(report.markdown(with_tasks=config.tasks), end="")
    if config.csv:
        report.write_csv(config.csv)
    if config.json:
        report.write_json(config.json)
    if config.html:
        report.write_html(config.html)
    return 0


@dataclasses.dataclass(frozen=True)
class GateCommand:
    """Exit 1 when a run's success rate is significantly below a baseline's (one-sided exact test on
    the two binomial samples) or below a floor; exit 2 when the two are not comparable."""

    run: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN")]
    """Run folder to check."""
    baseline: str
    """Reference: a run folder, or a JSON file from `vla-bench report REF --json FILE` (or hand-written:
    {"protocol": "openvla", "suites": {"libero_object": {"successes": 440, "ok": 500}}})."""
    min_success: Optional[float] = None
    """Absolute floor: fail a suite whose success rate is below this fraction (e.g. 0.8)."""
    alpha: float = 0.05
    """Significance level of the one-sided test."""
    suite: Optional[str] = None
    """Suites to gate, comma-separated (default: all suites of the run)."""
    category: Optional[str] = None
    """Robustness suites: gate one perturbation category (e.g. camera) per suite instead of whole suites."""
    test: Literal["fisher", "boschloo"] = "fisher"
    """Exact test: Fisher's (conditional, conservative) or Boschloo's (unconditional, at least as powerful;
    seconds per suite at 500 episodes, minutes at 4500)."""
    json: bool = False
    """Print the verdicts as JSON instead of text."""


@command("gate", GateCommand)
def cmd_gate(config: GateCommand) -> int:
    import json as json_module

    from vla_bench.report.gate import run_gate

    result = run_gate(
        config.run, config.baseline, suites=config.suite, alpha=config.alpha, min_success=config.min_success, test=config.test,
        category=config.category,
    )
    print(json_module.dumps(result.to_json(), indent=2) if config.json else result.text())
    return 0 if result.passed else 1


@dataclasses.dataclass(frozen=True)
class RunsCommand:
    """List the run folders under a directory: policy, checkpoint, protocol (* = deviations), suites,
    episodes recorded/planned, success over ok episodes, errors, start date, status."""

    root: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="DIR")] = "results"
    """Directory to search (run folders up to 4 levels down)."""
    json: bool = False
    """Print the index as JSON lines instead of a table."""


@command("runs", RunsCommand)
def cmd_runs(config: RunsCommand) -> int:
    import json
    import sys

    from vla_bench.report.index import build_index

    frame, problems = build_index(config.root)
    for problem in problems:
        print(f"vla-bench: warning: {problem}", file=sys.stderr)
    if config.json:
        for record in frame.to_dict(orient="records"):
            print(json.dumps(record, default=str))
    elif len(frame):
        print(frame.to_string(index=False))
    else:
        print(f"no run folders under {config.root}")
    return 0
