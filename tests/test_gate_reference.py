"""The CI gate's committed reference run (results/reference/gate) stays usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_bench.cli import main
from vla_bench.report.runs import load_run

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "gate"


def test_reference_run_is_complete_and_unrendered():
    run = load_run(REFERENCE)
    assert run.info["status"] == "finished" and run.info["env"] == "libero"
    assert run.info["rendering"] is False
    assert len(run.records) == run.info["episodes_planned"] > 0
    assert all(r.status == "ok" for r in run.records)


@pytest.mark.sim
def test_rerun_of_reference_selection_passes_the_gate(tmp_path, capsys):
    """Re-run the reference's own selection on real LIBERO (what `make gate` does) and gate it."""
    info = load_run(REFERENCE).info
    tasks = sorted({t for ids in info["tasks"].values() for t in ids})
    argv = [
        "eval", "--policy", info["policy"]["name"], "--protocol", info["protocol"]["name"],
        "--suite", ",".join(info["suites"]), "--tasks", ",".join(map(str, tasks)), "--trials", str(info["trials"]),
        "--render", "off", "--no-progress", "--output", str(tmp_path / "run"),
    ]  # fmt: skip
    if "max_steps" in info["deviations"]:
        argv += ["--max-steps", str(info["deviations"]["max_steps"]["run"])]
    if info["policy"]["checkpoint"]["path"]:
        pytest.skip("the reference policy reads a checkpoint; `make gate` covers it")
    assert main(argv) == 0
    capsys.readouterr()
    code = main(["gate", str(tmp_path / "run"), "--baseline", str(REFERENCE)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "result: PASS" in out
