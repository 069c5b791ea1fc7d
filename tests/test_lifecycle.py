"""The run lifecycle on the fake env: one process per run folder (lock), resume that validates before
it writes, SIGTERM like Ctrl-C, write failures and unreadable replay files as one-line errors, and
--resume --retry-errors."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine_helpers import fake_factory, outcomes
from vla_bench.cli import main as cli_main
from vla_bench.config import EvalConfig
from vla_bench.errors import VlaBenchError
from vla_bench.evaluate import evaluate
from vla_bench.results.io import RunWriter, read_episodes, read_run
from vla_bench.results.lock import LOCK_FILE, RunLock, RunLocked

TESTS = Path(__file__).resolve().parent


def config(output: Path, **changes) -> EvalConfig:
    base = EvalConfig(
        suite="libero_spatial", policy="test-seek", env="fake", tasks="0-1", trials=3, max_steps=30,
        output=str(output), workers=0, progress=False,
    )
    return dataclasses.replace(base, **changes)


def eval_args(output: Path, *extra: str) -> list[str]:
    return ["eval", "--suite", "libero_spatial", "--policy", "zero", "--env", "fake", "--tasks", "0", "--trials", "2",
            "--max-steps", "3", "--workers", "0", "--output", str(output), "--no-progress", *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# -- the lock ------------------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from vla_bench.results.lock import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_eval_on_a_folder_in_use_refuses_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli_main(eval_args(run)) == 2
        err = one_line_error(capsys)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in err and "in use" in err
        assert not (run / "run.json").exists()
        assert cli_main(eval_args(run, "--resume")) == 2  # a resume refuses too, before reading anything
        assert f"pid {holder.pid}" in one_line_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert cli_main(eval_args(run)) == 0  # the holder's death released the lock
    assert not (run / LOCK_FILE).exists()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    evaluate(config(run), env_factory=fake_factory())
    assert read_run(run)["status"] == "finished" and not (run / LOCK_FILE).exists()


def test_a_lock_naming_a_live_process_or_another_host_is_refused(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RunLocked, match=f"pid {os.getppid()} on host"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 123, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match="pid 123 on host elsewhere; if that eval no longer runs, delete"):
        RunLock(tmp_path).acquire()


def test_two_evals_started_together_never_both_write(tmp_path):
    """The fault-injection finding: both ran and wrote every episode twice."""
    run = tmp_path / "run"
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "from engine_helpers import fake_factory\n"
        "from test_lifecycle import config\n"
        "from vla_bench.evaluate import evaluate\n"
        "from vla_bench.errors import VlaBenchError\n"
        "from pathlib import Path\n"
        "try:\n"
        f"    evaluate(config(Path({str(run)!r})), env_factory=fake_factory(step_seconds=0.01))\n"
        "except VlaBenchError as exc:\n"
        "    print('refused:', exc); sys.exit(2)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes == [0, 2]
    keys = [r.key for r in read_episodes(run)]
    assert len(keys) == len(set(keys)) == 6


# -- resume --------------------------------------------------------------------------------------


def test_a_failed_resume_does_not_touch_run_json(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(eval_args(run)) == 0
    capsys.readouterr()
    before = (run / "run.json").read_bytes()
    lines = (run / "episodes.jsonl").read_text().splitlines()
    (run / "episodes.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    assert cli_main(eval_args(run, "--resume")) == 2
    assert "episodes.jsonl:2: malformed episode record" in one_line_error(capsys)
    assert (run / "run.json").read_bytes() == before
    assert cli_main(eval_args(run, "--resume", "--max-steps", "4")) == 2  # other settings
    assert "started with other settings" in one_line_error(capsys)
    assert (run / "run.json").read_bytes() == before and not (run / LOCK_FILE).exists()


def test_resume_retry_errors_reruns_the_error_episodes(tmp_path):
    run = tmp_path / "run"
    crashing = fake_factory(crash_at_step=2, crash_episodes=frozenset({"libero_spatial/0/1", "libero_spatial/1/2"}))
    evaluate(config(run), env_factory=crashing)
    first = read_episodes(run)
    assert sorted(r.key for r in first if r.status == "error") == ["libero_spatial/0/1", "libero_spatial/1/2"]
    evaluate(config(run, resume=True), env_factory=fake_factory())  # plain resume: nothing to do
    assert read_episodes(run) == first
    evaluate(config(run, resume=True, retry_errors=True), env_factory=fake_factory())
    records = read_episodes(run)
    assert len(records) == 6 and all(r.status == "ok" for r in records)
    reference = tmp_path / "reference"
    evaluate(config(reference), env_factory=fake_factory())
    assert outcomes(records) == outcomes(read_episodes(reference))
    moved = [json.loads(line) for line in (run / "retried-errors.jsonl").read_text().splitlines()]
    assert sorted(m["init_idx"] for m in moved) == [1, 2] and all(m["status"] == "error" for m in moved)
    info = read_run(run)
    assert info["status"] == "finished" and info["resumed"][-1]["retried_errors"] == 2


def test_retry_errors_needs_resume(tmp_path, capsys):
    assert cli_main(eval_args(tmp_path / "run", "--retry-errors")) == 2
    assert "use it with --resume" in one_line_error(capsys)


# -- signals -------------------------------------------------------------------------------------

SLOW_RUN = """
import sys
sys.path.insert(0, {tests!r})
from engine_helpers import fake_factory
from test_lifecycle import config
from vla_bench.evaluate import evaluate
from pathlib import Path
if __name__ == "__main__":
    evaluate(config(Path({out!r}), workers={workers}, max_steps=200), env_factory=fake_factory(step_seconds=0.01))
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_marks_the_run_interrupted_like_ctrl_c(tmp_path, workers):
    run = tmp_path / "run"
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RUN.format(tests=str(TESTS), out=str(run), workers=workers))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run / "episodes.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    info = read_run(run)
    assert info["status"] == "interrupted", err
    assert "continue it with --resume" in err
    assert not (run / LOCK_FILE).exists()


