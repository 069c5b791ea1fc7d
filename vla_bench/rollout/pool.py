"""The worker-pool executor: N env worker processes, one batched policy call for all waiting envs.

The main process keeps, for every worker, the `EpisodeDriver` of the episode it runs (starting,
stepping, waiting for an action). Each turn it reads every reply that is ready, calls `policy.infer`
once on the observations of all envs that wait for an action (`act_batch`), and sends the actions
back; workers that are still stepping keep stepping meanwhile, so inference overlaps with simulation.

Episode semantics are the driver's (`vla_bench/rollout/driver.py`), so results are the same whatever
the number of workers. A worker that dies, hangs past the timeout or raises a simulator error loses
only its current episode, which is retried from scratch on a fresh worker, at most `retries` more
times, then recorded with status "error".
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator, Sequence

from vla_bench.envs import EnvFactory
from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.results.schema import EpisodeRecord
from vla_bench.rollout.driver import STARTING, WAITING, EpisodeDriver, Lost, act_batch
from vla_bench.rollout.episode import EnvOptions
from vla_bench.rollout.executor import EXECUTORS, EnvExecutor, ExecutorSetup
from vla_bench.rollout.video import VideoRecorder
from vla_bench.rollout.worker import (
    OTHER,
    WorkerFailure,
    WorkerHandle,
    WorkerLost,
    start_context,
    wait_any,
)


class WorkerError(RuntimeError):
    """An unexpected exception inside a worker (not a simulator error): the run stops."""


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    workers: int = 2
    retries: int = 2  # extra attempts for an episode whose worker crashed, hung or hit a simulator error
    timeout_s: float = 120.0  # longest wait for the reply to one step
    start_timeout_s: float = 600.0  # longest wait for an episode start (process spawn, env build, reset)
    start_method: str = "spawn"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


@dataclasses.dataclass
class _Slot:
    index: int
    handle: WorkerHandle | None = None
    driver: EpisodeDriver | None = None  # the episode in flight on this worker
    deadline: float = 0.0  # when the worker's reply to the last command is overdue
    failed_before: list[str] = dataclasses.field(default_factory=list)  # earlier attempts' reasons
    peak_rss_mb: float | None = None


class PoolExecutor(EnvExecutor):
    """Runs an episode list on a pool of env worker processes (see module docstring)."""

    def __init__(
        self,
        settings: PoolSettings,
        env_factory: EnvFactory | str = "libero",
        options: EnvOptions = EnvOptions(),
        video: VideoRecorder | None = None,
    ) -> None:
        super().__init__(env_factory, options, video)
        self.settings = settings

    # -- the main loop -------------------------------------------------------------------------

    def _run(self, episodes: Sequence[Episode]) -> Iterator[EpisodeRecord]:
        self._context = start_context(self.settings.start_method)
        slots = [_Slot(i) for i in range(min(self.settings.workers, len(episodes)))]
        clean = False
        try:
            while self._pending or any(s.driver for s in slots):
                for slot in slots:
                    if slot.driver is None and self._pending:
                        self._assign(slot)
                waiting = [s for s in slots if s.driver is not None and s.driver.phase == WAITING]
                if waiting:
                    self._act(waiting)
                else:
                    self._collect([s for s in slots if s.driver is not None])
                while self._done:
                    yield self._done.popleft()
            clean = True
        finally:
            for slot in slots:
                if slot.handle is not None:
                    slot.handle.close(terminate=not clean)
                    slot.handle = None
            for slot in slots:  # interrupted or stopped by an error: the policy's episodes end here
                if slot.driver is not None:
                    slot.driver, driver = None, slot.driver
                    driver.abandon()

    def _assign(self, slot: _Slot) -> None:
        episode, attempt, failed_before = self._pending.popleft()
        if slot.handle is None:
            slot.handle = WorkerHandle(slot.index, self.env_factory, self._context)
            slot.peak_rss_mb = None
        driver = self._driver(episode, attempt)
        slot.driver, slot.failed_before = driver, failed_before
        slot.deadline = time.monotonic() + self.settings.start_timeout_s
        render = driver.start()
        spec = self.options.spec(self._protocol, episode)
        try:
            slot.handle.send(("start", spec, episode.init_idx, episode.seed, render))
        except WorkerLost as exc:
            self._lost(slot, str(exc))

    def _collect(self, busy: list[_Slot]) -> None:
        """Wait for the next replies (or deadlines) of the busy workers and process them."""
        now = time.monotonic()
        next_deadline = min(s.deadline for s in busy)
        ready = wait_any([s.handle for s in busy], next_deadline - now)
        ready_ids = {h.index for h in ready}
        for slot in busy:
            if slot.index in ready_ids:
                try:
                    result, ok = slot.handle.receive()
                except WorkerLost as exc:
                    self._lost(slot, str(exc))
                    continue
                if ok:
                    self._advance(slot, *result)
                else:
                    self._failed(slot, result)
            elif time.monotonic() >= slot.deadline:
                phase = slot.driver.phase
                limit = self.settings.start_timeout_s if phase == STARTING else self.settings.timeout_s
                self._lost(slot, f"worker {slot.index}: no reply while {phase} within {limit:g} s (hung)")

    def _advance(self, slot: _Slot, obs: Observation, success: bool, language: str, peak_rss_mb: float) -> None:
        driver = slot.driver
        assert driver is not None
        slot.peak_rss_mb = peak_rss_mb
        self._languages[(driver.episode.suite, driver.episode.task_id)] = language
        if driver.observe(obs, success, language, peak_rss_mb):
            self._done_with(slot)

    def _act(self, waiting: list[_Slot]) -> None:
        """One batched policy call for every env waiting for an action, then send the actions."""
        actions = act_batch(self._policy, [slot.driver for slot in waiting])
        for slot, action in zip(waiting, actions):
            if action is None:  # unusable output: the driver recorded the episode as an error
                self._done_with(slot)
                continue
            if isinstance(action, Lost):  # the policy side lost it; the env is sound
                self._lost(slot, action.reason, keep_worker=True)
                continue
            slot.deadline = time.monotonic() + self.settings.timeout_s
            try:
                slot.handle.send(("step", action, slot.driver.render_next))
            except WorkerLost as exc:
                self._lost(slot, str(exc))

    # -- endings ---------------------------------------------------------------------------------

    def _failed(self, slot: _Slot, failure: WorkerFailure) -> None:
        if failure.kind == OTHER:
            raise WorkerError(f"worker {slot.index} raised an unexpected error:\n{failure.traceback}")
        self._lost(slot, f"simulator: {failure.message}")

    def _lost(self, slot: _Slot, reason: str, keep_worker: bool = False) -> None:
        """The episode is lost: retry it or record the error. The worker is replaced unless
        `keep_worker` (the policy side failed, e.g. a remote connection; the env is sound)."""
        driver = slot.driver
        assert driver is not None and slot.handle is not None
        if not keep_worker:
            slot.handle.close(terminate=True)
            slot.handle = None
        summary = self._retry(driver, [*slot.failed_before, reason], self.settings.retries)
        if summary is None:
            slot.driver = None
            driver.abandon()  # the retry starts the episode afresh
            return
        driver.worker_peak_rss_mb = slot.peak_rss_mb
        driver.language = driver.language or self._languages.get((driver.episode.suite, driver.episode.task_id), "")
        driver.fail(summary)
        self._done_with(slot)

    def _done_with(self, slot: _Slot) -> None:
        """The slot's episode ended: hand its record out; the worker takes the next episode."""
        driver = slot.driver
        assert driver is not None and driver.record is not None
        slot.driver = None
        self._done.append(driver.record)


@EXECUTORS.register("pool")
def _make_pool(setup: ExecutorSetup) -> PoolExecutor:
    """N spawned env worker processes, one batched policy call for all waiting envs (--workers N)."""
    settings = PoolSettings(
        workers=setup.workers, retries=setup.retries, timeout_s=setup.timeout_s, start_timeout_s=setup.start_timeout_s
    )
    return PoolExecutor(settings, setup.env_factory, setup.options, setup.video)
