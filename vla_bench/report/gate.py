"""The regression gate: is a run's success rate significantly below a baseline's, or below a floor?

Both sides are reduced to a `GateSide`: per-suite counts plus their identity for comparison
(`vla_bench.results.identity`, Purpose.COMPARE: protocol constants, env, seed, episode start, tasks,
trials, step limits) and episode sets. Input that does not describe the same experiment is unusable
(VlaBenchError, exit 2); a significant drop or a rate under the floor is a failure (exit 1).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from vla_bench import specs
from vla_bench.errors import VlaBenchError
from vla_bench.report.build import REPORT_KIND, episode_id
from vla_bench.report.runs import load_run
from vla_bench.results.identity import Purpose, differences, identity, stated_identity
from vla_bench.report.stats import DROP_TESTS, drop_pvalue


@dataclasses.dataclass(frozen=True)
class SuiteCounts:
    successes: int
    ok: int
    errors: int = 0
    episode_set: frozenset[str] | None = None  # None: the source does not list its episodes

    @property
    def rate(self) -> float | None:
        return self.successes / self.ok if self.ok else None


@dataclasses.dataclass(frozen=True)
class GateSide:
    """One side of a gate comparison, read from a run folder or a JSON file."""

    source: str
    identity: dict[str, Any]  # Purpose.COMPARE fields; a JSON baseline states only some of them
    versions: dict[str, Any] | None
    suites: dict[str, SuiteCounts]
    incomplete: str | None = None  # why the run is not a complete evaluation, if it is not


def side_from_run(path: Path, category: str | None = None) -> GateSide:
    """A run folder as a gate side; with `category`, one unit per robustness suite ("libero_plus/camera")
    holding only that perturbation category's episodes."""
    run = load_run(path)
    suites = {}
    for suite in run.suites:
        records = [r for r in run.records if r.suite == suite]
        name = suite
        if category is not None:
            records = [r for r in records if r.category == category]
            if not records:
                continue
            name = f"{suite}/{category}"
        errors = sum(1 for r in records if r.status != "ok")
        successes = sum(1 for r in records if r.status == "ok" and r.success)
        suites[name] = SuiteCounts(
            successes=successes,
            ok=len(records) - errors,
            errors=errors,
            episode_set=frozenset(episode_id(r.suite, r.task_id, r.init_idx, r.seed) for r in records),
        )
    planned = run.description.episodes_planned
    incomplete = None
    if planned is not None and len(run.records) < planned:
        incomplete = f"{len(run.records)} of {planned} planned episodes recorded (status {run.description.status})"
    return GateSide(
        source=str(path),
        identity=identity(run.description, Purpose.COMPARE),
        versions=run.description.versions,
        suites=suites,
        incomplete=incomplete,
    )


