"""Vision encoders the Seer teacher can use, by name (`model.vision.type` in config.json).

Every encoder maps (N, 3, S, S) normalised images to an output with `last_hidden_state` of shape
(N, 1 + P, D): one summary (CLS) token followed by P patch tokens, as transformers' ViTModel does.

- "vit" (default): the MAE ViT-B/16 shape of the released Seer (transformers ViTModel), frozen and
  pretrained upstream.
- "conv": a small strided CNN trained from scratch, for machines where no pretrained ViT can be
  downloaded and a ViT learns too slowly from scratch (the small-scale recipe in docs/training.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import torch
from torch import nn

from vla_bench.models.checkpoint import CheckpointError
from vla_bench.registry import Registry

VISION_ENCODERS: Registry[Callable[[Mapping[str, Any]], nn.Module]] = Registry("vision encoder")


@dataclasses.dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor


@VISION_ENCODERS.register("vit")
def _vit(vis: Mapping[str, Any]) -> nn.Module:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=vis["hidden_size"], num_hidden_layers=vis["layers"], num_attention_heads=vis["heads"],
                       intermediate_size=vis["intermediate_size"], image_size=vis["image_size"],
                       patch_size=vis["patch_size"], layer_norm_eps=1e-6, qkv_bias=True)
    config._attn_implementation = "sdpa"
    return ViTModel(config, add_pooling_layer=False)


class ConvEncoder(nn.Module):
    """Strided 3x3 conv blocks (GroupNorm, GELU), each halving the resolution; the final feature map's
    cells are the patch tokens and their mean, projected, is the summary token."""

    def __init__(self, channels: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = 3
        for width in channels:
            blocks += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GroupNorm(min(8, width), width), nn.GELU()]
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.project = nn.Linear(previous, hidden)
        self.summary = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, pixel_values: torch.Tensor) -> EncoderOutput:
        cells = self.project(self.blocks(pixel_values).flatten(2).transpose(1, 2))  # (N, P, D)
        summary = self.summary(cells.mean(dim=1, keepdim=True))
        return EncoderOutput(self.norm(torch.cat([summary, cells], dim=1)))


@VISION_ENCODERS.register("conv")
def _conv(vis: Mapping[str, Any]) -> nn.Module:
    channels = tuple(int(c) for c in vis.get("channels", (32, 64, 128)))
    if not channels:
        raise CheckpointError("config.json model.vision.channels must list at least one conv width")
    return ConvEncoder(channels, int(vis["hidden_size"]))


def build_vision_encoder(vis: Mapping[str, Any]) -> nn.Module:
    """The encoder `vis["type"]` names (default "vit"); an unknown type names the known ones."""
    return VISION_ENCODERS.get(vis.get("type", "vit"))(vis)
