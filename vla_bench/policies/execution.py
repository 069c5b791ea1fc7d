"""Action execution wrappers with the policy contract: a chunk predictor (B observations -> B raw
action chunks) wrapped into env actions by the protocol's execution mode and gripper convention.

- "single": query every step, execute the first action of the chunk.
- "chunk": open loop; query once, execute the first n actions, query again when they run out
  (`infer` says in its `PolicyOutput.reads_next` that only query steps read images, so executors
  render only those).
- "temporal_ensemble": ACT-style; query every step and execute, for step t, the weighted mean of every
  stored chunk's prediction for t, with weights exp(-k * i), i = 0 for the oldest prediction.

Every piece of state is per episode (keyed by `Episode.key`), so any batch composition is served
correctly; `start_episode(episode)` makes that episode's state and `end_episode(episode)` drops it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque
from typing import Callable, Generic, Sequence, TypeVar

import numpy as np

from vla_bench.envs.base import ACTION_DIM, Observation
from vla_bench.episodes import Episode
from vla_bench.policies.base import Policy, PolicyOutput
from vla_bench.specs import EXECUTION_MODES, GRIPPER_CONVENTIONS


T = TypeVar("T")

class EpisodeStates(Generic[T]):
    """Per-episode state keyed by `Episode.key`, made by `factory` when the episode starts (or on
    first use) and dropped when it ends: it holds only the episodes in flight."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self.factory = factory
        self._items: dict[str, T] = {}

    def start(self, key: str) -> T:
        """Fresh state for an episode that starts now."""
        self._items[key] = self.factory()
        return self._items[key]

    def end(self, key: str) -> None:
        """The episode is over: drop its state."""
        self._items.pop(key, None)

    def __getitem__(self, key: str) -> T:
        if key not in self._items:
            self._items[key] = self.factory()
        return self._items[key]

    def peek(self, key: str) -> T | None:
        return self._items.get(key)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


@dataclasses.dataclass
class _Execution:
    queue: deque = dataclasses.field(default_factory=deque)  # chunk mode: actions left to execute
    chunks: deque = dataclasses.field(default_factory=deque)  # ensembling: (query step, raw chunk)


class ChunkPredictor(ABC):
    """Predicts raw chunks (B, C, 7): arm deltas in [-1, 1] and the model's gripper output (a
    probability of closing) for C future steps, from per-episode history it keeps itself."""

    chunk: int
    uses_images: bool = True
    image_size: int | None = None

    def start_episode(self, episode: Episode) -> None:
        """Start a new episode (clear its history)."""

    def end_episode(self, episode: Episode) -> None:
        """The episode is over (drop its history)."""

    @abstractmethod
    def predict(self, observations: Sequence[Observation]) -> np.ndarray:
        """Raw chunks (B, C, 7) for observations of different episodes."""

    def executed(self, observations: Sequence[Observation], actions: np.ndarray) -> None:
        """The env actions (B, 7) sent for these observations (for models that read their last command)."""

    def validate(self, episodes: Sequence[Episode]) -> None:
        """Raise VlaBenchError if the episodes cannot be served."""

    def describe(self) -> dict | None:
        """Facts about the model for run.json, or None."""
        return None

    def close(self) -> None:
        """Release resources."""


def gripper_to_env(values: np.ndarray, convention: str) -> np.ndarray:
    """Model gripper outputs in [0, 1] -> env gripper commands (-1 open, +1 close).

    "threshold": > 0.5 -> +1 else -1 (VITA-VLA / Seer). "binarize": [0, 1] -> [-1, 1], sign, inverted
    (the OpenVLA family, whose models output 1 = open).
    """
    values = np.asarray(values, dtype=np.float64)
    if convention == "threshold":
        return np.where(values > 0.5, 1.0, -1.0)
    if convention == "binarize":
        return -np.sign(2.0 * values - 1.0)
    raise ValueError(f"unknown gripper convention {convention!r}; known: {GRIPPER_CONVENTIONS}")


