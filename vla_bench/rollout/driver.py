"""The episode driver: the one place that says what an episode is, for every executor.

An episode is a small state machine::

    start ──> observe ──> act ──> step ──> observe ──> ... ──> done ──> record
              (after start     (one action    (stop on success or
               or a step)       per step)      the step limit)

`EpisodeDriver` holds one episode's state (phase, steps, success, video frames) and makes every
decision: which steps are rendered, when the episode stops, which policy outputs are unusable, what the
record says; it calls the policy's `start_episode` before the first action and `end_episode` exactly
once when the episode is over, however it ends (success, step limit, error, or `abandon` when a
worker is lost or the run is interrupted). Executors only move observations and actions between the driver, the policy and an env
wherever that env lives: `run_episode` below drives one in-process env; the pool drives many, batching
the observations of every driver waiting for an action into one `infer` call with `act_batch`.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Callable, Sequence

import numpy as np

from vla_bench.envs.base import Env, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyEpisodeErrors, PolicyOutputError
from vla_bench.policies.base import Policy, check_output
from vla_bench.results.schema import STATUS_ERROR, STATUS_OK, EpisodeRecord
from vla_bench.envs import simulator_errors
from vla_bench.rollout.episode import Rendering
from vla_bench.rollout.video import VideoRecorder

STARTING, WAITING, STEPPING, DONE = "starting", "waiting", "stepping", "done"


class EpisodeDriver:
    """One attempt at one episode. Call `start`, then `observe` with each env reply; while the phase
    is WAITING, get an action with `act_batch` and step the env with `render_next`; once `observe`
    returns True (or the episode failed) `record` holds the outcome."""

    def __init__(
        self,
        episode: Episode,
        policy: Policy,
        rendering: Rendering = Rendering("all"),
        *,
        video: VideoRecorder | None = None,
        on_step: Callable[[], None] | None = None,
        language: str = "",
        attempt: int = 1,
    ) -> None:
        self.episode = episode
        self.policy = policy
        self.rendering = rendering
        self.video = video if video is not None and video.wants(episode) else None
        self.frames: list[np.ndarray] = []
        self.on_step = on_step
        self.language = language
        self.attempt = attempt
        self.phase = STARTING
        self.steps = 0
        self.success = False
        self.obs: Observation | None = None  # the observation the next action answers (WAITING)
        self.render_next = False  # whether the env must render the next step's observation
        self.worker_peak_rss_mb: float | None = None
        self.record: EpisodeRecord | None = None
        self.started = time.monotonic()
        self._policy_started = False

    def _render(self, policy_reads: bool) -> bool:
        return self.rendering.needed(policy_reads, self.video is not None)

    def start(self) -> bool:
        """Begin the episode: tell the policy; returns whether the start observation is rendered."""
        self.policy.start_episode(self.episode)
        self._policy_started = True
        self.phase = STARTING
        return self._render(self.policy.uses_images)

    def observe(self, obs: Observation, success: bool = False, language: str | None = None,
                peak_rss_mb: float | None = None) -> bool:
        """The env's reply to start or to a step. True when the episode is over (success or step limit)."""
        if language:
            self.language = language
        if peak_rss_mb is not None:
            self.worker_peak_rss_mb = peak_rss_mb
        if self.video is not None and self.video.camera in obs.images:
            self.frames.append(obs.images[self.video.camera])
        if self.phase == STEPPING:
            self.steps += 1
            self.success = bool(success)
            if self.on_step is not None:
                self.on_step()
        if self.success or self.steps >= self.episode.max_steps:
            self.finish(STATUS_OK)
            return True
        obs.episode, obs.step = self.episode.key, self.steps
        self.obs = obs
        self.phase = WAITING
        return False

    def act(self, action: np.ndarray, reads_next: bool) -> np.ndarray | None:
        """Take the policy's action for the waiting observation (and whether the policy reads the next
        observation); returns the action to send to the env (and sets `render_next`), or None when it
        is unusable (the episode ends as an error)."""
        if not np.all(np.isfinite(action)):
            self.finish(STATUS_ERROR, f"policy output: policy returned non-finite action {action.tolist()}")
            return None
        self.obs = None
        self.phase = STEPPING
        self.render_next = self._render(reads_next)
        return action

    def fail(self, error: str) -> EpisodeRecord:
        """End the episode as an error (simulator error, lost worker, unusable policy output)."""
        return self.finish(STATUS_ERROR, error)

    def abandon(self) -> None:
        """The episode stops without a record (its worker was lost and it is retried, or the run was
        interrupted): tell the policy it is over."""
        self.phase = DONE
        self._end_policy_episode()

    def _end_policy_episode(self) -> None:
        if self._policy_started:
            self._policy_started = False
            self.policy.end_episode(self.episode)

    def finish(self, status: str, error: str | None = None) -> EpisodeRecord:
        """Build the record (and write the video if this episode is filmed); tell the policy it is over."""
        episode = self.episode
        self.phase = DONE
        self._end_policy_episode()
        self.record = EpisodeRecord(
            suite=episode.suite,
            task_id=episode.task_id,
            task=self.language,
            init_idx=episode.init_idx,
            seed=episode.seed,
            success=self.success and status == STATUS_OK,
            steps=self.steps,
            wall_s=round(time.monotonic() - self.started, 3),
            status=status,
            error=error,
            attempts=self.attempt,
            worker_peak_rss_mb=self.worker_peak_rss_mb,
            **episode.labels(),
        )
        if self.video is not None:
            self.video.save(self.record, self.frames)
        return self.record


