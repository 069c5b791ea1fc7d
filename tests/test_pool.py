"""The worker-pool executor on fake envs: determinism, fault isolation, batching, rendering."""

from __future__ import annotations

import pytest

from engine_helpers import PROTOCOL, SeekPolicy, fake_episodes, fake_factory, outcomes
from vla_bench.envs.base import Observation
from vla_bench.policies.base import Policy, PolicyOutput
from vla_bench.results.schema import STATUS_ERROR, STATUS_OK
from vla_bench.results.summary import Summary
from vla_bench.rollout import EnvOptions, PoolExecutor, PoolSettings, Rendering, SerialExecutor, WorkerError

import numpy as np


def run_pool(episodes, workers=2, factory=None, policy=None, rendering=Rendering("lazy"), render=False, **settings):
    executor = PoolExecutor(
        PoolSettings(workers=workers, **{"timeout_s": 20.0, **settings}),
        factory or fake_factory(),
        EnvOptions(render=render, rendering=rendering),
    )
    return list(executor.run(episodes, policy or SeekPolicy(), PROTOCOL))


def test_results_do_not_depend_on_worker_count_or_executor():
    episodes = fake_episodes()
    serial = list(SerialExecutor("fake", EnvOptions(render=False)).run(episodes, SeekPolicy(), PROTOCOL))
    expected = outcomes(serial)
    successes = [o[0] for o in expected.values()]
    assert any(successes) and not all(successes), "the test policy should both succeed and fail"
    assert len({o[1] for o in expected.values()}) > 2, "episodes should end at different steps"
    for workers in (1, 4):
        records = run_pool(episodes, workers=workers)
        assert outcomes(records) == expected
        assert sorted(r.key for r in records) == sorted(e.key for e in episodes)
        assert all(r.attempts == 1 and r.worker_peak_rss_mb > 0 for r in records)


def test_inference_is_batched_across_waiting_envs():
    policy = SeekPolicy()
    run_pool(fake_episodes(trials=6), workers=3, factory=fake_factory(step_seconds=0.002), policy=policy)
    assert max(policy.batch_sizes) > 1


def test_slow_env_gives_the_same_results():
    episodes = fake_episodes(tasks="0", trials=4, max_steps=15)
    assert outcomes(run_pool(episodes, factory=fake_factory(step_seconds=0.02))) == outcomes(run_pool(episodes))


@pytest.mark.parametrize("fault", ["crash_at_step", "die_at_step", "hang_at_step"])
def test_flaky_fault_is_retried_on_a_fresh_worker(tmp_path, fault):
    episodes = fake_episodes(tasks="0-1", trials=3)
    target = episodes[2].key
    factory = fake_factory(**{fault: 3}, crash_episodes=frozenset({target}), once_dir=str(tmp_path))
    records = run_pool(episodes, factory=factory, timeout_s=3.0)
    assert outcomes(records) == outcomes(run_pool(episodes))
    attempts = {r.key: r.attempts for r in records}
    assert attempts.pop(target) == 2
    assert set(attempts.values()) == {1}


@pytest.mark.parametrize("fault,reason", [("crash_at_step", "simulator"), ("die_at_step", "died"), ("hang_at_step", "hung")])
def test_persistent_fault_becomes_an_error_not_a_failure(fault, reason):
    episodes = fake_episodes(tasks="0", trials=3)
    target = episodes[1].key
    factory = fake_factory(**{fault: 2}, crash_episodes=frozenset({target}))
    records = run_pool(episodes, factory=factory, retries=1, timeout_s=2.0)
    by_key = {r.key: r for r in records}
    bad = by_key.pop(target)
    assert bad.status == STATUS_ERROR and not bad.success
    assert bad.attempts == 2 and reason in bad.error and "after 2 attempts" in bad.error
    assert all(r.status == STATUS_OK for r in by_key.values())
    tally = Summary.from_records(records).suites["libero_spatial"]
    assert tally.errors == 1 and tally.ok == 2


class ExplodingPolicy(SeekPolicy):
    def infer(self, observations):
        if any(obs.step == 5 for obs in observations):
            raise ZeroDivisionError("policy bug")
        return super().infer(observations)


def test_policy_exception_stops_the_run():
    records = []
    executor = PoolExecutor(PoolSettings(workers=2, timeout_s=20), fake_factory(), EnvOptions(render=False))
    with pytest.raises(ZeroDivisionError, match="policy bug"):
        records.extend(executor.run(fake_episodes(), ExplodingPolicy(), PROTOCOL))
    assert records == []


def broken_env(spec):
    raise KeyError("not a simulator error")


def test_unexpected_worker_exception_stops_the_run():
    with pytest.raises(WorkerError, match="KeyError"):
        run_pool(fake_episodes(tasks="0", trials=2), factory=broken_env)


class NaNPolicy(SeekPolicy):
    def infer(self, observations):
        actions = super().infer(observations)
        for row, obs in zip(actions, observations):
            if obs.episode.endswith("/1") and obs.step == 2:
                row[0] = np.nan
        return actions


def test_non_finite_action_is_an_episode_error_without_retry():
    records = run_pool(fake_episodes(tasks="0", trials=3), policy=NaNPolicy())
    bad = [r for r in records if r.status == STATUS_ERROR]
    assert [r.key for r in bad] == ["libero_spatial/0/1"]
    assert bad[0].attempts == 1 and "non-finite" in bad[0].error and bad[0].steps == 2


class EveryFourth(Policy):
    """Reads images every 4th step and checks it gets them exactly then."""

    def __init__(self):
        self.seen: list[tuple[int, bool]] = []

    def infer(self, observations: list[Observation]):
        for obs in observations:
            self.seen.append((obs.step, bool(obs.images)))
        actions = np.tile([0.1, 0, 0, 0, 0, 0, -1.0], (len(observations), 1))
        return PolicyOutput(actions, [(obs.step + 1) % 4 == 0 for obs in observations])


@pytest.mark.parametrize("mode,expect", [("lazy", lambda s: s % 4 == 0), ("all", lambda s: True), ("none", lambda s: False)])
def test_rendering_modes(mode, expect):
    policy = EveryFourth()
    run_pool(fake_episodes(tasks="0", trials=2, max_steps=12), policy=policy, render=True, rendering=Rendering(mode))
    assert len(policy.seen) == 24
    assert all(has == expect(step) for step, has in policy.seen)


def test_settings_are_validated():
    with pytest.raises(ValueError):
        PoolSettings(workers=0)
    with pytest.raises(ValueError):
        PoolSettings(timeout_s=0)
