"""`import-checkpoint`, `inspect` and `eval` as the first command of a fresh process: every registry
(architectures, importers, policies) must be complete there, whatever the process imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from model_helpers import TINY_TEACHER
from test_model_importers import _seer_pth
from vla_bench.cli import main
from vla_bench.models import from_pretrained


def vla_bench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """Run `vla-bench ARGS` in a new interpreter (the console script's entry point)."""
    env = {**os.environ, "VLA_BENCH_TORCH_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vla_bench.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_registries_fill_on_first_lookup_in_a_fresh_process():
    code = (
        "from vla_bench.models.checkpoint import ARCHITECTURES\n"
        "from vla_bench.models.importers import IMPORTERS\n"
        "from vla_bench.policies.base import POLICIES\n"
        "print(sorted(ARCHITECTURES.names()), sorted(IMPORTERS.names()), 'seer' in POLICIES, 'vita-vla' in POLICIES)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout
    assert out.strip() == "['seer', 'vita-vla'] ['seer', 'vita-vla'] True True"


def test_import_checkpoint_then_inspect_in_fresh_processes(tmp_path):
    teacher = from_pretrained(TINY_TEACHER)
    pth = _seer_pth(tmp_path, teacher)
    out = tmp_path / "imported"
    done = vla_bench("import-checkpoint", "--kind", "seer", "--source", str(pth), "--config", str(TINY_TEACHER / "config.json"),
                     "--tokenizer", str(TINY_TEACHER), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    theirs = from_pretrained(out).state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in teacher.state_dict().items())

    shown = vla_bench("inspect", str(out), "--verify")
    assert shown.returncode == 0, shown.stderr
    assert "architecture  seer" in shown.stdout and "weights load strictly" in shown.stdout



def test_an_unknown_importer_kind_names_the_known_ones(tmp_path, capsys):
    assert main(["import-checkpoint", "--kind", "seer2", "--source", "x.pth", "--config", str(TINY_TEACHER / "config.json"),
                 "--output", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip().endswith("unknown checkpoint importer 'seer2'; known: seer, vita-vla (did you mean 'seer'?)")


@pytest.mark.parametrize("policy", ["seer"])
def test_eval_with_a_checkpoint_in_a_fresh_process(tmp_path, policy):
    run = tmp_path / "run"
    done = vla_bench("eval", "--suite", "libero_10", "--policy", policy, "--checkpoint", str(TINY_TEACHER), "--protocol", "vita-vla",
                     "--tasks", "0", "--trials", "1", "--max-steps", "4", "--env", "fake", "--output", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]
    assert [(r["status"], r["steps"]) for r in records] == [("ok", 4)]
    assert json.loads((run / "run.json").read_text())["policy"]["model"]["architecture"] == "seer"
