"""A fast fake env with LIBERO's interface, for testing the engine and reporting without MuJoCo.

Dynamics: a point "end effector" moves by the action's first three entries (scaled); the episode
succeeds when it comes within `tolerance` of a goal that depends on (task, init state). Behaviour
hooks (crash, hang, slowness) are injected through `FakeBehaviour`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import zlib
from pathlib import Path

import numpy as np

from vla_bench.envs.base import EnvSpec, Observation, SimulatorError, check_action
from vla_bench.errors import VlaBenchError


class FakeSimulatorError(SimulatorError):
    """Raised by a fake env configured to crash, standing in for a MuJoCo error."""


@dataclasses.dataclass(frozen=True)
class FakeBehaviour:
    step_scale: float = 0.05
    tolerance: float = 0.05
    step_seconds: float = 0.0  # sleep per step: a slow simulator
    crash_at_step: int | None = None  # raise FakeSimulatorError at this policy step
    crash_episodes: frozenset[str] = frozenset()  # episode keys ("suite/task/init") that crash; empty: all
    hang_at_step: int | None = None  # sleep forever at this policy step
    die_at_step: int | None = None  # SIGKILL the own process at this policy step (a segfaulting simulator)
    once_dir: str | None = None  # if set, each episode misbehaves only once (a marker file per episode key)


def _stable_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


class FakeEnv:
    """Deterministic stand-in for a LIBERO task env."""

    n_init_states = 50

    def __init__(self, spec: EnvSpec, behaviour: FakeBehaviour = FakeBehaviour()) -> None:
        self.spec = spec
        self.behaviour = behaviour
        self.language = f"fake task {spec.task_id} of {spec.suite}"
        self._pos = np.zeros(3)
        self._goal = np.zeros(3)
        self._gripper = -1.0
        self._steps = 0
        self._key = ""

    def goal(self, init_idx: int) -> np.ndarray:
        return _stable_rng(self.spec.suite, self.spec.task_id, init_idx).uniform(-0.3, 0.3, size=3)

    def start(self, init_idx: int, seed: int, render: bool = True) -> Observation:
        if not 0 <= init_idx < self.n_init_states:
            raise VlaBenchError(f"init state {init_idx} out of range (task has {self.n_init_states})")
        self._goal = self.goal(init_idx)
        self._pos = _stable_rng("start", self.spec.suite, self.spec.task_id, init_idx).uniform(-0.05, 0.05, size=3)
        self._gripper = -1.0
        self._steps = 0
        self._key = f"{self.spec.suite}/{self.spec.task_id}/{init_idx}"
        for _ in range(self.spec.settle_steps):
            self._advance(np.asarray(self.spec.settle_action))
        return self._observe(render)

    def _advance(self, action: np.ndarray) -> None:
        self._pos = self._pos + self.behaviour.step_scale * np.clip(action[:3], -1.0, 1.0)
        self._gripper = float(np.sign(action[6])) or self._gripper

    def _first_time(self) -> bool:
        """With `once_dir`, True only the first time this episode misbehaves (flaky faults)."""
        if self.behaviour.once_dir is None:
            return True
        marker = Path(self.behaviour.once_dir) / self._key.replace("/", "_")
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return False
        return True

    def _misbehave(self) -> None:
        b = self.behaviour
        targeted = not b.crash_episodes or self._key in b.crash_episodes
        faults = (b.crash_at_step, b.hang_at_step, b.die_at_step)
        if targeted and self._steps in faults and self._first_time():
            if b.crash_at_step == self._steps:
                raise FakeSimulatorError(f"fake simulator crash at step {self._steps}")
            if b.die_at_step == self._steps:
                os.kill(os.getpid(), signal.SIGKILL)
            while True:  # hang
                time.sleep(3600)
        if b.step_seconds:
            time.sleep(b.step_seconds)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[Observation, bool]:
        action = check_action(action)
        self._misbehave()
        self._advance(action)
        self._steps += 1
        success = bool(np.linalg.norm(self._pos - self._goal) < self.behaviour.tolerance)
        return self._observe(render), success

    def _observe(self, render: bool = True) -> Observation:
        size = self.spec.image_size or self.spec.render_size
        images = {}
        for i, camera in enumerate(self.spec.cameras if render else ()):
            level = np.clip((self._pos[i % 3] + 1.0) * 127.5, 0, 255)
            images[camera] = np.full((size, size, 3), level, dtype=np.uint8)
        gripper_qpos = np.array([0.04, -0.04]) if self._gripper < 0 else np.array([0.0, 0.0])
        state = np.concatenate([self._pos, np.zeros(3), gripper_qpos])
        return Observation(images=images, state=state, instruction=self.language)

    @property
    def goal_position(self) -> np.ndarray:
        return self._goal.copy()

    @property
    def position(self) -> np.ndarray:
        return self._pos.copy()

    def close(self) -> None:
        pass
