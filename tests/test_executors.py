"""The executor registry and contract: every registered executor gives the same records, executors are
selected with --executor, and every executor builds its envs with the env factory it is given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine_helpers import PROTOCOL, SeekPolicy, fake_episodes, fake_factory, outcomes
from vla_bench.cli import main as cli_main
from vla_bench.config import EvalConfig
from vla_bench.errors import VlaBenchError
from vla_bench.evaluate import evaluate
from vla_bench.results.io import read_episodes, read_run
from vla_bench.rollout import EXECUTORS, EnvOptions, ExecutorSetup, SerialExecutor, make_executor
from vla_bench.rollout.executor import executor_names


def config(output: Path, **changes) -> EvalConfig:
    base = EvalConfig(
        suite="libero_spatial", policy="test-seek", env="fake", tasks="0-1", trials=3, max_steps=30,
        output=str(output), workers=2, progress=False,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("name", executor_names())
def test_every_registered_executor_gives_the_same_records(name, request):
    if name == "ray":
        request.getfixturevalue("ray_cluster")  # a local two-node cluster on loopback (conftest)
    episodes = fake_episodes(tasks="0-1", trials=3)
    expected = outcomes(SerialExecutor(fake_factory(), EnvOptions(render=False)).run(episodes, SeekPolicy(), PROTOCOL))
    setup = ExecutorSetup(env_factory=fake_factory(), options=EnvOptions(render=False), workers=2, timeout_s=20.0)
    steps = []
    records = list(make_executor(name, setup).run(episodes, SeekPolicy(), PROTOCOL, lambda: steps.append(1)))
    assert outcomes(records) == expected
    assert sorted(r.key for r in records) == sorted(e.key for e in episodes)
    assert len(steps) == sum(r.steps for r in records)


def test_default_executor_is_the_pool_with_workers_and_serial_without(tmp_path):
    evaluate(config(tmp_path / "pool"), env_factory=fake_factory())
    evaluate(config(tmp_path / "serial", workers=0), env_factory=fake_factory())
    assert read_run(tmp_path / "pool")["executor"] == "pool"
    assert read_run(tmp_path / "serial")["executor"] == "serial"
    assert outcomes(read_episodes(tmp_path / "pool")) == outcomes(read_episodes(tmp_path / "serial"))


def test_serial_executor_uses_the_env_factory_given_to_evaluate(tmp_path):
    """It used to build config.env's env and ignore the factory."""
    evaluate(config(tmp_path / "run", workers=0), env_factory=fake_factory(crash_at_step=1))
    records = read_episodes(tmp_path / "run")
    assert records and all(r.status == "error" and "fake simulator crash at step 1" in r.error for r in records)


def test_an_executor_registered_elsewhere_is_selected_by_name(tmp_path):
    """What a new executor module (e.g. ray) does: register a factory, then `--executor NAME` uses it."""
    built = []

    def make(setup: ExecutorSetup):
        built.append(setup)
        return SerialExecutor(setup.env_factory, setup.options, setup.video)

    EXECUTORS.add("test-inline", make)
    try:
        evaluate(config(tmp_path / "run", executor="test-inline"), env_factory=fake_factory())
    finally:
        EXECUTORS._items.pop("test-inline")
    assert len(built) == 1 and built[0].workers == 2 and built[0].config.executor == "test-inline"
    assert read_run(tmp_path / "run")["executor"] == "test-inline"
    assert len(read_episodes(tmp_path / "run")) == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--executor", "pol"], "unknown executor 'pol'; known: "),
        (["--executor", "pol"], "(did you mean 'pool'?)"),
        (["--executor", "pool", "--workers", "0"], "--executor pool needs --workers 1 or more"),
    ],
)
def test_bad_executor_is_a_one_line_error(tmp_path, capsys, args, message):
    code = cli_main(["eval", "--suite", "libero_spatial", "--policy", "zero", "--env", "fake", "--tasks", "0",
                     "--trials", "1", "--max-steps", "2", "--output", str(tmp_path / "run"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_unknown_executor_from_the_api_raises(tmp_path):
    with pytest.raises(VlaBenchError, match="unknown executor"):
        evaluate(config(tmp_path / "run", executor="nope"))
