"""The model benchmark scripts run (the GPU one refuses cleanly without CUDA)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import models_gpu  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_benchmark_refuses_without_cuda(tmp_path, capsys):
    assert models_gpu.main(["--out-dir", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_gpu_benchmark_script_smoke_on_cpu(tmp_path):
    assert models_gpu.main(["--shape", "tiny", "--device", "cpu", "--batches", "2", "--reps", "1", "--name", "smoke", "--out-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "smoke.json").read_text())["rows"]
    assert rows[0]["batch"] == 2 and rows[0]["tokens_per_window"] > 7 * 98  # 7 turns x 2 views x 49 image tokens
    assert "| 2 |" in (tmp_path / "smoke.md").read_text()
