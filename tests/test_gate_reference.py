"""The CI gate's committed reference run (results/reference/gate) stays usable.

Re-running its selection and gating it is `make gate`, which CI runs after the tests."""

from __future__ import annotations

from pathlib import Path

from vla_bench.report.runs import load_run

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "gate"


def test_reference_run_is_complete_and_unrendered():
    run = load_run(REFERENCE)
    assert run.info["status"] == "finished" and run.info["env"] == "libero"
    assert run.info["rendering"] is False
    assert len(run.records) == run.info["episodes_planned"] > 0
    assert all(r.status == "ok" for r in run.records)
