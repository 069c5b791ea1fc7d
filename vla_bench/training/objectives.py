"""The three training objectives (DESIGN §6) as modules whose forward(batch) returns the losses, the
parts each one trains, and the state normalisation folded into the state encoder at export.

- teacher:  smooth-L1(arm) + 0.01·BCE(gripper) + 0.1·MSE(foresight images `chunk` steps ahead)
- align:    L2 between the student's mapped action features and the frozen teacher's features at its
            action tokens; VLM and teacher frozen (stage 1)
- finetune: smooth-L1(arm) + 0.01·BCE(gripper); vision tower frozen (stage 2)

The arm loss is scaled per dimension (rotation deltas are ~50x smaller than translation deltas).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.errors import VlaBenchError
from vla_bench.models.base import VlaModel
from vla_bench.training.adapters import Outputs, run_batch

GRIPPER_WEIGHT = 0.01
IMAGE_WEIGHT = 0.1
STATE_ENCODER = ("arm_state_encoder", "gripper_state_encoder", "state_projector")
DECODER = ("action_decoder", "arm_action_decoder", "gripper_action_decoder")


def language_model_prefix(student: VlaModel) -> str:
    """The parameter-name prefix of the student's language model (found by identity, so it follows
    whatever VLM class the student wraps)."""
    vlm = student.vlm
    decoder = vlm.language_model if hasattr(vlm, "language_model") else vlm.get_decoder()
    for name, module in student.named_modules():
        if module is decoder:
            return name
    raise VlaBenchError("cannot find the student's language model among its modules")


def default_trainable(stage: str, model: VlaModel) -> tuple[str, ...]:
    """Parameter-name prefixes each stage trains by default (DESIGN §6)."""
    if stage == "teacher":
        return ("",)  # everything; the config can freeze parts
    if stage == "align":
        return ("action_token", *STATE_ENCODER, "action_mapper")
    if stage == "finetune":
        return (language_model_prefix(model), "action_token", *STATE_ENCODER, "action_mapper", *DECODER)
    raise VlaBenchError(f"unknown stage {stage!r}")


def set_trainable(model: nn.Module, trainable: Sequence[str], frozen: Sequence[str]) -> list[str]:
    """requires_grad on parameters under a `trainable` prefix and not under a `frozen` one; returns
    the trainable names. A prefix that matches nothing is an error naming it."""

    def under(name: str, prefix: str) -> bool:
        return prefix == "" or name == prefix or name.startswith(prefix + ".")

    names = [n for n, _ in model.named_parameters()]
    for prefix in (*trainable, *frozen):
        if prefix and not any(under(n, prefix) for n in names):
            raise VlaBenchError(f"parameter prefix {prefix!r} matches no parameter of the {type(model).__name__}")
    chosen = []
    for name, param in model.named_parameters():
        param.requires_grad_(any(under(name, p) for p in trainable) and not any(under(name, p) for p in frozen))
        if param.requires_grad:
            chosen.append(name)
    if not chosen:
        raise VlaBenchError("no parameter is left trainable (check the trainable / frozen prefixes)")
    return chosen


# -- state normalisation --------------------------------------------------------------------------
def _affine(model: VlaModel, mean: np.ndarray, std: np.ndarray, fold: bool) -> None:
    """fold: the encoder that read (x - mean) / std now reads x. unfold: the inverse."""
    with torch.no_grad():
        for layer, dims in ((model.arm_state_encoder, slice(0, 6)), (model.gripper_state_encoder, slice(6, 8))):
            m = torch.as_tensor(mean[dims], dtype=layer.weight.dtype, device=layer.weight.device)
            s = torch.as_tensor(std[dims], dtype=layer.weight.dtype, device=layer.weight.device)
            if fold:
                layer.weight.div_(s)
                layer.bias.sub_(layer.weight @ m)
            else:
                layer.bias.add_(layer.weight @ m)
                layer.weight.mul_(s)


def fold_state_normalisation(model: VlaModel, mean: np.ndarray, std: np.ndarray) -> VlaModel:
    """A copy of `model` that reads raw states the way `model` reads normalised ones (for export)."""
    folded = copy.deepcopy(model)
    _affine(folded, mean, std, fold=True)
    return folded


def fold_state_dict(state: dict[str, torch.Tensor], mean: np.ndarray, std: np.ndarray) -> dict[str, torch.Tensor]:
    """`fold_state_normalisation` on a state dict (e.g. one gathered from sharded processes)."""
    out = dict(state)
    for layer, dims in (("arm_state_encoder", slice(0, 6)), ("gripper_state_encoder", slice(6, 8))):
        weight, bias = state[f"{layer}.weight"].float(), state[f"{layer}.bias"].float()
        m = torch.as_tensor(mean[dims], dtype=torch.float32, device=weight.device)
        s = torch.as_tensor(std[dims], dtype=torch.float32, device=weight.device)
        folded = weight / s
        out[f"{layer}.weight"] = folded.to(state[f"{layer}.weight"].dtype)
        out[f"{layer}.bias"] = (bias - folded @ m).to(state[f"{layer}.bias"].dtype)
    return out


def unfold_state_normalisation(model: VlaModel, mean: np.ndarray, std: np.ndarray) -> None:
    """In place: a trained `model` reading raw states now reads normalised ones, unchanged outputs."""
    _affine(model, mean, std, fold=False)


# -- losses ----------------------------------------------------------------------------------------
def action_losses(out: Outputs, batch: dict[str, Any], arm_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-dimension scaled smooth-L1 on the arm and BCE on the gripper, over valid chunk steps."""
    device = out.arm.device
    target = torch.as_tensor(batch["actions"], device=device, dtype=torch.float32)
    valid = torch.as_tensor(batch["valid"], device=device, dtype=torch.float32)[..., None]
    arm = out.arm.float() * arm_scale
    arm_loss = nn.functional.smooth_l1_loss(arm, target[..., :6] * arm_scale, reduction="none")
    arm_loss = (arm_loss * valid).sum() / (valid.sum() * 6)
    closed = (target[..., 6:7] > 0).float()
    prob = out.gripper.float().clamp(1e-6, 1 - 1e-6)
    bce = nn.functional.binary_cross_entropy(prob, closed, reduction="none")
    bce = (bce * valid).sum() / valid.sum()
    return {"arm": arm_loss, "gripper": bce}