def _int_field(entry: dict[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise VlaBenchError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
    return value


def side_from_json(path: Path) -> GateSide:
    """A baseline written by `vla-bench report RUN --json FILE`, or a hand-written one:
    {"protocol": "openvla", "suites": {"libero_object": {"successes": 440, "ok": 500}}}."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VlaBenchError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and data.get("kind") == REPORT_KIND:
        runs = data.get("runs")
        if not isinstance(runs, list) or len(runs) != 1:
            count = len(runs) if isinstance(runs, list) else 0
            raise VlaBenchError(f"{path}: a gate baseline must hold exactly one run, this report holds {count}; write one with `vla-bench report REF_RUN --json FILE`")
        data = runs[0]
    if not isinstance(data, dict) or not isinstance(data.get("suites"), dict) or not data["suites"]:
        raise VlaBenchError(f"{path}: expected a JSON object with a non-empty \"suites\" object (see `vla-bench gate --help`)")
    suites = {}
    for suite, entry in data["suites"].items():
        where = f"{path}: suites.{suite}"
        if not isinstance(entry, dict):
            raise VlaBenchError(f"{where}: expected an object with successes and ok")
        successes = _int_field(entry, "successes", where)
        if "ok" in entry:
            ok = _int_field(entry, "ok", where)
            errors = _int_field(entry, "errors", where) if "errors" in entry else 0
        else:
            errors = _int_field(entry, "errors", where) if "errors" in entry else 0
            ok = _int_field(entry, "episodes", where) - errors
        if successes > ok:
            raise VlaBenchError(f"{where}: successes {successes} exceed ok episodes {ok}")
        episodes = entry.get("episode_set")
        if episodes is not None and not (isinstance(episodes, list) and all(isinstance(e, str) for e in episodes)):
            raise VlaBenchError(f"{where}: episode_set must be a list of strings")
        suites[suite] = SuiteCounts(successes, ok, errors, None if episodes is None else frozenset(episodes))
    protocol = data.get("protocol")
    if isinstance(protocol, str):
        try:
            protocol = specs.protocols().get(protocol)  # a preset name: its constants
        except VlaBenchError as exc:
            raise VlaBenchError(f"{path}: {exc}") from None
    elif protocol is not None and not isinstance(protocol, dict):
        raise VlaBenchError(f"{path}: protocol must be a preset name or an object of constants")
    stated = {}
    for key, kind in (("env", str), ("seed", int), ("trials", int), ("max_steps", dict)):
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise VlaBenchError(f"{path}: {key} must be {'an object' if kind is dict else kind.__name__}, got {value!r}")
        stated[key] = value
    return GateSide(
        source=str(path),
        identity=stated_identity(Purpose.COMPARE, protocol=protocol, **stated),
        versions=data.get("versions") if isinstance(data.get("versions"), dict) else None,
        suites=suites,
    )


def check_category(run: GateSide, category: str, source: str) -> None:
    if not run.suites:
        known = sorted({r.category for r in load_run(Path(source)).records if r.category})
        listed = ", ".join(known) if known else "none: it holds no robustness-suite episodes"
        raise VlaBenchError(f"--category {category}: no episode of that category in {source} (its categories: {listed})")


def load_side(reference: str) -> GateSide:
    """A run folder or a JSON file."""
    path = Path(reference)
    if not path.exists():
        raise VlaBenchError(f"{path}: no such run folder or JSON file")
    return side_from_run(path) if path.is_dir() else side_from_json(path)


def check_comparable(run: GateSide, ref: GateSide, suites: Sequence[str]) -> list[str]:
    """Raise VlaBenchError when the two sides are not the same experiment; return notes on
    differences that do not invalidate the comparison (package versions, unlisted episodes)."""
    for side in (run, ref):
        if side.incomplete:
            raise VlaBenchError(f"{side.source}: incomplete run: {side.incomplete}")
    gated = {name.split("/")[0] for name in suites}  # "libero_plus/camera": a category of libero_plus
    found = differences(run.identity, ref.identity, Purpose.COMPARE, suites=sorted(gated))
    if found:
        raise VlaBenchError(f"not the same experiment (run vs baseline): {'; '.join(str(d) for d in found)}")

    notes = []
    for suite in suites:
        mine, theirs = run.suites[suite].episode_set, ref.suites[suite].episode_set
        if theirs is None or mine is None:
            notes.append(f"{suite}: the baseline does not list its episodes; episode sets not checked")
            continue
        if mine != theirs:
            only_run, only_ref = sorted(mine - theirs), sorted(theirs - mine)
            example = (only_run or only_ref)[0]
            raise VlaBenchError(
                f"different episode sets in {suite}: {len(only_run)} only in the run, {len(only_ref)} only in the baseline "
                f"(e.g. {example}); gate the same episodes (suite, task, init state, seed)"
            )
    if run.versions and ref.versions:
        for package in dict.fromkeys([*run.versions, *ref.versions]):
            if run.versions.get(package) != ref.versions.get(package):
                notes.append(f"{package} version differs: {run.versions.get(package)} (run) vs {ref.versions.get(package)} (baseline)")
    return notes


@dataclasses.dataclass(frozen=True)
class SuiteVerdict:
    suite: str
    run: SuiteCounts
    baseline: SuiteCounts
    p_value: float | None
    reasons: tuple[str, ...]  # empty: passed

    @property
    def passed(self) -> bool:
        return not self.reasons

    def line(self) -> str:
        p = "n/a" if self.p_value is None else f"{self.p_value:.4g}"
        verdict = "PASS" if self.passed else f"FAIL ({'; '.join(self.reasons)})"
        return f"{self.suite:<15} run {_counts(self.run):<22} baseline {_counts(self.baseline):<22} p={p:<8} {verdict}"

    def to_json(self) -> dict[str, Any]:
        def side(counts: SuiteCounts) -> dict[str, Any]:
            return {"successes": counts.successes, "ok": counts.ok, "errors": counts.errors, "success_rate": counts.rate}

        return {
            "suite": self.suite,
            "run": side(self.run),
            "baseline": side(self.baseline),
            "p_value": self.p_value,
            "verdict": "pass" if self.passed else "fail",
            "reasons": list(self.reasons),
        }


def _counts(counts: SuiteCounts) -> str:
    rate = "n/a" if counts.rate is None else f"{100 * counts.rate:.1f}%"
    errors = f", {counts.errors} err" if counts.errors else ""
    return f"{rate} ({counts.successes}/{counts.ok}{errors})"


@dataclasses.dataclass(frozen=True)
class GateResult:
    run: str
    baseline: str
    test: str
    alpha: float
    min_success: float | None
    verdicts: list[SuiteVerdict]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def header(self) -> str:
        floor = "" if self.min_success is None else f"; floor {100 * self.min_success:.1f}%"
        return (
            f"gate: {self.run} vs {self.baseline}\n"
            f"test: {DROP_TESTS[self.test]}, H1: run success rate < baseline's; alpha {self.alpha:g}{floor}; "
            "rates over ok episodes (errors excluded)"
        )

    def text(self) -> str:
        lines = [self.header(), *(f"note: {n}" for n in self.notes), *(v.line() for v in self.verdicts)]
        failed = sum(not v.passed for v in self.verdicts)
        lines.append(f"result: {'PASS' if self.passed else f'FAIL ({failed} of {len(self.verdicts)} suites)'}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "baseline": self.baseline,
            "test": self.test,
            "test_description": DROP_TESTS[self.test],
            "alpha": self.alpha,
            "min_success": self.min_success,
            "passed": self.passed,
            "suites": [v.to_json() for v in self.verdicts],
            "notes": self.notes,
        }


def gate_suites(run: GateSide, ref: GateSide, requested: str | None) -> list[str]:
    """The suites to gate: those named (comma-separated, aliases allowed) or all of the run's."""
    if requested is None:
        names = list(run.suites)
    else:
        names = [specs.suites().canonical(n.strip()) for n in requested.split(",") if n.strip()]
        if not names:
            raise VlaBenchError("--suite: no suite given")
    for name in names:
        if name not in run.suites:
            raise VlaBenchError(f"--suite {name}: not in the run {run.source} (it has {', '.join(run.suites)})")
        if name not in ref.suites:
            raise VlaBenchError(
                f"suite {name}: not in the baseline {ref.source} (it has {', '.join(ref.suites)}); choose suites with --suite"
            )
        if ref.suites[name].ok == 0:
            raise VlaBenchError(f"suite {name}: the baseline {ref.source} has no ok episodes to compare with")
    return names


def category_units(run: GateSide, ref: GateSide, requested: str | None) -> list[str]:
    """The "suite/category" units to gate (of the suites named with --suite, if any)."""
    wanted = None if requested is None else {specs.suites().canonical(n.strip()) for n in requested.split(",") if n.strip()}
    names = [n for n in run.suites if wanted is None or n.split("/")[0] in wanted]
    if not names:
        raise VlaBenchError(f"--suite {requested}: the run has no episodes of that category in it")
    for name in names:
        if name not in ref.suites or ref.suites[name].ok == 0:
            raise VlaBenchError(f"{name}: the baseline {ref.source} has no ok episodes of it to compare with")
    return names


def run_gate(
    run_path: str,
    baseline: str,
    *,
    suites: str | None = None,
    alpha: float = 0.05,
    min_success: float | None = None,
    test: str = "fisher",
    category: str | None = None,
) -> GateResult:
    """Compare a run folder with a baseline run folder or JSON file, suite by suite."""
    if not 0.0 < alpha < 1.0:
        raise VlaBenchError(f"--alpha {alpha}: must be between 0 and 1")
    if min_success is not None and not 0.0 <= min_success <= 1.0:
        raise VlaBenchError(f"--min-success {min_success}: give a fraction between 0 and 1 (e.g. 0.8 for 80%)")
    if test not in DROP_TESTS:
        raise VlaBenchError(f"--test {test}: known tests are {', '.join(DROP_TESTS)}")
    if not Path(run_path).is_dir():
        raise VlaBenchError(f"{run_path}: no such run folder")
    run = side_from_run(Path(run_path), category)
    if category is not None:
        check_category(run, category, run_path)
        ref = side_from_run(Path(baseline), category) if Path(baseline).is_dir() else load_side(baseline)
        names = category_units(run, ref, suites)
    else:
        ref = load_side(baseline)
        names = gate_suites(run, ref, suites)
    notes = check_comparable(run, ref, names)
    verdicts = []
    for suite in names:
        mine, theirs = run.suites[suite], ref.suites[suite]
        reasons = []
        p_value = None
        if mine.ok == 0:
            reasons.append("no ok episodes: every episode ended in an error")
        else:
            p_value = drop_pvalue(mine.successes, mine.ok, theirs.successes, theirs.ok, test)
            if p_value < alpha:
                reasons.append(f"significant drop, p < {alpha:g}")
            if min_success is not None and mine.rate is not None and mine.rate < min_success:
                reasons.append(f"below floor {100 * min_success:.1f}%")
        verdicts.append(SuiteVerdict(suite, mine, theirs, p_value, tuple(reasons)))
    return GateResult(run_path, baseline, test, alpha, min_success, verdicts, notes)
