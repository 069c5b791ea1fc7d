"""The env interface shared by the real LIBERO env and the fakes."""

from __future__ import annotations

import dataclasses
from typing import Protocol as TypingProtocol

import numpy as np

from vla_bench.specs import Protocol

ACTION_DIM = 7


class SimulatorError(RuntimeError):
    """A simulator failed (not the task): the episode is an `error`, retried, never a failure.

    Env kinds raise it (or subclasses) for their own failures; a kind's native simulator exceptions
    are named in its `EnvKind.error_classes`.
    """

# How every episode's scene is set up, recorded in run.json: like the first episode of a freshly built
# env seeded with the episode's seed, whatever its env ran before (LIBERO's own loop places fixtures
# differently from the second episode of an env on; see LiberoEnv._forget_stale_samplers).
EPISODE_START = "fresh-env"


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Everything needed to build one task's env, derived from the protocol."""

    suite: str
    task_id: int
    render_size: int
    cameras: tuple[str, ...]  # empty: no rendering at all
    flip_images: bool
    image_size: int | None  # resize images to this size; None keeps render_size
    state: str
    settle_steps: int
    settle_action: tuple[float, ...]
    privileged: bool = False  # fill Observation.privileged with simulator state (scripted policies)
    fast_reset: bool = False  # reuse the scene between episodes with the same seed (soft reset)

    @classmethod
    def from_protocol(
        cls,
        protocol: Protocol,
        suite: str,
        task_id: int,
        *,
        render: bool = True,
        image_size: int | None = None,
        privileged: bool = False,
        fast_reset: bool = False,
    ) -> EnvSpec:
        return cls(
            suite=suite,
            task_id=task_id,
            render_size=protocol.render_size,
            cameras=protocol.cameras if render else (),
            flip_images=protocol.flip_images,
            image_size=image_size,
            state=protocol.state,
            settle_steps=protocol.settle_steps,
            settle_action=protocol.settle_action,
            privileged=privileged,
            fast_reset=fast_reset,
        )


@dataclasses.dataclass
class Observation:
    """A processed observation, as a policy sees it."""

    images: dict[str, np.ndarray]  # camera name -> HxWx3 uint8, in the protocol's orientation
    state: np.ndarray  # the protocol's 8-D state vector
    instruction: str
    episode: str = ""  # Episode.key
    step: int = 0  # policy steps taken so far in this episode
    privileged: dict | None = None  # simulator state, only when EnvSpec.privileged (see envs/privileged.py)


class Env(TypingProtocol):
    """One task's simulator. `start` begins an episode; `step` returns (observation, success).

    `render=False` skips the camera images of that observation (`images` is empty) without
    changing anything else: the physics, the state vector and later rendered images are the same
    as when every step is rendered. Executors use it on steps whose images the policy does not read.
    """

    spec: EnvSpec
    language: str
    n_init_states: int

    def start(self, init_idx: int, seed: int, render: bool = True) -> Observation: ...

    def step(self, action: np.ndarray, render: bool = True) -> tuple[Observation, bool]: ...

    def close(self) -> None: ...


def check_action(action: np.ndarray) -> np.ndarray:
    """Validate one env action; raises ValueError naming the problem."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (ACTION_DIM,):
        raise ValueError(f"action has shape {action.shape}; expected ({ACTION_DIM},)")
    if not np.all(np.isfinite(action)):
        raise ValueError(f"action is not finite: {action.tolist()}")
    return action
