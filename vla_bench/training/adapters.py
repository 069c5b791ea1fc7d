"""How each architecture runs a training batch: one function per model that turns a collated batch
into action features and actions, through the same observation path evaluation uses.

- Teacher (seer): images go through `observation_transform(config)` (the checkpoint's image size and
  normalisation, the function `SeerModel.encode_frames` applies at evaluation), then `SeerModel.forward`.
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
from vla_bench.models.base import VlaModel, images_to_tensor
from vla_bench.registry import Registry
from vla_bench.training.data import model_state

ImageTransform = Callable[[Sequence[np.ndarray], torch.device, torch.dtype], torch.Tensor]


def model_images(model: VlaModel, images: np.ndarray) -> list[np.ndarray]:
    """Stored frames (N, H, W, 3), as rendered) as evaluation hands them to `model`: unchanged when the
    model's own transform resizes (`transform_resizes`), else through the env's resizer to the
    checkpoint's image size (what `load_model_policy` asks the env for)."""
    if getattr(model, "transform_resizes", False):
        return list(images)
    from vla_bench.envs.obs import resize_image

    size = int(model.config.protocol.image_size)
    return [resize_image(np.ascontiguousarray(image), size) for image in images]


def observation_transform(model: VlaModel) -> ImageTransform:
    """The image transform the checkpoint config declares (its image size and normalisation), as
    evaluation applies it: HxWx3 uint8 images -> (N, 3, S, S)."""
    config = model.config
    size = int(config.model.get("vision", {}).get("image_size", config.protocol.image_size))
    norm = config.normalisation

    def transform(images: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return images_to_tensor(images, size, norm["image_mean"], norm["image_std"], device, dtype)

    return transform


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


def batch_state(model: VlaModel, batch: dict[str, Any], norm: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(B, T, 8) state as `model` reads it (gripper entries per its gripper_state), normalised by
    `norm` (mean, std) when given (training folds it into the state encoder at export)."""
    state = model_state(batch["state"], batch["command"], model.gripper_state)
    if norm is not None:
        state = (state - norm[0]) / norm[1]
    return state.astype(np.float32)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N, (S/p)^2, p*p*3), row-major patches (the foresight head's layout)."""
    n, c, s, _ = images.shape
    g = s // patch
    return images.view(n, c, g, patch, g, patch).permute(0, 2, 4, 3, 5, 1).reshape(n, g * g, patch * patch * c)


@ADAPTERS.register("seer")
def teacher_outputs(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = True) -> Outputs:
    transform = observation_transform(model)
    device, dtype = model.device, model.dtype
    primary_view, wrist_view = model.views
    b, t = batch["state"].shape[:2]

    def view(images: np.ndarray) -> torch.Tensor:
        x = transform(model_images(model, images.reshape(-1, *images.shape[2:])), device, dtype)
        return x.view(b, t, *x.shape[1:])

    captured: list[torch.Tensor] = []
    hook = model.action_decoder.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        state = torch.as_tensor(batch_state(model, batch, norm), device=device, dtype=dtype)
        out = model(view(batch["images"][primary_view]), view(batch["images"][wrist_view]), state, model.tokenize(batch["instruction"]))
    finally:
        hook.remove()
    target = None
    if foresight:
        patch = model.patch_size
        target = torch.stack([patchify(view(batch["future"][v]).flatten(0, 1), patch) for v in (primary_view, wrist_view)], dim=1)
        target = target.view(b, t, 2, *target.shape[2:])
    return Outputs(out["arm"], out["gripper"], captured[-1], out["image_pred"] if foresight else None, target)


@ADAPTERS.register("vita-vla")
def student_outputs(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = False) -> Outputs:
    b, t = batch["state"].shape[:2]
    state = batch_state(model, batch, norm)
    images = {v: model_images(model, batch["images"][v].reshape(-1, *batch["images"][v].shape[2:])) for v in model.views}
    observations = [
        Observation(images={v: images[v][i * t + j] for v in model.views}, state=state[i, j], instruction=batch["instruction"][i])
        for i in range(b)
        for j in range(t)
    ]
    with torch.no_grad():  # the vision tower is frozen in both stages
        frames = model.encode_frames(observations)
    windows = [frames[i * t : (i + 1) * t] for i in range(b)]
    features = model.action_features(windows, batch["instruction"])  # (B, T, 3, H)
    mapped = model.action_mapper(features)
    arm, gripper = model.decode_actions(mapped)
    return Outputs(arm, gripper, mapped)


def run_batch(model: VlaModel, batch: dict[str, Any], norm: Any = None, foresight: bool = False) -> Outputs:
    """Outputs of `model` on a collated batch, with its state normalised by `norm` (mean, std) if given."""
    return ADAPTERS.get(model.config.architecture)(model, batch, norm, foresight)
