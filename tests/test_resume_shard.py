"""Run-level behaviour of the engine: resume after kills, shards + merge, videos, memory checks."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_helpers import ExplodeSwitch, fake_factory, outcomes
from vla_bench.cli import main as cli_main
from vla_bench.config import EvalConfig
from vla_bench.errors import VlaBenchError
from vla_bench.evaluate import evaluate
from vla_bench.merge import merge_runs
from vla_bench.results.io import read_episodes, read_run
from vla_bench.rollout.resources import check_workers
from vla_bench.rollout.video import VideoRecorder, parse_video_mode

TESTS = Path(__file__).resolve().parent


def config(output: Path, **changes) -> EvalConfig:
    base = EvalConfig(
        suite="libero_spatial", policy="test-seek", env="fake", tasks="0-2", trials=4, max_steps=30,
        output=str(output), workers=2, progress=False,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Outcomes of an uninterrupted run."""
    run = tmp_path_factory.mktemp("ref") / "run"
    evaluate(config(run), env_factory=fake_factory())
    return outcomes(read_episodes(run))


KILLED_RUN = """
import functools, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even if the test runs with SIGINT ignored (a background job)
sys.path.insert(0, {tests!r})
from permit_env import PermitEnv
from test_resume_shard import config
from vla_bench.envs.fake import FakeBehaviour
from vla_bench.evaluate import evaluate
from pathlib import Path
if __name__ == "__main__":
    factory = functools.partial(PermitEnv, permits={permits!r}, behaviour=FakeBehaviour(step_seconds=0.02))
    evaluate(config(Path({out!r})), env_factory=factory)
"""


