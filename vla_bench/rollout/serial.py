"""The single-process executor: runs the episode list in order, one env per task at a time."""

from __future__ import annotations

from typing import Iterator, Sequence

from vla_bench.envs.base import Env
from vla_bench.episodes import Episode
from vla_bench.results.schema import EpisodeRecord
from vla_bench.rollout.driver import run_episode
from vla_bench.rollout.executor import EXECUTORS, EnvExecutor, ExecutorSetup


class SerialExecutor(EnvExecutor):
    """Runs episodes one after another in this process; keeps one env alive per task, like the
    reference loop (build the task's env once, reset it for every episode). A simulator error is
    recorded as the episode's error without retries (there is no fresh worker to retry on)."""

    def _run(self, episodes: Sequence[Episode]) -> Iterator[EpisodeRecord]:
        env: Env | None = None
        current: tuple[str, int] | None = None
        try:
            for episode in episodes:
                if (episode.suite, episode.task_id) != current:
                    if env is not None:
                        env.close()
                        env = None
                    env = self.env_factory(self.options.spec(self._protocol, episode))
                    current = (episode.suite, episode.task_id)
                yield run_episode(env, self._policy, episode, self._on_step, self.rendering, self.video)
        finally:
            if env is not None:
                env.close()


@EXECUTORS.register("serial")
def _make_serial(setup: ExecutorSetup) -> SerialExecutor:
    """In this process, one env at a time (--workers 0)."""
    return SerialExecutor(setup.env_factory, setup.options, setup.video)
