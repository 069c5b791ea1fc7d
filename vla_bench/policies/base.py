"""The policy contract: `start_episode` / `end_episode` around batched `infer(observations)`.

A policy receives the observations of every env waiting for an action (one per episode, each
carrying its episode key and step) and returns a (B, 7) array of env actions: 6-D delta EEF
(OSC_POSE) in [-1, 1] and the gripper (-1 open, +1 close); or a `PolicyOutput`, which adds per row
whether that episode's next observation needs camera images (so executors render only those steps,
without asking the policy again: one round trip per step for a remote policy). The episode driver
calls `start_episode` before an episode's first `infer` and `end_episode` once it is over, however it
ended (success, step limit, error, a lost worker, interruption), so per-episode state is bounded.
Model conventions (gripper mapping, chunking, ensembling) are the adapter's job, so every executor
treats all policies alike.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vla_bench.envs.base import ACTION_DIM, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyOutputError
from vla_bench.registry import Registry
from vla_bench.remote.options import RemoteOptions
from vla_bench.specs import Protocol


@dataclasses.dataclass(frozen=True)
class PolicyContext:
    """What a policy factory gets: the run's protocol, checkpoint, seed and device."""

    protocol: Protocol
    checkpoint: Path | None = None
    seed: int = 0
    device: str = "cpu"
    strict_protocol: bool = False  # refuse (rather than warn about) a checkpoint trained for another protocol
    remote: RemoteOptions = RemoteOptions()  # options of --policy remote


@dataclasses.dataclass(frozen=True)
class PolicyOutput:
    """What `infer` may return instead of a bare array.

    `reads_next[i]`: whether row i's episode needs camera images in its next observation (e.g. an
    open-loop chunk wrapper: only when its chunk runs out). Rendering does not change the physics,
    so outcomes are the same whatever it says. None: `uses_images` for every row.
    """

    actions: np.ndarray
    reads_next: Sequence[bool] | None = None


class Policy(ABC):
    """Batched policy. Subclasses set `uses_images` False when they never read camera images."""

    uses_images: bool = True
    needs_privileged: bool = False  # scripted policies: observations carry simulator state
    image_size: int | None = None  # images resized to this size; None: the protocol's model size

    def validate(self, episodes: Sequence[Episode]) -> None:
        """Check before the run that the policy can serve these episodes; raise VlaBenchError if not."""

    def start_episode(self, episode: Episode) -> None:
        """Called before the first `infer` of an episode (and again if the episode is retried)."""

    def end_episode(self, episode: Episode) -> None:
        """Called once the episode is over, however it ended: drop its per-episode state here."""

    @abstractmethod
    def infer(self, observations: Sequence[Observation]) -> np.ndarray | PolicyOutput:
        """Actions (B, 7) for a batch of observations from different episodes, or a PolicyOutput.

        A plain array means every episode's next observation is read as the first one is: with images
        when `uses_images`. The first observation of an episode has images when `uses_images`.
        """

    def close(self) -> None:
        """Release resources."""

    def describe(self) -> dict | None:
        """Facts about the loaded model recorded in run.json (policy.model); None for no model."""
        return None


PolicyFactory = Callable[[PolicyContext], Policy]

# Every module of vla_bench.policies is imported on the first lookup; adapters register there.
POLICIES: Registry[PolicyFactory] = Registry("policy", modules=("vla_bench.policies",))


def check_actions(actions: np.ndarray, batch: int) -> np.ndarray:
    """Validate a policy's actions for a batch; raises PolicyOutputError naming the problem."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != (batch, ACTION_DIM):
        raise PolicyOutputError(f"policy returned actions of shape {actions.shape}; expected ({batch}, {ACTION_DIM})")
    return actions


def check_output(output: np.ndarray | PolicyOutput, batch: int, uses_images: bool) -> tuple[np.ndarray, list[bool]]:
    """(actions (B, 7), reads_next per row) from what `infer` returned; raises PolicyOutputError."""
    if not isinstance(output, PolicyOutput):
        return check_actions(output, batch), [uses_images] * batch
    actions = check_actions(output.actions, batch)
    if output.reads_next is None:
        return actions, [uses_images] * batch
    reads = [bool(r) for r in output.reads_next]
    if len(reads) != batch:
        raise PolicyOutputError(f"policy returned {len(reads)} reads_next flags for a batch of {batch}")
    return actions, reads


def make_policy(name: str, context: PolicyContext) -> Policy:
    import vla_bench.policies  # noqa: F401  (registers the built-in policies)

    return POLICIES.get(name)(context)
