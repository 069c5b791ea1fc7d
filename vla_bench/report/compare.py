"""Comparability warnings: every way in which runs (and published baselines) shown side by side differ
in what can move a success rate. One message per difference: the fields of their identity for
comparison (`vla_bench.results.identity`, Purpose.COMPARE), then what only may explain a difference
(preset names, suites covered, renderer, package versions, task instructions)."""

from __future__ import annotations

from typing import Any, Sequence

from vla_bench.report.baselines import Baseline
from vla_bench.report.runs import LoadedRun
from vla_bench.results.identity import Purpose, suite_of

# Identity fields by their name in a warning ("different <name>: ..."); per-suite fields add the suite.
FIELD_NAMES = {
    "env": "simulator (env)",
    "trials": "trials per task",
    "seed": "env seed",
    "episode_start": "episode start",
    "max_steps": "step limit for",
    "tasks": "tasks evaluated in",
}


def show(value: Any) -> str:
    """A run.json value in one line: lists of ids as ranges, dicts as k=v, missing as "not recorded"."""
    if value is None:
        return "not recorded"
    if isinstance(value, dict) and set(value) == {"name", "version"}:
        return f"{value['name']} {value['version']}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return format_ids(value) if all(isinstance(v, int) for v in value) else ",".join(map(str, value))
    return str(value)


def format_ids(ids: Sequence[int]) -> str:
    """0,1,2,5 -> "0-2,5"."""
    values = sorted(ids)
    parts: list[str] = []
    start = prev = None
    for v in values + [None]:
        if start is not None and (v is None or v != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if v is not None and start is None:
            start = v
        prev = v
    return ",".join(parts)


def describe(values: dict[str, Any]) -> str:
    """{"a": 220, "b": 600, "c": 220} -> "220 (a, c) vs 600 (b)"."""
    groups: dict[str, list[str]] = {}
    for label, value in values.items():
        groups.setdefault(show(value), []).append(label)
    return " vs ".join(f"{value} ({', '.join(labels)})" for value, labels in groups.items())


def _differs(values: dict[str, Any]) -> bool:
    return len({show(v) for v in values.values()}) > 1


def _run_warnings(run: LoadedRun) -> list[str]:
    """Problems with one run on its own."""
    warnings = list(run.notes)
    planned = run.description.episodes_planned
    status = run.description.status
    if status != "finished" or (planned is not None and len(run.records) < planned):
        of = f" of {planned} planned" if planned is not None else ""
        warnings.append(f"run {run.label}: status {status or 'not recorded'}, {len(run.records)}{of} episodes recorded")
    errors = sum(1 for r in run.records if r.status != "ok")
    if errors:
        warnings.append(
            f"run {run.label}: {errors} episode(s) ended in an error; they are excluded from its rates and counted as 'err'"
        )
    return warnings


def _between_runs(runs: Sequence[LoadedRun]) -> list[str]:
    warnings = []
    identities = {r.label: r.identity(Purpose.COMPARE) for r in runs}
    differing: dict[str, dict[str, Any]] = {}
    for field in dict.fromkeys(f for fields in identities.values() for f in fields):
        values = {label: fields[field] for label, fields in identities.items() if field in fields}
        if len(values) > 1 and _differs(values):  # a suite's field: among the runs that have the suite
            differing[field] = values
    constants = {f.partition(".")[2]: v for f, v in differing.items() if f.startswith("protocol.")}
    names = {r.label: r.protocol_name for r in runs}
    if _differs(names):
        detail = f" (constants that differ: {', '.join(sorted(constants))})" if constants else ""
        warnings.append(f"different protocols: {describe(names)}{detail}")
    else:
        for key, values in sorted(constants.items()):
            warnings.append(f"different protocol constant {key}: {describe(values)}")
    suites = {r.label: r.suites for r in runs}
    if _differs(suites):
        warnings.append(f"different suites: {describe(suites)}; the Average rows cover different suites")
    for field, values in differing.items():
        if field.startswith("protocol."):
            continue
        suite = suite_of(field)
        head = field.partition(".")[0]
        name = FIELD_NAMES.get(head, head) + (f" {field.partition('.')[2]}" if suite is not None else "")
        warnings.append(f"different {name}: {describe(values)}")
    renderers = {r.label: r.description.renderer for r in runs}
    if _differs(renderers):
        warnings.append(f"different renderer (MUJOCO_GL): {describe(renderers)}")
    unrecorded = [r.label for r in runs if r.description.versions is None]
    if unrecorded:
        warnings.append(f"package versions not recorded: {', '.join(unrecorded)}")
    versions = {r.label: r.description.versions for r in runs if r.label not in unrecorded}
    packages = list(dict.fromkeys(k for v in versions.values() for k in v))
    for package in packages:
        values = {label: v.get(package) for label, v in versions.items()}
        if _differs(values):
            warnings.append(f"different {package} version: {describe(values)}")
    instructions: dict[tuple[str, int], dict[str, str]] = {}
    for run in runs:
        for (suite, task_id), name in run.summary.task_names.items():
            instructions.setdefault((suite, task_id), {})[run.label] = name
    for (suite, task_id), names_by_run in sorted(instructions.items()):
        if len(names_by_run) > 1 and _differs(names_by_run):
            warnings.append(f"different instructions for task {suite}/{task_id}: {describe(names_by_run)}")
    return warnings


def _against_baselines(runs: Sequence[LoadedRun], baselines: Sequence[Baseline]) -> list[str]:
    warnings = []
    for run in runs:
        name = run.protocol_name
        others = [b.model for b in baselines if b.protocol != name]
        if others:
            protocols = sorted({b.protocol for b in baselines if b.protocol != name})
            warnings.append(
                f"run {run.label} used protocol {show(name)}; published {', '.join(others)} "
                f"followed {', '.join(protocols)}"
            )
        deviations = run.description.deviations
        if deviations:
            parts = [
                f"{field} {show(d.get('run'))} instead of {show(d.get('protocol'))}" for field, d in deviations.items() if isinstance(d, dict)
            ]
            warnings.append(
                f"run {run.label} deviates from protocol {run.protocol_name} ({'; '.join(parts)}): "
                "its rates are not comparable to published numbers"
            )
        if not _libero_results(run.description.env):
            warnings.append(f"run {run.label} ran on env {show(run.description.env)}, not LIBERO: its rates are not LIBERO results")
    return warnings


def comparability_warnings(runs: Sequence[LoadedRun], baselines: Sequence[Baseline] = ()) -> list[str]:
    """Everything that makes the columns of a report less than comparable, one message per difference."""
    warnings = [w for run in runs for w in _run_warnings(run)]
    if len(runs) > 1:
        warnings += _between_runs(runs)
    if baselines:
        warnings += _against_baselines(runs, baselines)
    return warnings


def _libero_results(kind: object) -> bool:
    """Whether a run's env kind gives LIBERO results (an unknown or missing kind does not)."""
    from vla_bench.envs import ENV_KINDS

    return isinstance(kind, str) and kind in ENV_KINDS and ENV_KINDS.get(kind).libero_results
