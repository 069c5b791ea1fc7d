"""The worker-pool executor: N env worker processes, one batched policy call for all waiting envs.

The main process keeps, for every worker, the episode it runs and where it is (starting, stepping,
waiting for an action). Each turn it reads every reply that is ready, calls `policy.infer` once on
the observations of all envs that wait for an action, and sends the actions back; workers that are
still stepping keep stepping meanwhile, so inference overlaps with simulation.

Episode semantics are those of `run_episode` (start, one action per step, stop on success or the
step limit), so results are the same whatever the number of workers. A worker that dies, hangs
past the timeout or raises a simulator error loses only its current episode, which is retried from
scratch on a fresh worker, at most `retries` more times, then recorded with status "error".
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyEpisodeErrors, PolicyOutputError
from vla_bench.policies.base import Policy, check_actions
from vla_bench.results.schema import STATUS_ERROR, STATUS_OK, EpisodeRecord
from vla_bench.rollout.episode import EnvOptions
from vla_bench.rollout.video import VideoRecorder
from vla_bench.envs import EnvFactory, KindFactory
from vla_bench.rollout.executor import EXECUTORS, ExecutorSetup
from vla_bench.rollout.worker import (
    OTHER,
    WorkerFailure,
    WorkerHandle,
    WorkerLost,
    start_context,
    wait_any,
)
from vla_bench.specs import Protocol


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


STARTING, STEPPING, WAITING = "starting", "stepping", "waiting"


@dataclasses.dataclass
class _Running:
    """An episode in flight on one worker."""

    episode: Episode
    attempt: int
    started: float
    deadline: float
    phase: str = STARTING
    steps: int = 0
    obs: Observation | None = None
    frames: list[np.ndarray] | None = None
    failed_before: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Slot:
    index: int
    handle: WorkerHandle | None = None
    running: _Running | None = None
    peak_rss_mb: float | None = None


class PoolExecutor:
    """Runs an episode list on a pool of env worker processes (see module docstring)."""

    def __init__(
        self,
        settings: PoolSettings,
        env_factory: EnvFactory | str = "libero",
        options: EnvOptions = EnvOptions(),
        video: VideoRecorder | None = None,
    ) -> None:
        self.settings = settings
        self.env_factory = KindFactory(env_factory) if isinstance(env_factory, str) else env_factory
        self.options = options
        self.rendering = options.steps_rendered
        self.video = video
        self._languages: dict[tuple[str, int], str] = {}

    # -- the main loop -------------------------------------------------------------------------

    def run(
        self,
        episodes: Sequence[Episode],
        policy: Policy,
        protocol: Protocol,
        on_step: Callable[[], None] | None = None,
    ) -> Iterator[EpisodeRecord]:
        if not episodes:
            return
        self._policy, self._protocol = policy, protocol
        self._on_step = on_step
        self._done: collections.deque[EpisodeRecord] = collections.deque()
        self._context = start_context(self.settings.start_method)
        self._pending: collections.deque[tuple[Episode, int, list[str]]] = collections.deque(
            (e, 1, []) for e in episodes
        )
        slots = [_Slot(i) for i in range(min(self.settings.workers, len(episodes)))]
        clean = False
        try:
            while self._pending or any(s.running for s in slots):
                for slot in slots:
                    if slot.running is None and self._pending:
                        self._assign(slot)
                waiting = [s for s in slots if s.running is not None and s.running.phase == WAITING]
                if waiting:
                    self._act(waiting)
                else:
                    self._collect([s for s in slots if s.running is not None])
                while self._done:
                    yield self._done.popleft()
            clean = True
        finally:
            for slot in slots:
                if slot.handle is not None:
                    slot.handle.close(terminate=not clean)
                    slot.handle = None

    def _assign(self, slot: _Slot) -> None:
        episode, attempt, failed_before = self._pending.popleft()
        if slot.handle is None:
            slot.handle = WorkerHandle(slot.index, self.env_factory, self._context)
            slot.peak_rss_mb = None
        now = time.monotonic()
        wants_video = self.video is not None and self.video.wants(episode)
        slot.running = _Running(
            episode, attempt, started=now, deadline=now + self.settings.start_timeout_s,
            frames=[] if wants_video else None, failed_before=failed_before,
        )
        self._policy.reset(episode)
        spec = self.options.spec(self._protocol, episode)
        render = self.rendering.needed(self._policy, episode, 0, wants_video)
        try:
            slot.handle.send(("start", spec, episode.init_idx, episode.seed, render))
        except WorkerLost as exc:
            self._lost(slot, str(exc))

    def _collect(self, busy: list[_Slot]) -> None:
        """Wait for the next replies (or deadlines) of the busy workers and process them."""
        now = time.monotonic()
        next_deadline = min(s.running.deadline for s in busy)
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
            elif time.monotonic() >= slot.running.deadline:
                phase = slot.running.phase
                limit = self.settings.start_timeout_s if phase == STARTING else self.settings.timeout_s
                self._lost(slot, f"worker {slot.index}: no reply while {phase} within {limit:g} s (hung)")

    def _advance(self, slot: _Slot, obs: Observation, success: bool, language: str, peak_rss_mb: float) -> None:
        run = slot.running
        assert run is not None
        slot.peak_rss_mb = peak_rss_mb
        self._languages[(run.episode.suite, run.episode.task_id)] = language
        if run.frames is not None and self.video is not None and self.video.camera in obs.images:
            run.frames.append(obs.images[self.video.camera])
        if run.phase == STEPPING:
            run.steps += 1
            if self._on_step is not None:
                self._on_step()
            if success or run.steps >= run.episode.max_steps:
                self._finish(slot, STATUS_OK, success=success)
                return
        run.obs = obs
        run.phase = WAITING

    def _act(self, waiting: list[_Slot]) -> None:
        """One batched policy call for every env waiting for an action, then send the actions."""
        observations = []
        for slot in waiting:
            run = slot.running
            run.obs.episode, run.obs.step = run.episode.key, run.steps
            observations.append(run.obs)
        failed: dict[int, tuple[str, bool]] = {}
        try:
            actions = check_actions(self._policy.infer(observations), len(observations))
        except PolicyEpisodeErrors as exc:  # only some episodes lost their actions (e.g. a remote connection)
            actions, failed = check_actions(exc.actions, len(observations)), exc.errors
        except PolicyOutputError as exc:  # the policy's output is unusable for all of them
            for slot in waiting:
                self._finish(slot, STATUS_ERROR, error=f"policy output: {exc}")
            return
        for row, (slot, action) in enumerate(zip(waiting, actions)):
            run = slot.running
            if row in failed:
                message, retry = failed[row]
                if retry:
                    self._lost(slot, message, keep_worker=True)
                else:
                    self._finish(slot, STATUS_ERROR, error=message)
                continue
            if not np.all(np.isfinite(action)):
                self._finish(slot, STATUS_ERROR, error=f"policy output: policy returned non-finite action {action.tolist()}")
                continue
            render = self.rendering.needed(self._policy, run.episode, run.steps + 1, run.frames is not None)
            run.obs = None
            run.phase = STEPPING
            run.deadline = time.monotonic() + self.settings.timeout_s
            try:
                slot.handle.send(("step", action, render))
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
        run = slot.running
        assert run is not None and slot.handle is not None
        if not keep_worker:
            slot.handle.close(terminate=True)
            slot.handle = None
        reasons = [*run.failed_before, reason]
        if run.attempt <= self.settings.retries:
            self._pending.appendleft((run.episode, run.attempt + 1, reasons))
            slot.running = None
            return
        summary = reason if len(reasons) == 1 else f"{reason} (after {len(reasons)} attempts; earlier: {'; '.join(reasons[:-1])})"
        self._finish(slot, STATUS_ERROR, error=summary)

    def _finish(self, slot: _Slot, status: str, success: bool = False, error: str | None = None) -> None:
        run = slot.running
        assert run is not None
        episode = run.episode
        record = EpisodeRecord(
            suite=episode.suite,
            task_id=episode.task_id,
            task=self._languages.get((episode.suite, episode.task_id), ""),
            init_idx=episode.init_idx,
            seed=episode.seed,
            success=bool(success) and status == STATUS_OK,
            steps=run.steps,
            wall_s=round(time.monotonic() - run.started, 3),
            status=status,
            error=error,
            attempts=run.attempt,
            worker_peak_rss_mb=slot.peak_rss_mb,
            **episode.labels(),
        )
        slot.running = None
        if self.video is not None and run.frames is not None:
            self.video.save(record, run.frames)
        self._done.append(record)


@EXECUTORS.register("pool")
def _make_pool(setup: ExecutorSetup) -> PoolExecutor:
    """N spawned env worker processes, one batched policy call for all waiting envs (--workers N)."""
    settings = PoolSettings(
        workers=setup.workers, retries=setup.retries, timeout_s=setup.timeout_s, start_timeout_s=setup.start_timeout_s
    )
    return PoolExecutor(settings, setup.env_factory, setup.options, setup.video)
