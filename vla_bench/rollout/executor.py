"""The executor contract and registry: how an episode list is run (`--executor serial|pool|...`).

An executor runs episodes and hands back their records; it never touches the run folder (the `Run`
in `vla_bench/rollout/run.py` owns it: records are written, counted and shown there).

Contract for implementers
-------------------------
Registration: a module directly inside `vla_bench/rollout/` (e.g. `rollout/ray_executor.py`) registers
a factory under a name; the registry imports every module of the package on its first lookup, so
nothing else needs editing (keep heavy imports, e.g. `ray`, inside the factory or the executor so that
registering costs nothing). Subclassing `EnvExecutor` (below) gives the env factory, options, video
recorder, episode queue, drivers and retry decisions that the built-in executors share::

    @EXECUTORS.register("mine")
    def _make(setup: ExecutorSetup) -> Executor:
        return MyExecutor(setup)

What an executor receives: an `ExecutorSetup` at construction (how to build envs: a picklable
`env_factory` taking an `EnvSpec`; `options`, which say which env spec each episode gets and which
steps are rendered; the video recorder; workers, retries and timeouts; the whole `EvalConfig` for
executor-specific options), then `run(episodes, policy, protocol, on_step)`:

- `episodes` are the episodes still to run, in canonical order (already resumed/sharded). Which
  episodes run never depends on the executor.
- every episode is driven by a `vla_bench.rollout.driver.EpisodeDriver` (start, observe, act, step,
  done, record: the stop rule, action checks, rendering decisions, videos and the record are the
  driver's); an executor decides only where envs live and how observations are batched into
  `policy.infer` calls (`act_batch`). Pass `on_step` to the drivers (called once per env step).

What it must yield: exactly one `EpisodeRecord` per episode, as each episode ends (completion
order, not list order), from a generator; the caller may stop consuming at any point and then
closes the generator, so cleanup (workers, actors) belongs in a `finally`.

Error semantics:
- a simulator error (`envs.simulator_errors()`), a dead, hung or lost worker/actor/node: the episode
  is lost, never counted as a failure. Retry it from scratch on a fresh env up to `setup.retries`
  more times; after that yield it with status "error", `attempts` and every attempt's reason;
- a policy output error (wrong shape, NaN): the driver records that episode as "error", no retry;
- any other exception from the policy, or an unexpected exception inside an env (a bug): raise it
  (workers' tracebacks carried back, e.g. `WorkerError`); the run ends `failed`;
- KeyboardInterrupt (Ctrl-C, or SIGTERM, which the Run turns into one): let it propagate after
  stopping the workers; the run ends `interrupted`.

Results must not depend on the executor: a deterministic policy gives the same records (success,
steps, status) on every registered executor for any number of workers (tests/test_pool.py).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol as TypingProtocol, Sequence

from vla_bench.envs import EnvFactory, KindFactory
from vla_bench.episodes import Episode
from vla_bench.policies.base import Policy
from vla_bench.registry import Registry
from vla_bench.results.schema import EpisodeRecord
from vla_bench.rollout.driver import EpisodeDriver
from vla_bench.rollout.episode import EnvOptions
from vla_bench.rollout.video import VideoRecorder
from vla_bench.specs import Protocol

if TYPE_CHECKING:
    from vla_bench.config import EvalConfig

class Executor(TypingProtocol):
    """Runs episodes and yields their records in completion order (see module docstring)."""

    def run(
        self,
        episodes: Sequence[Episode],
        policy: Policy,
        protocol: Protocol,
        on_step: Callable[[], None] | None = None,
    ) -> Iterator[EpisodeRecord]: ...


@dataclasses.dataclass(frozen=True)
class ExecutorSetup:
    """What every executor is built from."""

    env_factory: EnvFactory  # picklable: EnvSpec -> Env (envs.KindFactory for a registered env kind)
    options: EnvOptions = EnvOptions()
    video: VideoRecorder | None = None
    workers: int | None = 1  # env processes / actors (serial: one env in-process); None (ray): as many as the cluster holds
    retries: int = 2  # extra attempts for an episode lost to a simulator error or a lost worker
    timeout_s: float = 120.0  # longest wait for the reply to one step
    start_timeout_s: float = 600.0  # longest wait for an episode start (spawn, env build, reset)
    config: Any = None  # the EvalConfig, for executor-specific options (None from the Python API)


ExecutorFactory = Callable[[ExecutorSetup], Executor]


class EnvExecutor:
    """What the built-in executors share: how envs are built (a picklable `env_factory`, or the name of
    a registered env kind), which env spec each episode gets and which steps are rendered (`options`),
    the video recorder, the queue of episode attempts still to start and the drivers of new attempts.
    A subclass implements `_run`, a generator over the episodes of `run` (never empty) that reads the
    policy, protocol and step callback from `self`."""

    def __init__(
        self,
        env_factory: EnvFactory | str = "libero",
        options: EnvOptions = EnvOptions(),
        video: VideoRecorder | None = None,
    ) -> None:
        self.env_kind = env_factory if isinstance(env_factory, str) else None
        self.env_factory = KindFactory(env_factory) if isinstance(env_factory, str) else env_factory
        self.options = options
        self.rendering = options.steps_rendered
        self.video = video
        self._languages: dict[tuple[str, int], str] = {}  # (suite, task) -> instruction, as envs report it

    def run(
        self,
        episodes: Sequence[Episode],
        policy: Policy,
        protocol: Protocol,
        on_step: Callable[[], None] | None = None,
    ) -> Iterator[EpisodeRecord]:
        if not episodes:
            return
        self._policy, self._protocol, self._on_step = policy, protocol, on_step
        self._done: collections.deque[EpisodeRecord] = collections.deque()
        self._pending: collections.deque[tuple[Episode, int, list[str]]] = collections.deque(
            (e, 1, []) for e in episodes
        )  # (episode, attempt, earlier attempts' reasons), next first
        yield from self._run(episodes)

    def _run(self, episodes: Sequence[Episode]) -> Iterator[EpisodeRecord]:
        raise NotImplementedError

    def _driver(self, episode: Episode, attempt: int) -> EpisodeDriver:
        """The driver of a new attempt at `episode` (not started yet)."""
        return EpisodeDriver(
            episode, self._policy, self.rendering, video=self.video, on_step=self._on_step,
            language=self._languages.get((episode.suite, episode.task_id), ""), attempt=attempt,
        )

    def _retry(self, driver: EpisodeDriver, reasons: list[str], retries: int) -> str | None:
        """After a lost attempt (`reasons`: every attempt's so far): queue the next attempt first in
        line and return None while `retries` allow one, else the error summary for the record."""
        if driver.attempt <= retries:
            self._pending.appendleft((driver.episode, driver.attempt + 1, reasons))
            return None
        reason = reasons[-1]
        if len(reasons) == 1:
            return reason
        return f"{reason} (after {len(reasons)} attempts; earlier: {'; '.join(reasons[:-1])})"

# Filled by the modules of vla_bench/rollout/ (imported on the first lookup).
EXECUTORS: Registry[ExecutorFactory] = Registry("executor", modules=("vla_bench.rollout",))


def default_executor(workers: int) -> str:
    """Today's behaviour: the worker pool when there are workers, in-process when there are none."""
    return "pool" if workers > 0 else "serial"


def make_executor(name: str, setup: ExecutorSetup) -> Executor:
    return EXECUTORS.get(name)(setup)


def executor_names() -> list[str]:
    return EXECUTORS.names()


def setup_from_config(config: EvalConfig, workers: int, env_factory: EnvFactory, options: EnvOptions,
                      video: VideoRecorder | None) -> ExecutorSetup:
    return ExecutorSetup(
        env_factory=env_factory,
        options=options,
        video=video,
        workers=workers,
        retries=config.retries,
        timeout_s=config.worker_timeout,
        start_timeout_s=max(600.0, 5 * config.worker_timeout),
        config=config,
    )