def ensemble_weights(count: int, k: float) -> np.ndarray:
    """Normalised ACT weights for `count` predictions of one step, oldest first: exp(-k * i)."""
    weights = np.exp(-k * np.arange(count, dtype=np.float64))
    return weights / weights.sum()


class ExecutionPolicy(Policy):
    """Turns a ChunkPredictor into a Policy under an execution mode and gripper convention."""

    def __init__(self, predictor: ChunkPredictor, mode: str, gripper: str, steps: int | None = None, ensemble_k: float = 0.01) -> None:
        if mode not in EXECUTION_MODES:
            raise ValueError(f"unknown execution mode {mode!r}; known: {EXECUTION_MODES}")
        if gripper not in GRIPPER_CONVENTIONS:
            raise ValueError(f"unknown gripper convention {gripper!r}; known: {GRIPPER_CONVENTIONS}")
        self.predictor = predictor
        self.mode = mode
        self.gripper = gripper
        self.steps = min(steps or predictor.chunk, predictor.chunk)  # actions executed per query in "chunk" mode
        self.ensemble_k = ensemble_k
        self.uses_images = predictor.uses_images
        self.image_size = predictor.image_size
        self.states: EpisodeStates[_Execution] = EpisodeStates(_Execution)

    def validate(self, episodes: Sequence[Episode]) -> None:
        self.predictor.validate(episodes)

    def start_episode(self, episode: Episode) -> None:
        self.states.start(episode.key)
        self.predictor.start_episode(episode)

    def end_episode(self, episode: Episode) -> None:
        self.states.end(episode.key)
        self.predictor.end_episode(episode)

    def _needs_query(self, episode: str) -> bool:
        state = self.states.peek(episode)
        return self.mode != "chunk" or state is None or not state.queue

    def infer(self, observations: Sequence[Observation]) -> PolicyOutput:
        """Env actions, and per row whether the next step queries the model (reads images)."""
        rows = [i for i, obs in enumerate(observations) if self._needs_query(obs.episode)]
        chunks = self.predictor.predict([observations[i] for i in rows]) if rows else np.empty((0, 0, ACTION_DIM))
        raw = np.empty((len(observations), ACTION_DIM))
        fresh = dict(zip(rows, chunks))
        for i, obs in enumerate(observations):
            key = obs.episode
            if self.mode == "single":
                raw[i] = fresh[i][0]
            elif self.mode == "chunk":
                queue = self.states[key].queue
                if i in fresh:
                    queue.extend(fresh[i][: self.steps])
                raw[i] = queue.popleft()
            else:
                raw[i] = self._ensemble(key, obs.step, fresh[i])
        actions = raw.copy()
        actions[:, :6] = np.clip(actions[:, :6], -1.0, 1.0)
        actions[:, 6] = gripper_to_env(raw[:, 6], self.gripper)
        self.predictor.executed(observations, actions)
        reads_next = [self.uses_images and self._needs_query(obs.episode) for obs in observations]
        return PolicyOutput(actions, reads_next)

    def _ensemble(self, key: str, step: int, chunk: np.ndarray) -> np.ndarray:
        stored = self.states[key].chunks
        stored.append((step, np.asarray(chunk, dtype=np.float64)))
        while stored and stored[0][0] + len(stored[0][1]) <= step:
            stored.popleft()  # chunks that no longer cover this step
        predictions = np.stack([c[step - s] for s, c in stored if 0 <= step - s < len(c)])
        return ensemble_weights(len(predictions), self.ensemble_k) @ predictions

    def describe(self) -> dict | None:
        info = self.predictor.describe()
        if info is None:
            return None
        return {**info, "execution": {"mode": self.mode, "gripper": self.gripper, "chunk_steps": self.steps,
                                      "ensemble_k": self.ensemble_k if self.mode == "temporal_ensemble" else None}}

    def close(self) -> None:
        self.predictor.close()
