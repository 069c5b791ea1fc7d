"""Built-in policies: `zero` (no-op), `random` (seeded) and `replay` (recorded actions)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from vla_bench.envs.base import ACTION_DIM, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import POLICIES, Policy, PolicyContext

GRIPPER_OPEN = -1.0


class ZeroPolicy(Policy):
    """Holds still with the gripper open: the floor any policy must beat."""

    uses_images = False

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        actions = np.zeros((len(observations), ACTION_DIM))
        actions[:, 6] = GRIPPER_OPEN
        return actions


class RandomPolicy(Policy):
    """Uniform random deltas in [-1, 1] and a random gripper, seeded per episode.

    Each episode's stream depends only on (run seed, episode key), so results do not depend on
    batching or on which worker ran the episode.
    """

    uses_images = False

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rngs: dict[str, np.random.Generator] = {}

    def start_episode(self, episode: Episode) -> None:
        self._rngs[episode.key] = np.random.default_rng([self.seed, zlib.crc32(episode.key.encode())])

    def end_episode(self, episode: Episode) -> None:
        self._rngs.pop(episode.key, None)

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        actions = np.empty((len(observations), ACTION_DIM))
        for row, obs in zip(actions, observations):
            rng = self._rngs[obs.episode]
            row[:6] = rng.uniform(-1.0, 1.0, size=6)
            row[6] = rng.choice([-1.0, 1.0])
        return actions


class ReplayPolicy(Policy):
    """Replays recorded actions.

    File layout: a `.npy` array of shape (T, 7) replayed in every episode, or a `.npz` archive
    whose keys are episode keys `"<suite>/<task_id>/<init_idx>"` (e.g. "libero_10/0/3"), each an
    array of shape (T, 7). After T steps the policy holds still with the last gripper command.
    """

    uses_images = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._actions = load_replay(path)

    def _for(self, key: str) -> np.ndarray:
        if None in self._actions:
            return self._actions[None]
        return self._actions[key]

    def validate(self, episodes: Sequence[Episode]) -> None:
        if None in self._actions:
            return
        missing = [e.key for e in episodes if e.key not in self._actions]
        if missing:
            raise VlaBenchError(f"replay file {self.path} has no actions for episode {missing[0]!r} ({len(missing)} missing)")

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        actions = np.empty((len(observations), ACTION_DIM))
        for row, obs in zip(actions, observations):
            recorded = self._for(obs.episode)
            if obs.step < len(recorded):
                row[:] = recorded[obs.step]
            else:
                row[:] = 0.0
                row[6] = recorded[-1, 6] if len(recorded) else GRIPPER_OPEN
        return actions


def load_replay(path: Path) -> dict[str | None, np.ndarray]:
    """Read a replay file; key None holds the actions for every episode (.npy)."""
    if not path.is_file():
        raise VlaBenchError(f"replay file {path} does not exist")
    arrays: dict[str | None, np.ndarray] = {}
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arrays[None] = loaded
        else:
            with loaded:
                arrays.update({key: loaded[key] for key in loaded.files})
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        # a truncated or garbage .npz fails inside zipfile, when opened or when a member is read
        detail = str(exc) or type(exc).__name__
        raise VlaBenchError(f"replay file {path} is not a .npy/.npz file that can be read ({detail})") from None
    for key, array in arrays.items():
        if array.ndim != 2 or array.shape[1] != ACTION_DIM or not np.issubdtype(array.dtype, np.number):
            where = "" if key is None else f" key {key!r}"
            raise VlaBenchError(
                f"replay file {path}{where} has shape {array.shape}; expected (T, {ACTION_DIM}) numeric actions"
            )
    return {key: np.asarray(array, dtype=np.float64) for key, array in arrays.items()}


@POLICIES.register("zero")
def _zero(context: PolicyContext) -> Policy:
    """No-op deltas, gripper open (needs no images)."""
    return ZeroPolicy()


@POLICIES.register("random")
def _random(context: PolicyContext) -> Policy:
    """Uniform random actions, seeded per episode from --seed."""
    return RandomPolicy(context.seed)


@POLICIES.register("replay")
def _replay(context: PolicyContext) -> Policy:
    """Replays actions from --checkpoint FILE (.npy (T,7) or .npz keyed "suite/task/init")."""
    if context.checkpoint is None:
        raise VlaBenchError("policy 'replay' needs --checkpoint PATH to a .npy or .npz actions file")
    return ReplayPolicy(context.checkpoint)