@dataclasses.dataclass(frozen=True)
class Lost:
    """The policy side lost this episode (e.g. a remote policy's connection broke): it may be run again
    from its start; the executor retries it (its env is sound) or records the error."""

    reason: str


def act_batch(policy: Policy, drivers: Sequence[EpisodeDriver]) -> list[np.ndarray | Lost | None]:
    """One `infer` call for every waiting driver; per driver, the action to send, None (its episode
    ended as an error), or Lost. An output unusable for the whole batch (wrong shape) ends all of them;
    `PolicyEpisodeErrors` ends (or loses, when retryable) only the rows it names."""
    observations = [driver.obs for driver in drivers]
    failed: dict[int, tuple[str, bool]] = {}
    try:
        actions, reads_next = check_output(policy.infer(observations), len(drivers), policy.uses_images)
    except PolicyEpisodeErrors as exc:  # only some episodes lost their actions
        actions, reads_next = check_output(exc.actions, len(drivers), policy.uses_images)
        failed = exc.errors
    except PolicyOutputError as exc:
        for driver in drivers:
            driver.fail(f"policy output: {exc}")
        return [None] * len(drivers)
    results: list[np.ndarray | Lost | None] = []
    for row, (driver, action, reads) in enumerate(zip(drivers, actions, reads_next)):
        if row in failed:
            message, retry = failed[row]
            if retry:
                results.append(Lost(message))
            else:
                driver.fail(message)
                results.append(None)
            continue
        results.append(driver.act(action, reads))
    return results


def describe_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def run_episode(
    env: Env,
    policy: Policy,
    episode: Episode,
    on_step: Callable[[], None] | None = None,
    rendering: Rendering = Rendering("all"),
    video: VideoRecorder | None = None,
) -> EpisodeRecord:
    """Drive one episode on an in-process env. Policy output errors and simulator errors become a
    record with status "error"; any other exception propagates."""
    driver = EpisodeDriver(episode, policy, rendering, video=video, on_step=on_step, language=env.language)
    try:
        done = driver.observe(env.start(episode.init_idx, episode.seed, render=driver.start()))
        while not done:
            [action] = act_batch(policy, [driver])
            if isinstance(action, Lost):  # no fresh start to retry on here
                driver.fail(action.reason)
            if action is None or isinstance(action, Lost):
                break
            obs, success = env.step(action, render=driver.render_next)
            done = driver.observe(obs, success)
    except simulator_errors() as exc:
        driver.fail(f"simulator: {describe_exception(exc)}")
    finally:
        if driver.record is None:  # interrupted, or an exception that stops the run
            driver.abandon()
    assert driver.record is not None
    return driver.record