# -- write failures ------------------------------------------------------------------------------


def test_a_full_disk_ends_with_one_line_and_status_failed(tmp_path, capsys, monkeypatch):
    real_append = RunWriter.append
    calls = []

    def append(self, record):
        calls.append(record)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.run_dir / "episodes.jsonl"))
        real_append(self, record)

    monkeypatch.setattr(RunWriter, "append", append)
    run = tmp_path / "run"
    assert cli_main(eval_args(run)) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and "--resume" in err
    assert read_run(run)["status"] == "failed"
    assert len(read_episodes(run)) == 1 and not (run / LOCK_FILE).exists()


def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli_main(eval_args(blocker / "run")) == 2
    assert "cannot write the run folder" in one_line_error(capsys)


def test_a_read_only_folder_mid_run_is_one_line(tmp_path, capsys, monkeypatch):
    """Every write fails from the second record on (a file system remounted read-only): the end status
    cannot be written either; the command still ends with one line."""
    import vla_bench.results.io as io

    real_append, real_save = RunWriter.append, RunWriter.save_run
    state = {"appends": 0}

    def append(self, record):
        state["appends"] += 1
        if state["appends"] >= 2:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_append(self, record)

    def save_run(self):
        if state["appends"] >= 2:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_save(self)

    monkeypatch.setattr(RunWriter, "append", append)
    monkeypatch.setattr(RunWriter, "save_run", save_run)
    assert cli_main(eval_args(tmp_path / "run")) == 2
    assert "Read-only file system" in one_line_error(capsys)
    assert io.read_run(tmp_path / "run")["status"] == "running"  # what could not be rewritten


# -- replay files --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zip-garbage"])
def test_an_unreadable_replay_file_is_one_line(tmp_path, capsys, damage):
    path = tmp_path / "actions.npz"
    np.savez(path, **{"libero_spatial/0/0": np.zeros((5, 7)), "libero_spatial/0/1": np.zeros((5, 7))})
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(300))
    else:
        path.write_bytes(b"PK\x03\x04" + os.urandom(300))
    args = eval_args(tmp_path / "run")
    args[args.index("zero")] = "replay"
    assert cli_main([*args, "--checkpoint", str(path)]) == 2
    err = one_line_error(capsys)
    assert f"replay file {path} is not a .npy/.npz file that can be read" in err
