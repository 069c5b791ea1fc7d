"""The Ray executor on a real local two-node Ray cluster (loopback only) with fake envs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import ray

from engine_helpers import PROTOCOL, SeekPolicy, fake_episodes, fake_factory, outcomes
from vla_bench.cli import main as cli_main
from vla_bench.config import EvalConfig
from vla_bench.evaluate import evaluate
from vla_bench.results.io import read_episodes, read_run
from vla_bench.results.schema import STATUS_ERROR, STATUS_OK
from vla_bench.rollout import EnvOptions, PoolExecutor, PoolSettings, Rendering, SerialExecutor
from vla_bench.rollout.driver import EpisodeDriver
from vla_bench.rollout.ray_executor import RayExecutor, RaySettings


@pytest.fixture
def cluster(ray_cluster):
    return ray_cluster


def run_serial(episodes):
    return list(SerialExecutor(fake_factory(), EnvOptions(render=False)).run(episodes, SeekPolicy(), PROTOCOL))


def run_ray(episodes, factory=None, policy=None, **settings):
    executor = RayExecutor(
        RaySettings(**{"timeout_s": 20.0, **settings}), factory or fake_factory(), EnvOptions(render=False)
    )
    return list(executor.run(episodes, policy or SeekPolicy(), PROTOCOL))


def test_records_equal_serial_and_pool_and_envs_spread_over_both_nodes(cluster):
    """A deterministic policy gives the same records on every executor; with one CPU per node and per
    env actor, the scheduler puts one env on each node (asked from the actors mid-run)."""
    assert [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]] == ["127.0.0.1", "127.0.0.1"]
    episodes = fake_episodes(tasks="0-1", trials=3)
    serial = run_serial(episodes)
    pool = list(PoolExecutor(PoolSettings(workers=2, timeout_s=20.0), fake_factory(), EnvOptions(render=False)).run(
        episodes, SeekPolicy(), PROTOCOL
    ))
    executor = RayExecutor(RaySettings(timeout_s=20.0), fake_factory(), EnvOptions(render=False))
    placed: list[tuple[str, int]] = []

    def on_step() -> None:
        busy = [s for s in executor._slots if s.driver is not None and s.actor is not None]
        if not placed and len(busy) == 2:
            placed.extend(ray.get([s.actor.where.remote() for s in busy]))

    records = list(executor.run(episodes, SeekPolicy(), PROTOCOL, on_step))
    assert len(executor._slots) == 2, "the default is one env actor per cluster CPU"
    assert len({node for node, _ in placed}) == 2
    assert sorted(r.key for r in records) == sorted(e.key for e in episodes)
    assert outcomes(records) == outcomes(serial) == outcomes(pool)
    ignore = ("wall_s", "worker_peak_rss_mb")
    same = lambda rs: {r.key: {k: v for k, v in r.to_dict().items() if k not in ignore} for r in rs}  # noqa: E731
    assert same(records) == same(pool)
    assert all(r.attempts == 1 and r.worker_peak_rss_mb > 0 for r in records)


class ImageSeekPolicy(SeekPolicy):
    """SeekPolicy that checks it is given the rendered images."""

    def infer(self, observations):
        assert all(set(obs.images) == set(PROTOCOL.cameras) for obs in observations), "no images"
        return super().infer(observations)


def test_policy_actor_gives_the_same_records(cluster, monkeypatch):
    """With a policy actor (the GPU case, forced here) the observations go to it as references and the
    driver gets them without images; the records are the same as with the policy in the driver."""
    episodes = fake_episodes(tasks="0", trials=3, max_steps=12)
    options = EnvOptions(rendering=Rendering("all"))
    observed = []  # every env reply the driver process hands to an episode driver
    observe = EpisodeDriver.observe
    monkeypatch.setattr(EpisodeDriver, "observe", lambda self, obs, *a, **k: observed.append(obs) or observe(self, obs, *a, **k))

    def run(executor):
        return list(executor.run(episodes, ImageSeekPolicy(), PROTOCOL))

    on_actor = RayExecutor(RaySettings(timeout_s=20.0, policy_actor=True), fake_factory(), options)
    records = run(on_actor)
    assert on_actor._split and observed and all(obs.images == {} for obs in observed), "the driver got images"
    observed.clear()
    in_driver = run(RayExecutor(RaySettings(timeout_s=20.0), fake_factory(), options))
    assert observed and all(obs.images for obs in observed)
    ignore = ("wall_s", "worker_peak_rss_mb")
    same = lambda rs: {r.key: {k: v for k, v in r.to_dict().items() if k not in ignore} for r in rs}  # noqa: E731
    assert same(records) == same(in_driver)


def test_killed_env_actor_loses_only_its_episode(cluster):
    """`ray.kill` on one env actor mid-run: its episode is retried on a fresh actor, not failed."""
    episodes = fake_episodes(tasks="0", trials=4, max_steps=40)
    expected = outcomes(run_serial(episodes))
    killed: list[str] = []
    executor = RayExecutor(RaySettings(timeout_s=20.0), fake_factory(step_seconds=0.02), EnvOptions(render=False))
    records = []

    def on_step() -> None:
        if not killed and sum(1 for s in executor._slots if s.driver is not None and s.driver.steps >= 5):
            slot = next(s for s in executor._slots if s.driver is not None and s.driver.steps >= 5)
            killed.append(slot.driver.episode.key)
            threading.Thread(target=ray.kill, args=(slot.actor,), kwargs={"no_restart": True}).start()

    records = list(executor.run(episodes, SeekPolicy(), PROTOCOL, on_step))
    assert killed, "no actor was killed"
    assert outcomes(records) == expected
    attempts = {r.key: r.attempts for r in records}
    assert attempts.pop(killed[0]) == 2
    assert set(attempts.values()) == {1}
    assert all(r.status == STATUS_OK for r in records)


def test_persistent_actor_death_is_an_error_not_a_failure(cluster):
    episodes = fake_episodes(tasks="0", trials=3)
    target = episodes[1].key
    records = run_ray(episodes, factory=fake_factory(die_at_step=2, crash_episodes=frozenset({target})), retries=1)
    by_key = {r.key: r for r in records}
    bad = by_key.pop(target)
    assert bad.status == STATUS_ERROR and not bad.success and bad.attempts == 2
    assert "died" in bad.error and "after 2 attempts" in bad.error
    assert all(r.status == STATUS_OK for r in by_key.values())


def test_simulator_error_is_retried(cluster, tmp_path):
    episodes = fake_episodes(tasks="0", trials=3)
    target = episodes[0].key
    factory = fake_factory(crash_at_step=3, crash_episodes=frozenset({target}), once_dir=str(tmp_path))
    records = run_ray(episodes, factory=factory)
    assert outcomes(records) == outcomes(run_serial(episodes))
    assert {r.key: r.attempts for r in records}[target] == 2


class ExplodingPolicy(SeekPolicy):
    def infer(self, observations):
        if any(obs.step == 5 for obs in observations):
            raise ZeroDivisionError("policy bug")
        return super().infer(observations)


def test_policy_exception_stops_the_run(cluster):
    records = []
    executor = RayExecutor(RaySettings(timeout_s=20.0), fake_factory(), EnvOptions(render=False))
    with pytest.raises(ZeroDivisionError, match="policy bug"):
        records.extend(executor.run(fake_episodes(tasks="0", trials=2), ExplodingPolicy(), PROTOCOL))
    assert records == []


@pytest.mark.sim
def test_one_libero_episode_on_ray_equals_the_serial_loop(cluster):
    """Real LIBERO inside an env actor: the scripted expert (state only, no rendering), 20 steps."""
    from vla_bench.episodes import Episode
    from vla_bench.policies import PolicyContext, make_policy

    episodes = [Episode("libero_spatial", 4, 0, PROTOCOL.env_seed, 20)]
    options = EnvOptions(render=False, privileged=True)
    expert = make_policy("expert", PolicyContext(protocol=PROTOCOL))
    serial = list(SerialExecutor("libero", options).run(episodes, expert, PROTOCOL))
    executor = RayExecutor(RaySettings(timeout_s=120.0), "libero", options)
    records = list(executor.run(episodes, make_policy("expert", PolicyContext(protocol=PROTOCOL)), PROTOCOL))
    assert outcomes(records) == outcomes(serial)
    assert records[0].status == STATUS_OK and records[0].steps == 20 and records[0].task == serial[0].task
    assert records[0].worker_peak_rss_mb > 500  # a real simulator ran in the actor


def eval_config(output, **changes) -> EvalConfig:
    base = EvalConfig(
        suite="libero_spatial", policy="test-seek", env="fake", tasks="0-1", trials=3, max_steps=30,
        output=str(output), executor="ray", progress=False,
    )
    return dataclasses.replace(base, **changes)


class StopAfter:
    """Ctrl-C after `count` records have been written."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, record) -> None:
        self.count -= 1
        if self.count == 0:
            raise KeyboardInterrupt


