"""`vla-bench report --differences`: success-rate differences with Newcombe intervals and Fisher p-values."""

from __future__ import annotations

import json

import pytest
from test_report import cli, k_of_n, write_run

from vla_bench.report.differences import newcombe_interval


@pytest.mark.parametrize(
    "counts, published",
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score)
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ],
)
def test_newcombe_interval_matches_published_values(counts, published):
    low, high = newcombe_interval(*counts)
    assert (round(low, 4), round(high, 4)) == published


def test_report_differences_per_suite_and_pooled(tmp_path, capsys):
    a = write_run(tmp_path / "a", {"libero_spatial": [k_of_n(9, 10)], "libero_object": [k_of_n(8, 10)]})
    b = write_run(tmp_path / "b", {"libero_spatial": [k_of_n(3, 10)], "libero_object": [k_of_n(7, 10)]})
    code, out, _ = cli(capsys, "report", str(a), str(b), "--differences", "a:b", "--json", str(tmp_path / "r.json"))
    assert code == 0
    assert "## Differences" in out
    assert "| a | b | libero_spatial | 9/10 | 3/10 | +60.0 [+17.1, +80.9] |" in out
    rows = json.loads((tmp_path / "r.json").read_text())["differences"]
    assert [r["suite"] for r in rows] == ["libero_spatial", "libero_object", "all suites (pooled)"]
    pooled = rows[-1]
    assert (pooled["first_successes"], pooled["first_ok"], pooled["second_successes"], pooled["second_ok"]) == (17, 20, 10, 20)
    assert rows[1]["ci_low"] < 0 < rows[1]["ci_high"]  # 8/10 vs 7/10: not told apart
    assert rows[0]["p_value"] < 0.05 < rows[1]["p_value"]


@pytest.mark.parametrize(
    "pairs, message",
    [("a:c", "'c' is not a run column"), ("a-b", "FIRST:SECOND"), ("a:a", "with itself")],
)
def test_bad_difference_pairs_are_one_line_errors(tmp_path, capsys, pairs, message):
    a = write_run(tmp_path / "a", {"libero_spatial": ["10"]})
    b = write_run(tmp_path / "b", {"libero_spatial": ["11"]})
    code, out, err = cli(capsys, "report", str(a), str(b), "--differences", pairs)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
