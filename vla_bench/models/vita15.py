"""The VITA-1.5 VLM as the VITA-VLA student uses it, built from `transformers` blocks.

Structure (VITA-1.5 = VITA-MLLM/VITA; the VITA-VLA branch of Tencent/VITA carries the same model code):

- vision tower: InternViT-300M-448px (`InternVLVisionModel` in transformers holds the same layers);
  the last layer's hidden states, CLS dropped, multiplied by 0.5, then pixel-shuffled (downsample
  0.5: a 14x14 patch grid of a 200 px image becomes 7x7 = 49 tokens of 4x the width);
- projector `mlp{N}x_gelu`: Linear(4*Cv -> H), then (GELU, Linear(H -> H)) x (N-1), no LayerNorm;
- language model: Qwen2 (`Qwen2Model`) with ordinary 1-D positions 0..L-1 per sequence.

transformers' own `InternVLModel` differs in two places (measured in tests/test_model_vita15.py):
its projector starts with a LayerNorm and its vision features are not scaled by 0.5.

The image processor is CLIP's (PIL backend): bicubic resize to the protocol's size, centre crop to
the same size, rescale 1/255, normalise with the vision tower's mean/std.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.models.checkpoint import CheckpointError

NAME = "VITA-1.5"
PROJECTOR = re.compile(r"^mlp(\d+)x_gelu$")
# Placeholders in the chat template and what they become in the sequence.
IMAGE_MARK, STATE_MARK, ACTION_MARK = "<image>", "<state>", "<action>"
MARKS = re.compile(r"(<action>|<image>|<state>)")


def pixel_shuffle(features: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """VITA's InternViT pixel shuffle: (N, W, H, C) -> (N, W*s, H*s, C/s^2)."""
    n, w, h, c = features.size()
    x = features.view(n, w, int(h * scale), int(c / scale))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale), int(w * scale), int(c / (scale * scale)))
    return x.permute(0, 2, 1, 3).contiguous()


def build_projector(kind: str, vision_width: int, hidden: int) -> nn.Sequential:
    """VITA's `mlp{N}x_gelu` projector (module indices 0, 2, 4, ... hold the Linear layers)."""
    match = PROJECTOR.match(kind)
    if not match:
        raise CheckpointError(f"config.json model.vlm_config.projector {kind!r} is not supported (expected mlp<N>x_gelu)")
    modules: list[nn.Module] = [nn.Linear(vision_width, hidden)]
    for _ in range(1, int(match[1])):
        modules += [nn.GELU(), nn.Linear(hidden, hidden)]
    return nn.Sequential(*modules)


class Vita15VLM(nn.Module):
    """InternViT vision tower + pixel shuffle + MLP projector + Qwen2 language model."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        from transformers import InternVLVisionConfig, InternVLVisionModel, Qwen2Config, Qwen2Model

        for key in ("vision_config", "text_config"):
            if key not in config:
                raise CheckpointError(f"config.json model.vlm_config.{key} is missing (VITA-1.5 VLM)")
        self.settings = dict(config)
        vision = InternVLVisionConfig(**{"use_mean_pooling": True, **config["vision_config"]})
        vision._attn_implementation = "sdpa"
        text = Qwen2Config(**config["text_config"])
        text._attn_implementation = "sdpa"
        self.downsample = float(config.get("downsample_ratio", 0.5))
        self.feature_scale = float(config.get("feature_scale", 0.5))
        self.vision_tower = InternVLVisionModel(vision)
        width = int(vision.hidden_size * round(1 / self.downsample) ** 2)
        self.mm_projector = build_projector(config.get("projector", "mlp2x_gelu"), width, text.hidden_size)
        self.language_model = Qwen2Model(text)
        self.config = text

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def vision_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels -> (N, tokens, Cv/downsample^2) shuffled vision features."""
        out = self.vision_tower(pixel_values=pixels).last_hidden_state[:, 1:]  # last layer, CLS dropped
        side = int(round(out.shape[1] ** 0.5))
        if side * side != out.shape[1]:
            raise CheckpointError(f"the vision tower gave {out.shape[1]} patches, not a square grid")
        grid = out.reshape(out.shape[0], side, side, -1)
        shuffled = pixel_shuffle(grid * self.feature_scale, self.downsample)
        return shuffled.reshape(shuffled.shape[0], -1, shuffled.shape[-1])

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, tokens, H) image embeddings for the language model."""
        return self.mm_projector(self.vision_features(pixels))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.language_model.embed_tokens


def make_processor(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """VITA-VLA's image pipeline: CLIP processor, PIL bicubic resize to image_size, crop image_size."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    side = {"height": int(image_size), "width": int(image_size)}
    return CLIPImageProcessorPil(
        size=side, crop_size=side, do_resize=True, do_center_crop=True, resample=3,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=list(mean), image_std=list(std),
        do_convert_rgb=True,
    )


def load_processor(path: Any) -> Any:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(str(path))


def preprocess_images(processor: Any, images: Sequence[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 frames -> (N, 3, S, S) float pixels, one processor call per image as VITA-VLA does."""
    from PIL import Image

    return torch.cat([processor(images=Image.fromarray(np.asarray(img)), return_tensors="pt")["pixel_values"] for img in images])


# -- the qwen2p5_instruct chat template ----------------------------------------------------------


def render_prompt(system: str, instruction: str, turns: int, images_per_turn: int = 2, action_steps: int = 3) -> str:
    """The conversation text VITA-VLA builds for `turns` timesteps (qwen2p5_instruct template).

    Each turn: user `<image> <image> {instruction} <state>`, assistant `<action> <action> <action>`;
    every message but the last ends with `<|im_end|>\\n`, the last with `<|im_end|>`.
    """
    images = " ".join([IMAGE_MARK] * images_per_turn)
    user = f"{images} {STATE_MARK}" if "no lang" in instruction else f"{images} {instruction} {STATE_MARK}"
    assistant = " ".join([ACTION_MARK] * action_steps)
    messages = [m for _ in range(turns) for m in (("user", user), ("assistant", assistant))]
    text = f"<|im_start|>system\n{system}<|im_end|>\n"
    for i, (role, message) in enumerate(messages):
        end = "<|im_end|>\n" if i < len(messages) - 1 else "<|im_end|>"
        text += f"<|im_start|>{role}\n{message}{end}"
    return text


def tokenize_prompt(prompt: str, tokenizer: Any) -> list[int | str]:
    """Token ids with each placeholder kept as its mark: the text between placeholders is tokenised
    chunk by chunk (so spaces around placeholders are tokens of their own), a leading BOS kept once."""
    chunks: list[list[int | str]] = []
    for chunk in MARKS.split(prompt):
        if chunk in (IMAGE_MARK, STATE_MARK, ACTION_MARK):
            chunks.append([chunk])
        elif chunk:
            chunks.append(list(tokenizer(chunk)["input_ids"]))
    bos = tokenizer.bos_token_id
    offset = 1 if chunks and chunks[0] and bos is not None and chunks[0][0] == bos else 0
    ids: list[int | str] = [chunks[0][0]] if offset else []
    for chunk in chunks:
        ids += chunk if chunk[0] in (IMAGE_MARK, STATE_MARK, ACTION_MARK) else chunk[offset:]
    return ids