def test_eval_on_ray_resumes_an_interrupted_run(cluster, tmp_path):
    """`--executor ray` through evaluate(): the run's one writer, run.json, Ctrl-C and --resume."""
    serial = tmp_path / "serial"
    evaluate(eval_config(serial, executor="serial", workers=0), env_factory=fake_factory())
    out = tmp_path / "ray"
    with pytest.raises(KeyboardInterrupt):
        evaluate(eval_config(out), env_factory=fake_factory(), on_record=StopAfter(2))
    assert read_run(out)["status"] == "interrupted" and read_run(out)["executor"] == "ray"
    assert read_run(out)["workers"] is None  # sized by the cluster
    assert len(read_episodes(out)) == 2
    evaluate(eval_config(out, resume=True), env_factory=fake_factory())
    records = read_episodes(out)
    assert len(records) == 6 and len({r.key for r in records}) == 6, "no duplicates, nothing lost"
    assert outcomes(records) == outcomes(read_episodes(serial))
    assert read_run(out)["status"] == "finished"


def test_address_without_ray_executor_is_a_one_line_error(tmp_path, capsys):
    code = cli_main(["eval", "--suite", "libero_spatial", "--policy", "zero", "--env", "fake", "--tasks", "0",
                     "--trials", "1", "--output", str(tmp_path / "run"), "--no-progress", "--address", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 2 and "only --executor ray connects to a cluster" in err and len(err.strip().splitlines()) == 1


def test_cli_eval_on_a_cluster_given_by_address(cluster, tmp_path):
    """`vla-bench eval --executor ray --address HOST:PORT` from a fresh process, as docs/engine.md says."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # this driver, too, keeps 127.0.0.1 as given
    out = tmp_path / "run"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "vla-bench"), "eval", "--suite", "libero_spatial", "--policy", "zero",
         "--env", "fake", "--tasks", "0", "--trials", "2", "--max-steps", "5", "--executor", "ray",
         "--address", cluster.address, "--output", str(out), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_run(out)["executor"] == "ray" and read_run(out)["status"] == "finished"
    assert sorted(r.key for r in read_episodes(out)) == ["libero_spatial/0/0", "libero_spatial/0/1"]