def start_run(tmp_path: Path, out: Path, permits: int) -> subprocess.Popen:
    """The run of `config(out)` in a fresh process whose envs start at most `permits` episodes."""
    folder = tmp_path / "permits"
    folder.mkdir()
    for i in range(permits):
        (folder / str(i)).touch()
    script = tmp_path / "run_eval.py"
    script.write_text(KILLED_RUN.format(tests=str(TESTS), out=str(out), permits=str(folder)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def wait_for_records(process: subprocess.Popen, out: Path, target: int, limit_s: float = 600.0) -> None:
    """Until run.json exists and episodes.jsonl holds `target` records. Fails (never goes on early) if
    the run ends first or `limit_s` passes: a kill before the executor runs tests something else."""
    episodes = out / "episodes.jsonl"
    deadline = time.monotonic() + limit_s
    while not ((out / "run.json").exists() and (target == 0 or (episodes.exists() and episodes.read_text().count("\n") >= target))):
        assert process.poll() is None, f"the run ended (exit code {process.returncode}) before {target} records"
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run wrote fewer than {target} records within {limit_s:g} s")
        time.sleep(0.005)


@pytest.mark.parametrize("trial", range(3))
def test_resume_after_kill_at_a_random_moment_matches_an_uninterrupted_run(tmp_path, reference, trial):
    rng = random.Random(trial)
    out = tmp_path / "run"
    # kill after a random number of records (0..8 of 12), plus a random fraction of a step or more;
    # the run may start one episode more than that (in flight, or finished, when the kill lands),
    # never all 12: a slow test process cannot let it finish first
    target = rng.randint(0 if trial != 2 else 1, 8)  # Ctrl-C once the executor runs
    process = start_run(tmp_path, out, permits=target + 1)
    wait_for_records(process, out, target)
    time.sleep(rng.uniform(0.0, 0.03))
    process.send_signal(signal.SIGINT if trial == 2 else signal.SIGKILL)
    process.wait(timeout=60)
    assert target <= len(read_episodes(out)) <= target + 1 < len(reference), "the kill should land mid-run"
    if trial == 2:  # Ctrl-C: workers stopped, run marked interrupted
        assert process.returncode != 0 and read_run(out)["status"] == "interrupted"
    if trial == 1:  # also a crash in the middle of writing a record
        with open(out / "episodes.jsonl", "a") as f:
            f.write('{"suite": "libero_spatial", "task_id": 2, "ini')
    evaluate(config(out, resume=True), env_factory=fake_factory())
    records = read_episodes(out)
    assert len(records) == len(reference), "no duplicates, nothing lost"
    assert outcomes(records) == reference
    assert read_run(out)["status"] == "finished"


def test_policy_exception_stops_the_run_and_leaves_it_resumable(tmp_path, reference):
    out = tmp_path / "run"
    ExplodeSwitch.on = True
    try:
        with pytest.raises(ZeroDivisionError):
            evaluate(config(out), env_factory=fake_factory())
    finally:
        ExplodeSwitch.on = False
    assert read_run(out)["status"] == "failed"
    evaluate(config(out, resume=True), env_factory=fake_factory())
    assert outcomes(read_episodes(out)) == reference


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "run"
    evaluate(config(out, trials=2), env_factory=fake_factory())
    with pytest.raises(VlaBenchError, match="trials: 2 vs 3"):
        evaluate(config(out, trials=3, resume=True))
    with pytest.raises(VlaBenchError, match="protocol"):
        evaluate(config(out, trials=2, protocol="vita-vla", resume=True))
    with pytest.raises(VlaBenchError, match="shard"):
        evaluate(config(out, trials=2, shard="0/2", resume=True))
    with pytest.raises(VlaBenchError, match="needs --output"):
        evaluate(dataclasses.replace(config(out), output=None, resume=True))
    with pytest.raises(VlaBenchError, match="not a run folder"):
        evaluate(config(tmp_path / "nothing", resume=True))
    # a run made before episodes started like a fresh env's first (fixtures placed by env history)
    run_json = out / "run.json"
    old = json.loads(run_json.read_text())
    del old["episode_start"]
    run_json.write_text(json.dumps(old))
    with pytest.raises(VlaBenchError, match="episode_start: None vs 'fresh-env'"):
        evaluate(config(out, trials=2, resume=True))


def test_resume_refuses_another_checkpoint(tmp_path):
    replay = tmp_path / "a.npy"
    import numpy as np

    np.save(replay, np.zeros((3, 7)))
    out = tmp_path / "run"
    evaluate(config(out, policy="replay", checkpoint=str(replay), trials=1, tasks="0"))
    np.save(replay, np.ones((3, 7)))
    with pytest.raises(VlaBenchError, match="checkpoint"):
        evaluate(config(out, policy="replay", checkpoint=str(replay), trials=1, tasks="0", resume=True))


def test_shards_merge_into_the_unsharded_run(tmp_path, reference):
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, out in enumerate(shards):
        evaluate(config(out, shard=f"{i}/3", workers=1 + i % 2), env_factory=fake_factory())
    assert sum(len(read_episodes(s)) for s in shards) == len(reference)
    merged = tmp_path / "merged"
    merge_runs(shards, merged)
    records = read_episodes(merged)
    assert outcomes(records) == reference
    from engine_helpers import fake_episodes

    assert [r.key for r in records] == [e.key for e in fake_episodes("0-2", 4)]  # canonical order
    assert read_run(merged)["status"] == "finished" and len(read_run(merged)["merged_from"]) == 3

    with pytest.raises(VlaBenchError, match="shards missing: 2"):
        merge_runs(shards[:2], tmp_path / "m2")
    with pytest.raises(VlaBenchError, match="given twice"):
        merge_runs([shards[0], shards[0]], tmp_path / "m3")
    other = tmp_path / "other"
    evaluate(config(other, shard="2/3", max_steps=20), env_factory=fake_factory())
    with pytest.raises(VlaBenchError, match="max_steps"):
        merge_runs([*shards[:2], other], tmp_path / "m4")
    with pytest.raises(VlaBenchError, match="cannot merge sharded and unsharded"):
        merge_runs([merged, shards[0]], tmp_path / "m5")
    import shutil

    shutil.copytree(merged, tmp_path / "copy")
    with pytest.raises(VlaBenchError, match="duplicate episodes: libero_spatial/0/0 "):
        merge_runs([merged, tmp_path / "copy"], tmp_path / "m6")


def test_merge_names_missing_episodes_and_works_from_the_cli(tmp_path, capsys):
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, out in enumerate(shards):
        evaluate(config(out, shard=f"{i}/2", trials=2, tasks="0"), env_factory=fake_factory())
    lines = (shards[1] / "episodes.jsonl").read_text().splitlines(keepends=True)
    (shards[1] / "episodes.jsonl").write_text("".join(lines[:-1]))
    lost = json.loads(lines[-1])
    key = f"{lost['suite']}/{lost['task_id']}/{lost['init_idx']}"
    assert cli_main(["merge", str(shards[0]), str(shards[1]), "--output", str(tmp_path / "m")]) == 2
    assert f"episodes missing (resume the shard that lacks them): {key}" in capsys.readouterr().err


def test_bad_shard_and_video_flags_are_one_line_errors(tmp_path, capsys):
    base = ["eval", "--suite", "libero_spatial", "--policy", "zero", "--env", "fake", "--no-progress"]
    assert cli_main([*base, "--shard", "3/3", "--output", str(tmp_path / "a")]) == 2
    assert "0 <= i < n" in capsys.readouterr().err
    assert cli_main([*base, "--video", "first-0", "--output", str(tmp_path / "b")]) == 2
    assert "first-K" in capsys.readouterr().err
    assert cli_main([*base, "--video", "all", "--render", "off", "--output", str(tmp_path / "c")]) == 2
    assert "--render off" in capsys.readouterr().err


def test_videos_are_written_for_the_selected_episodes(tmp_path):
    out = tmp_path / "run"
    evaluate(config(out, video="first-2", tasks="0-1", trials=2, max_steps=6), env_factory=fake_factory())
    names = sorted(p.name for p in (out / "videos").iterdir())
    assert names == ["libero_spatial_task0_init0_failure.mp4", "libero_spatial_task0_init1_failure.mp4"]
    import imageio.v2 as imageio

    frames = imageio.mimread(out / "videos" / names[0])
    assert len(frames) == 7  # the start observation and one per step
    assert frames[0].shape == (224, 224, 3)


def test_videos_never_overwrite(tmp_path):
    import numpy as np

    from engine_helpers import fake_episodes
    from vla_bench.results.schema import EpisodeRecord

    recorder = VideoRecorder("failures", tmp_path, fake_episodes(), "agentview")
    record = EpisodeRecord("libero_spatial", 0, "t", 0, 0, False, 3, 0.1, "ok")
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    first, second = recorder.save(record, frames), recorder.save(record, frames)
    assert first.name == "libero_spatial_task0_init0_failure.mp4" and second.name.endswith("failure-1.mp4")
    assert recorder.save(dataclasses.replace(record, success=True), frames) is None  # not a failure
    assert parse_video_mode("first-3") == ("first", 3)


def test_memory_check_refuses_too_many_workers_unless_forced():
    with pytest.raises(VlaBenchError, match=r"needs about [\d.]+ GB of memory .*--force"):
        check_workers(100_000, "libero", force=False)
    check_workers(100_000, "libero", force=True)
    check_workers(1, "fake", force=False)


def test_in_process_executor_gives_the_same_results(tmp_path, reference):
    out = tmp_path / "run"
    evaluate(config(out, workers=0, policy="test-seek"))
    assert outcomes(read_episodes(out)) == reference
