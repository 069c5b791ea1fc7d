"""Running one episode: start from its init state, query the policy each step, stop on success."""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Callable

import numpy as np

from vla_bench.envs.base import Env, EnvSpec, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyOutputError
from vla_bench.policies.base import Policy, check_actions
from vla_bench.results.schema import STATUS_ERROR, STATUS_OK, EpisodeRecord
from vla_bench.specs import Protocol


def simulator_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the simulator failed (an episode error, not a task failure)."""
    from vla_bench.envs.fake import FakeSimulatorError

    errors: list[type[BaseException]] = [FakeSimulatorError]
    try:
        import mujoco

        errors.append(mujoco.FatalError)
    except ImportError:
        pass
    try:
        from robosuite.utils.errors import robosuiteError  # robosuite's base class (lower-case r)

        errors.append(robosuiteError)
    except ImportError:
        pass
    return tuple(errors)


RENDER_MODES = ("lazy", "all", "none")


@dataclasses.dataclass(frozen=True)
class Rendering:
    """Which steps' camera images are rendered.

    "lazy": the steps the policy reads (`Policy.reads_images`) and every step of an episode whose
    video is recorded; "all": every step; "none": never. Rendering never changes an outcome.
    """

    mode: str = "lazy"

    def __post_init__(self) -> None:
        if self.mode not in RENDER_MODES:
            raise ValueError(f"rendering mode {self.mode!r}: expected one of {RENDER_MODES}")

    def needed(self, policy: Policy, episode: Episode, step: int, video: bool = False) -> bool:
        """Whether the observation at policy step `step` (0 = after start) needs images."""
        if self.mode == "none":
            return False
        return self.mode == "all" or video or policy.reads_images(episode.key, step)


@dataclasses.dataclass(frozen=True)
class EnvOptions:
    """How an executor builds each task's env and which steps it renders (both executors take one)."""

    render: bool = True  # build the envs with cameras at all
    image_size: int | None = None  # None: the protocol's model input size
    rendering: Rendering = Rendering("lazy")
    fast_reset: bool = False  # soft reset between episodes of a task (bit-identical, see LiberoEnv)
    privileged: bool = False  # simulator state for scripted policies

    @property
    def steps_rendered(self) -> Rendering:
        return self.rendering if self.render else Rendering("none")

    def spec(self, protocol: Protocol, episode: Episode) -> EnvSpec:
        return EnvSpec.from_protocol(
            protocol, episode.suite, episode.task_id, render=self.render, image_size=self.image_size,
            fast_reset=self.fast_reset, privileged=self.privileged,
        )


def validate_action(actions: np.ndarray) -> np.ndarray:
    action = check_actions(actions, 1)[0]
    if not np.all(np.isfinite(action)):
        raise PolicyOutputError(f"policy returned non-finite action {action.tolist()}")
    return action


def run_episode(
    env: Env,
    policy: Policy,
    episode: Episode,
    on_step: Callable[[], None] | None = None,
    rendering: Rendering = Rendering("all"),
    on_observation: Callable[[Observation], None] | None = None,
) -> EpisodeRecord:
    """Run one episode to success or its step limit. Policy output errors and simulator errors
    become a record with status "error"; any other exception propagates. `on_observation` sees
    every observation (for videos; it makes rendering cover every step)."""
    start = time.monotonic()
    steps = 0
    success = False

    def record(status: str, error: str | None = None) -> EpisodeRecord:
        return EpisodeRecord(
            suite=episode.suite,
            task_id=episode.task_id,
            task=env.language,
            init_idx=episode.init_idx,
            seed=episode.seed,
            success=success,
            steps=steps,
            wall_s=round(time.monotonic() - start, 3),
            status=status,
            error=error,
            **episode.labels(),
        )

    video = on_observation is not None
    try:
        policy.reset(episode)
        obs = env.start(episode.init_idx, episode.seed, render=rendering.needed(policy, episode, 0, video))
        if on_observation is not None:
            on_observation(obs)
        while steps < episode.max_steps:
            obs.episode, obs.step = episode.key, steps
            action = validate_action(policy.infer([obs]))
            obs, success = env.step(action, render=rendering.needed(policy, episode, steps + 1, video))
            if on_observation is not None:
                on_observation(obs)
            steps += 1
            if on_step is not None:
                on_step()
            if success:
                break
    except PolicyOutputError as exc:
        success = False
        return record(STATUS_ERROR, f"policy output: {exc}")
    except simulator_errors() as exc:
        success = False
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return record(STATUS_ERROR, f"simulator: {detail}")
    return record(STATUS_OK)
