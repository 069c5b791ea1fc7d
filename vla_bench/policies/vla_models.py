"""Model policies: `seer` (the teacher) and `vita-vla` (the student), loaded from checkpoint
directories, run batched in torch and executed per the run's protocol (execution.py).

torch and transformers are imported only when one of these policies is built.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import POLICIES, Policy, PolicyContext
from vla_bench.policies.execution import ChunkPredictor, EpisodeStates, ExecutionPolicy
from vla_bench.specs import Protocol

if TYPE_CHECKING:
    from vla_bench.models.base import VlaModel
    from vla_bench.models.checkpoint import ExpectedProtocol


LOG = logging.getLogger("vla_bench")


def protocol_differences(expected: "ExpectedProtocol", run: Protocol) -> list[str]:
    """Human-readable differences between a checkpoint's expected protocol and the run's."""
    pairs = [
        ("state", expected.state, run.state),
        ("flip_images", expected.flip_images, run.flip_images),
        ("history", expected.history, run.history),
        ("action_chunk", expected.action_chunk, run.action_chunk),
        ("execution", expected.execution, run.execution),
        ("gripper", expected.gripper, run.gripper),
    ]
    if expected.execution == "temporal_ensemble" or run.execution == "temporal_ensemble":
        pairs.append(("ensemble_k", expected.ensemble_k, run.ensemble_k))
    return [f"{name}: checkpoint {a!r}, run {b!r}" for name, a, b in pairs if a != b]


def check_protocol(expected: "ExpectedProtocol", run: Protocol, checkpoint: Path, strict: bool) -> list[str]:
    """Warn about (or, when strict, refuse) a run protocol that differs from the checkpoint's."""
    missing = [v for v in expected.views if v not in run.cameras]
    if missing:
        raise VlaBenchError(f"checkpoint {checkpoint} needs camera views {missing} that protocol {run.name!r} does not render")
    differences = protocol_differences(expected, run)
    if differences:
        if expected.name == run.name:  # the declared protocol with some of its settings overridden
            head = f"checkpoint {checkpoint} expects a variant of protocol {run.name!r} that differs from the run's: "
        else:
            head = f"checkpoint {checkpoint} expects protocol {expected.name!r} but the run uses {run.name!r}: "
        message = head + "; ".join(differences)
        if strict:
            raise VlaBenchError(message + " (refused by --strict-protocol)")
        LOG.warning("warning: %s (pass --strict-protocol to refuse)", message)
    return differences


@dataclasses.dataclass
class EpisodeHistory:
    """One episode's window of (step, encoded frame) and its last executed gripper command."""

    window: deque
    last_command: float | None = None  # None before the first step (the gripper starts open)


class TorchChunkPredictor(ChunkPredictor):
    """Batched torch inference with a per-episode history window of encoded frames."""

    def __init__(self, model: "VlaModel", image_size: int | None, protocol_differences: Sequence[str] = ()) -> None:
        self.model = model
        self.protocol_differences = list(protocol_differences)
        self.chunk = model.action_steps
        self.image_size = image_size
        self.gripper_state = model.gripper_state
        self.episodes: EpisodeStates[EpisodeHistory] = EpisodeStates(lambda: EpisodeHistory(deque(maxlen=model.history)))

    def start_episode(self, episode: Episode) -> None:
        self.episodes.start(episode.key)

    def end_episode(self, episode: Episode) -> None:
        self.episodes.end(episode.key)

    def executed(self, observations: Sequence[Observation], actions: np.ndarray) -> None:
        for obs, action in zip(observations, actions):
            self.episodes[obs.episode].last_command = float(action[6])

    def predict(self, observations: Sequence[Observation]) -> np.ndarray:
        import torch

        last_commands = [self.episodes[obs.episode].last_command for obs in observations]
        with torch.inference_mode():
            frames = self.model.encode_frames(observations, last_commands)  # through the checkpoint's transform
            windows = []
            for obs, frame in zip(observations, frames):
                window = self.episodes[obs.episode].window
                if window and window[-1][0] == obs.step:
                    window.pop()  # asked twice for the same step: the new frame replaces the old
                window.append((obs.step, frame))
                windows.append([f for _, f in window])
            arm, gripper = self.model.predict(windows, [obs.instruction for obs in observations])
            chunks = torch.cat([arm, gripper], dim=-1).float().cpu().numpy()
        return chunks.astype(np.float64)

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "architecture": config.architecture,
            "vlm_class": config.model.get("vlm_class"),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.model.device),
            "history": self.model.history,
            "gripper_state": self.gripper_state,
            "expected_protocol": config.protocol.to_dict(),
            "protocol_differences": self.protocol_differences,
        }

    def close(self) -> None:
        self.episodes.clear()


def load_model_policy(context: PolicyContext, architecture: str) -> Policy:
    """Build the execution-wrapped policy for a checkpoint directory of `architecture`."""
    from vla_bench.models.checkpoint import from_pretrained, read_config

    if context.checkpoint is None:
        raise VlaBenchError(f"policy {architecture!r} needs --checkpoint DIR (e.g. checkpoints/tiny-{'student' if architecture == 'vita-vla' else 'teacher'})")
    config = read_config(context.checkpoint)
    if config.architecture != architecture:
        raise VlaBenchError(
            f"--checkpoint {context.checkpoint} holds a {config.architecture!r} model; use --policy {config.architecture}"
        )
    differences = check_protocol(config.protocol, context.protocol, context.checkpoint, context.strict_protocol)
    model = from_pretrained(context.checkpoint, device=context.device)
    # A model whose transform resizes gets images as rendered (as upstream evals feed them).
    image_size = context.protocol.render_size if model.transform_resizes else config.protocol.image_size
    predictor = TorchChunkPredictor(model, image_size=image_size, protocol_differences=differences)
    run = context.protocol
    k = run.ensemble_k if run.ensemble_k is not None else (config.protocol.ensemble_k or 0.01)
    return ExecutionPolicy(predictor, mode=run.execution, gripper=run.gripper, steps=run.action_chunk, ensemble_k=k)


@POLICIES.register("seer")
def _seer(context: PolicyContext) -> Policy:
    """Seer teacher from --checkpoint DIR (vla_bench checkpoint; import a .pth with import-checkpoint)."""
    return load_model_policy(context, "seer")


@POLICIES.register("vita-vla")
def _vita(context: PolicyContext) -> Policy:
    """VITA-VLA student from --checkpoint DIR (vla_bench checkpoint; import a .pth with import-checkpoint)."""
    return load_model_policy(context, "vita-vla")
