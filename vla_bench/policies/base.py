"""The policy contract: `reset(episode)` and batched `infer(observations) -> actions`.

A policy receives the observations of every env waiting for an action (one per episode, each
carrying its episode key and step) and returns a (B, 7) array of env actions: 6-D delta EEF
(OSC_POSE) in [-1, 1] and the gripper (-1 open, +1 close). Model conventions (gripper mapping,
chunking, ensembling) are the adapter's job, so every executor treats all policies alike.
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


class Policy(ABC):
    """Batched policy. Subclasses set `uses_images` False when they never read camera images."""

    uses_images: bool = True
    needs_privileged: bool = False  # scripted policies: observations carry simulator state
    image_size: int | None = None  # images resized to this size; None: the protocol's model size

    def validate(self, episodes: Sequence[Episode]) -> None:
        """Check before the run that the policy can serve these episodes; raise VlaBenchError if not."""

    def reset(self, episode: Episode) -> None:
        """Called before the first `infer` of an episode."""

    def reads_images(self, episode: str, step: int) -> bool:
        """Whether `infer` reads camera images at this step of this episode (`Episode.key`).

        Executors render only the steps that return True; e.g. an open-loop chunk wrapper reads one
        observation per chunk. Rendering does not change the physics, so outcomes are unaffected.
        """
        return self.uses_images

    @abstractmethod
    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        """Actions (B, 7) for a batch of observations from different episodes."""

    def close(self) -> None:
        """Release resources."""

    def describe(self) -> dict | None:
        """Facts about the loaded model recorded in run.json (policy.model); None for no model."""
        return None


PolicyFactory = Callable[[PolicyContext], Policy]

# Every module of vla_bench.policies is imported on the first lookup; adapters register there.
POLICIES: Registry[PolicyFactory] = Registry("policy", modules=("vla_bench.policies",))


def check_actions(actions: np.ndarray, batch: int) -> np.ndarray:
    """Validate a policy's output for a batch; raises PolicyOutputError naming the problem."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape != (batch, ACTION_DIM):
        raise PolicyOutputError(f"policy returned actions of shape {actions.shape}; expected ({batch}, {ACTION_DIM})")
    return actions


def make_policy(name: str, context: PolicyContext) -> Policy:
    import vla_bench.policies  # noqa: F401  (registers the built-in policies)

    return POLICIES.get(name)(context)
