"""The real `main()` on the fake env, and one-line errors for bad input."""

import json

import numpy as np
import pytest

from vla_bench.cli import main
from conftest import read_jsonl

RECORD_FIELDS = {"suite", "task_id", "task", "init_idx", "seed", "success", "steps", "wall_s", "status", "error", "schema_version"}


def test_eval_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["eval", "--suite", "libero_object", "--tasks", "0", "--trials", "2", "--policy", "zero",
                 "--max-steps", "20", "--env", "fake", "--output", str(out), "--no-progress"])
    assert code == 0
    assert "| libero_object | 0.0% | 0 / 2 | 0 |" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["episodes.jsonl", "run.json", "summary.csv", "summary.md"]
    records = sorted(read_jsonl(out / "episodes.jsonl"), key=lambda r: r["init_idx"])  # file: completion order
    assert all(RECORD_FIELDS <= set(r) for r in records)
    assert [(r["init_idx"], r["steps"], r["status"]) for r in records] == [(0, 20, "ok"), (1, 20, "ok")]
    run = json.loads((out / "run.json").read_text())
    for field in ("protocol", "deviations", "suites", "tasks", "trials", "policy", "seed", "versions", "renderer",
                  "host", "git", "started_at", "finished_at", "schema_version"):
        assert field in run
    assert run["status"] == "finished" and run["protocol"]["name"] == "openvla"
    assert run["reset"] == "soft" and run["episode_start"] == "fresh-env"
    assert run["policy"] == {"name": "zero", "checkpoint": {"path": None, "sha256": None}}
    assert {"python", "torch", "numpy", "mujoco", "robosuite", "libero", "vla_bench"} <= set(run["versions"])


def test_checkpoint_hash_recorded(tmp_path):
    actions = tmp_path / "actions.npy"
    np.save(actions, np.zeros((3, 7)))
    out = tmp_path / "run"
    assert main(["eval", "--suite", "libero_goal", "--tasks", "1", "--trials", "1", "--policy", "replay",
                 "--checkpoint", str(actions), "--env", "fake", "--output", str(out), "--no-progress"]) == 0
    checkpoint = json.loads((out / "run.json").read_text())["policy"]["checkpoint"]
    assert checkpoint["path"] == str(actions) and len(checkpoint["sha256"]) == 64


@pytest.mark.parametrize(
    "args, message",
    [
        (["--suite", "libero_spatal", "--policy", "zero"], "unknown suite 'libero_spatal'"),
        (["--suite", "libero_spatial", "--policy", "zer0"], "did you mean 'zero'"),
        (["--suite", "libero_spatial", "--policy", "zero", "--protocol", "vita"], "unknown protocol 'vita'"),
        (["--suite", "libero_spatial", "--policy", "zero", "--tasks", "10"], "task id 10 out of range"),
        (["--suite", "libero_spatial", "--policy", "zero", "--trials", "60"], "between 1 and 50"),
    ],
)
def test_bad_input_is_one_line(args, message, capsys, tmp_path):
    assert main(["eval", *args, "--env", "fake", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_replay_file_of_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((4, 6)))
    assert main(["eval", "--suite", "libero_goal", "--policy", "replay", "--checkpoint", str(tmp_path / "bad.npy"),
                 "--env", "fake", "--output", str(tmp_path / "r")]) == 2
    assert "expected (T, 7)" in capsys.readouterr().err


def test_existing_run_is_refused(tmp_path, capsys):
    args = ["eval", "--suite", "libero_goal", "--tasks", "0", "--trials", "1", "--max-steps", "2", "--policy", "zero",
            "--env", "fake", "--output", str(tmp_path / "r"), "--no-progress"]
    assert main(args) == 0
    before = (tmp_path / "r" / "episodes.jsonl").read_text()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "r" / "episodes.jsonl").read_text() == before


def test_listing_commands(capsys):
    assert main(["suites"]) == 0
    out = capsys.readouterr().out
    assert "libero_10" in out and "vita-vla" in out and "libero_spatial=220" in out
    assert main(["policies"]) == 0
    assert "replay" in capsys.readouterr().out
