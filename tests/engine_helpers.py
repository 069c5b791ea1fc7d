"""Shared pieces of the engine tests: a goal-seeking policy for the fake env and env factories.

Module-level (picklable) so spawned workers can import them.
"""

from __future__ import annotations

import functools
import zlib
from typing import Sequence

import numpy as np

from vla_bench.envs.base import ACTION_DIM, EnvSpec, Observation
from vla_bench.envs.fake import FakeBehaviour, FakeEnv
from vla_bench.episodes import Episode, make_plan
from vla_bench.policies.base import Policy
from vla_bench.specs import protocols

PROTOCOL = protocols().get("openvla")


def fake_factory(**behaviour) -> functools.partial:
    """A picklable env factory building FakeEnv with the given FakeBehaviour fields."""
    return functools.partial(FakeEnv, behaviour=FakeBehaviour(**behaviour))


class SeekPolicy(Policy):
    """Moves the fake end effector toward the goal at a per-episode speed: some episodes succeed
    quickly, some slowly, some not within the step limit. Deterministic per episode."""

    uses_images = False

    def __init__(self) -> None:
        self._speed: dict[str, float] = {}
        self._goal: dict[str, np.ndarray] = {}
        self.batch_sizes: list[int] = []

    def start_episode(self, episode: Episode) -> None:
        spec = EnvSpec.from_protocol(PROTOCOL, episode.suite, episode.task_id, render=False)
        self._goal[episode.key] = FakeEnv(spec).goal(episode.init_idx)
        self._speed[episode.key] = 0.05 + 0.25 * (zlib.crc32(episode.key.encode()) % 100) / 100

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        self.batch_sizes.append(len(observations))
        actions = np.zeros((len(observations), ACTION_DIM))
        for row, obs in zip(actions, observations):
            delta = self._goal[obs.episode] - obs.state[:3]
            row[:3] = np.clip(delta / 0.05, -1, 1) * self._speed[obs.episode]
            row[6] = -1.0
        return actions


def fake_episodes(tasks: str = "0-2", trials: int = 4, max_steps: int = 30) -> list[Episode]:
    return make_plan(suite="libero_spatial", protocol="openvla", tasks=tasks, trials=trials, max_steps=max_steps).episodes()


def outcomes(records) -> dict[str, tuple[bool, int, str]]:
    """Episode key -> (success, steps, status): what must not depend on scheduling."""
    return {r.key: (r.success, r.steps, r.status) for r in records}


class ExplodeSwitch:
    """Makes the registered "test-seek" policy raise (a policy bug) while `on`."""

    on = False


class RegisteredSeek(SeekPolicy):
    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        if ExplodeSwitch.on and any(obs.step == 3 for obs in observations):
            raise ZeroDivisionError("policy bug")
        return super().infer(observations)


def _register() -> None:
    from vla_bench.policies.base import POLICIES

    if "test-seek" not in POLICIES:
        POLICIES.add("test-seek", lambda context: RegisteredSeek())


_register()
