"""How each architecture runs a training batch: one function per model that turns a collated batch
into action features and actions, through the same observation path evaluation uses.

- Teacher (seer): images and state go through the checkpoint's `ObservationTransform` (`model.transform`,
  what `encode_frames` applies at evaluation), then `SeerModel.forward`.
  The action features are the backbone outputs at the action tokens (the action decoder's input).
- Student (vita-vla): per-frame `encode_frames` (the frozen vision tower, exactly as evaluation) and
  `action_features` (the language model over the window), then the action mapper and the decoder.

Keeping the coupling to the models here means a change to a model's forward touches one function.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch

from vla_bench.envs.base import Observation
from vla_bench.models.base import VlaModel
from vla_bench.registry import Registry

def model_images(model: VlaModel, images: np.ndarray) -> list[np.ndarray]:
    """Stored frames (N, H, W, 3), as rendered) as evaluation hands them to `model`: unchanged when the
    model's own transform resizes (`transform_resizes`), else through the env's resizer to the
    checkpoint's image size (what `load_model_policy` asks the env for)."""
    if getattr(model, "transform_resizes", False):
        return list(images)
    from vla_bench.envs.obs import resize_image

    size = int(model.config.protocol.image_size)
    return [resize_image(np.ascontiguousarray(image), size) for image in images]


def last_commands(batch: dict[str, Any]) -> list[float | None]:
    """Each frame's last executed gripper command, flattened over (B, T); None before the first action."""
    return [None if np.isnan(c) else float(c) for c in np.asarray(batch["last_command"], dtype=np.float64).reshape(-1)]


def encoded_states(model: VlaModel, demo: Any) -> np.ndarray:
    """(T, 8) states of a demo as the checkpoint's state encoding gives them to the model."""
    encode = model.transform.preprocessing.state
    previous = [None] + [float(a) for a in demo.actions[:-1, 6]]
    return np.stack([encode(s, c) for s, c in zip(demo.state, previous)])


def state_statistics(model: VlaModel, demos: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the encoded states over `demos` (std floored)."""
    states = np.concatenate([encoded_states(model, d) for d in demos])
    return states.mean(axis=0).astype(np.float32), np.maximum(states.std(axis=0), 1e-3).astype(np.float32)


def _normalise(state: torch.Tensor, norm: tuple[np.ndarray, np.ndarray] | None) -> torch.Tensor:
    if norm is None:
        return state
    mean = torch.as_tensor(norm[0], device=state.device, dtype=state.dtype)
    std = torch.as_tensor(norm[1], device=state.device, dtype=state.dtype)
    return (state - mean) / std


@dataclasses.dataclass
class Outputs:
    """A batch's model outputs: arm (B, T, C, 6), gripper probability (B, T, C, 1), action features
    (B, T, C, d) and, for the teacher, foresight image predictions and their targets."""

    arm: torch.Tensor
    gripper: torch.Tensor
    features: torch.Tensor
    image_pred: torch.Tensor | None = None
    image_target: torch.Tensor | None = None


Adapter = Callable[..., Outputs]
ADAPTERS: Registry[Adapter] = Registry("training adapter")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N, (S/p)^2, p*p*3), row-major patches (the foresight head's layout)."""
    n, c, s, _ = images.shape
    g = s // patch
    return images.view(n, c, g, patch, g, patch).permute(0, 2, 4, 3, 5, 1).reshape(n, g * g, patch * patch * c)


@ADAPTERS.register("seer")
def teacher_outputs(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = True) -> Outputs:
    transform = model.transform  # the checkpoint's observation transform, as evaluation applies it
    device, dtype = model.device, model.dtype
    primary_view, wrist_view = model.views
    b, t = batch["state"].shape[:2]

    def flat(images: np.ndarray) -> list[np.ndarray]:
        return model_images(model, images.reshape(-1, *images.shape[2:]))

    images = {v: flat(batch["images"][v]) for v in model.views}
    inputs = transform.batch([{v: images[v][k] for v in model.views} for k in range(b * t)],
                             list(batch["state"].reshape(b * t, -1)), last_commands(batch))
    view = lambda x: x.to(device, dtype).view(b, t, *x.shape[1:])  # noqa: E731
    state = _normalise(view(inputs["state"]), norm)
    captured: list[torch.Tensor] = []
    hook = model.action_decoder.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        out = model(view(inputs[primary_view]), view(inputs[wrist_view]), state, model.tokenize(batch["instruction"]))
    finally:
        hook.remove()
    target = None
    if foresight:
        pipeline = transform.preprocessing.image
        futures = [torch.stack([pipeline(img) for img in flat(batch["future"][v])]).to(device, dtype) for v in (primary_view, wrist_view)]
        target = torch.stack([patchify(f, model.patch_size) for f in futures], dim=1)
        target = target.view(b, t, 2, *target.shape[2:])
    return Outputs(out["arm"], out["gripper"], captured[-1], out["image_pred"] if foresight else None, target)


@ADAPTERS.register("vita-vla")
def student_outputs(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = False) -> Outputs:
    b, t = batch["state"].shape[:2]
    images = {v: model_images(model, batch["images"][v].reshape(-1, *batch["images"][v].shape[2:])) for v in model.views}
    observations = [
        Observation(images={v: images[v][i * t + j] for v in model.views}, state=batch["state"][i, j], instruction=batch["instruction"][i])
        for i in range(b)
        for j in range(t)
    ]
    with torch.no_grad():  # the vision tower is frozen in both stages
        frames = model.encode_frames(observations, last_commands(batch))  # the checkpoint's transform, as evaluation
    for frame in frames:
        frame.state = _normalise(frame.state, norm)
    windows = [frames[i * t : (i + 1) * t] for i in range(b)]
    features = model.action_features(windows, batch["instruction"])  # (B, T, 3, H)
    mapped = model.action_mapper(features)
    arm, gripper = model.decode_actions(mapped)
    return Outputs(arm, gripper, mapped)


def run_batch(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = False) -> Outputs:
    """Outputs of `model` on a collated batch, with its state normalised by `norm` (mean, std) if given."""
    return ADAPTERS.get(model.config.architecture)(model, batch, norm, foresight)
