"""The policy contract as executors honour it: start_episode before the first infer, end_episode
exactly once however the episode ends, and rendering decided by what infer says about the next step."""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np
import pytest

from engine_helpers import PROTOCOL, SeekPolicy, fake_episodes, fake_factory
from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.policies.base import PolicyOutput
from vla_bench.rollout import EnvOptions, ExecutorSetup, Rendering, make_executor


class Lifecycle(SeekPolicy):
    """Records start/end calls, checks infer only sees started episodes; NaN for one episode."""

    def __init__(self, nan_key: str | None = None, interrupt_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.live: set[str] = set()
        self.nan_key = nan_key
        self.interrupt_at = interrupt_at
        self.infers = 0

    def start_episode(self, episode: Episode) -> None:
        assert episode.key not in self.live, f"{episode.key} started twice without an end"
        self.live.add(episode.key)
        self.calls.append(("start", episode.key))
        super().start_episode(episode)

    def end_episode(self, episode: Episode) -> None:
        self.live.remove(episode.key)
        self.calls.append(("end", episode.key))

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        self.infers += 1
        if self.interrupt_at is not None and self.infers == self.interrupt_at:
            raise KeyboardInterrupt
        assert all(obs.episode in self.live for obs in observations)
        actions = super().infer(observations)
        for row, obs in zip(actions, observations):
            if obs.episode == self.nan_key and obs.step == 2:
                row[0] = np.nan
        return actions


def run(name: str, policy, episodes, **behaviour):
    setup = ExecutorSetup(env_factory=fake_factory(**behaviour), options=EnvOptions(render=False), workers=2,
                          timeout_s=20.0)
    return list(make_executor(name, setup).run(episodes, policy, PROTOCOL))


@pytest.mark.parametrize("name", ["serial", "pool"])  # ray: tests/test_ray_executor.py
def test_every_episode_ends_once_however_it_ends(name, tmp_path):
    episodes = fake_episodes(tasks="0-1", trials=3, max_steps=30)
    crash = episodes[4].key  # crashes once (retried on a fresh worker by the pool; an error when serial)
    policy = Lifecycle(nan_key=episodes[1].key)
    records = run(name, policy, episodes, crash_at_step=3, crash_episodes=frozenset({crash}), once_dir=str(tmp_path))
    assert {r.status for r in records} == {"ok", "error"} and any(r.success for r in records)
    assert not policy.live
    starts = collections.Counter(k for what, k in policy.calls if what == "start")
    ends = collections.Counter(k for what, k in policy.calls if what == "end")
    assert starts == ends and set(starts) == {e.key for e in episodes}
    assert starts[crash] == (2 if name == "pool" else 1) and all(n == 1 for k, n in starts.items() if k != crash)


@pytest.mark.parametrize("name", ["serial", "pool"])  # ray: tests/test_ray_executor.py
def test_an_interrupted_run_ends_the_episodes_in_flight(name):
    policy = Lifecycle(interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        run(name, policy, fake_episodes(tasks="0", trials=4))
    assert policy.calls and not policy.live


class ReadsWhenTold(SeekPolicy):
    """Says which next steps it reads (every third); records which observations had images."""

    uses_images = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, bool]] = []

    def infer(self, observations: Sequence[Observation]) -> PolicyOutput:
        self.seen += [(obs.step, bool(obs.images)) for obs in observations]
        return PolicyOutput(super().infer(observations), [(obs.step + 1) % 3 == 0 for obs in observations])


@pytest.mark.parametrize("name", ["serial", "pool"])  # ray: tests/test_ray_executor.py
def test_executors_render_what_infer_said_the_next_step_reads(name):
    policy = ReadsWhenTold()
    setup = ExecutorSetup(env_factory=fake_factory(), options=EnvOptions(render=True, rendering=Rendering("lazy")),
                          workers=2, timeout_s=20.0)
    list(make_executor(name, setup).run(fake_episodes(tasks="0", trials=2, max_steps=10), policy, PROTOCOL))
    assert policy.seen and all(has == (step % 3 == 0) for step, has in policy.seen)


def test_a_wrong_number_of_render_flags_is_an_episode_error():
    class Wrong(SeekPolicy):
        def infer(self, observations):
            return PolicyOutput(super().infer(observations), [True] * (len(observations) + 1))

    records = run("serial", Wrong(), fake_episodes(tasks="0", trials=1))
    assert records[0].status == "error" and "reads_next flags for a batch of 1" in records[0].error