class TeacherObjective(nn.Module):
    def __init__(self, model: VlaModel, arm_scale: np.ndarray, norm: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__()
        self.model = model
        self.norm = norm
        self.register_buffer("arm_scale", torch.as_tensor(arm_scale), persistent=False)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = run_batch(self.model, batch, self.norm, foresight=True)
        losses = action_losses(out, batch, self.arm_scale)
        losses["image"] = nn.functional.mse_loss(out.image_pred.float(), out.image_target.float())
        losses["loss"] = losses["arm"] + GRIPPER_WEIGHT * losses["gripper"] + IMAGE_WEIGHT * losses["image"]
        return losses


class AlignObjective(nn.Module):
    """Stage 1. The teacher is held outside the module's parameters (frozen, never saved)."""

    def __init__(self, model: VlaModel, teacher: VlaModel, norm: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__()
        self.model = model
        self.norm = norm
        self._teacher = [teacher.eval().requires_grad_(False)]

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = run_batch(self._teacher[0], batch, None, foresight=False).features.float()
        out = run_batch(self.model, batch, self.norm)
        valid = torch.as_tensor(batch["valid"][..., :1], device=target.device, dtype=torch.float32)  # frames, not chunk steps
        l2 = ((out.features.float() - target) ** 2).mean(dim=-1)  # (B, T, 3)
        loss = (l2 * valid).sum() / (valid.sum() * l2.shape[-1])
        return {"loss": loss, "align": loss}


class FinetuneObjective(nn.Module):
    def __init__(self, model: VlaModel, arm_scale: np.ndarray, norm: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__()
        self.model = model
        self.norm = norm
        self.register_buffer("arm_scale", torch.as_tensor(arm_scale), persistent=False)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = run_batch(self.model, batch, self.norm)
        losses = action_losses(out, batch, self.arm_scale)
        losses["loss"] = losses["arm"] + GRIPPER_WEIGHT * losses["gripper"]
        return losses


def validation_metrics(model: VlaModel, batch: dict[str, Any], norm: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Sums over a batch's valid chunk steps: arm L1 (mean over 6 dims), gripper hits, count."""
    out = run_batch(model, batch, norm)
    target = torch.as_tensor(batch["actions"], dtype=torch.float32, device=out.arm.device)
    valid = torch.as_tensor(batch["valid"], dtype=torch.bool, device=out.arm.device)
    l1 = (out.arm.float() - target[..., :6]).abs().mean(dim=-1)
    hits = ((out.gripper.float()[..., 0] > 0.5) == (target[..., 6] > 0))
    return {"arm_l1": float(l1[valid].sum()), "gripper_hits": float(hits[valid].sum()), "count": float(valid.sum())}
