"""The single-process executor: runs the episode list in order, one env per task at a time."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from vla_bench.envs import KindFactory
from vla_bench.envs.base import Env
from vla_bench.episodes import Episode
from vla_bench.policies.base import Policy
from vla_bench.results.schema import EpisodeRecord
from vla_bench.rollout.driver import run_episode
from vla_bench.rollout.episode import EnvOptions
from vla_bench.rollout.executor import EXECUTORS, EnvFactory, ExecutorSetup
from vla_bench.rollout.video import VideoRecorder
from vla_bench.specs import Protocol


class SerialExecutor:
    """Runs episodes one after another in this process; keeps one env alive per task, like the
    reference loop (build the task's env once, reset it for every episode). A simulator error is
    recorded as the episode's error without retries (there is no fresh worker to retry on)."""

    def __init__(
        self,
        env_factory: EnvFactory | str = "libero",
        options: EnvOptions = EnvOptions(),
        video: VideoRecorder | None = None,
    ) -> None:
        self.env_factory = KindFactory(env_factory) if isinstance(env_factory, str) else env_factory
        self.options = options
        self.rendering = options.steps_rendered
        self.video = video

    def run(
        self,
        episodes: Sequence[Episode],
        policy: Policy,
        protocol: Protocol,
        on_step: Callable[[], None] | None = None,
    ) -> Iterator[EpisodeRecord]:
        env: Env | None = None
        current: tuple[str, int] | None = None
        try:
            for episode in episodes:
                if (episode.suite, episode.task_id) != current:
                    if env is not None:
                        env.close()
                        env = None
                    env = self.env_factory(self.options.spec(protocol, episode))
                    current = (episode.suite, episode.task_id)
                yield run_episode(env, policy, episode, on_step, self.rendering, self.video)
        finally:
            if env is not None:
                env.close()


@EXECUTORS.register("serial")
def _make_serial(setup: ExecutorSetup) -> SerialExecutor:
    """In this process, one env at a time (--workers 0)."""
    return SerialExecutor(setup.env_factory, setup.options, setup.video)
