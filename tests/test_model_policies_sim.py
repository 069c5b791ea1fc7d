"""End-to-end on real LIBERO: the tiny student through `vla-bench eval` (a few steps)."""

from __future__ import annotations

import json

import pytest

from model_helpers import TINY_STUDENT
from vla_bench.cli import main


@pytest.mark.sim
def test_tiny_student_eval_step_on_libero(tmp_path, capsys):
    run = tmp_path / "run"
    code = main([
        "eval", "--suite", "libero_10", "--tasks", "0", "--trials", "1", "--policy", "vita-vla",
        "--checkpoint", str(TINY_STUDENT), "--protocol", "vita-vla", "--max-steps", "8",
        "--output", str(run), "--no-progress",
    ])
    assert code == 0, capsys.readouterr().err
    record = json.loads((run / "episodes.jsonl").read_text().splitlines()[0])
    assert record["status"] == "ok", record
    assert record["steps"] == 8 and record["success"] is False  # random weights do not solve the task
    info = json.loads((run / "run.json").read_text())
    assert info["image_size"] == 128 and info["rendering"] is True  # frames as rendered; the transform resizes to 200
    assert info["protocol"]["name"] == "vita-vla"
