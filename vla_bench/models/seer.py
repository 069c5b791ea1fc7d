"""The Seer teacher: per-timestep tokens [text, state, primary image x Q, wrist image x Q, primary CLS,
wrist CLS | foresight x 2F, action x 3] through a GPT-2 backbone with a block-causal mask.

Built from transformers blocks: a ViT (MAE ViT-B/16 shape) per view, a Perceiver resampler, a CLIP
text encoder, GPT-2 blocks. Top-level parameter names follow the released Seer checkpoints
(`text_projector`, `perceiver_resampler`, `transformer_backbone.h.<i>`, `action_pred_token`, ...);
the vision and text encoders use transformers' names and are mapped by `importers.seer.import_seer`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.models.base import VlaModel
from vla_bench.models.checkpoint import ARCHITECTURES, CheckpointConfig, CheckpointError
from vla_bench.models.encoders import build_vision_encoder
from vla_bench.models.heads import ActionDecoderMixin, StateEncoderMixin
from vla_bench.models.perceiver import PerceiverResampler
from vla_bench.models.tokenizer import TOKENIZER_FILE, load_tokenizer

SEER_DEFAULTS: dict[str, Any] = {
    "history": 7,
    "action_steps": 3,
    "hidden_size": 384,
    "layers": 24,
    "heads": 12,
    "resampler_queries": 6,
    "resampler_depth": 3,
    "resampler_heads": 8,
    "resampler_dim_head": 64,
    "foresight_tokens_per_image": 9,
    "foresight_layers": 2,
    "foresight_heads": 16,
    "vision": {"hidden_size": 768, "layers": 12, "heads": 12, "intermediate_size": 3072, "patch_size": 16, "image_size": 224},
    "text": {"vocab_size": 49408, "hidden_size": 512, "layers": 12, "heads": 8, "intermediate_size": 2048,
             "max_length": 77, "projection_dim": 512, "eos_token_id": 49407},
}


def block_causal_mask(steps: int, per_step_a: int, per_step_b: int, obs_tokens: int) -> torch.Tensor:
    """Boolean (L, L) mask, True = may attend. Timestep i sees timesteps <= i; nobody attends the
    query tokens (foresight and action) except the action tokens, which see their own step's
    foresight tokens; within a timestep the context tokens attend each other."""
    group = per_step_a + per_step_b
    allowed = torch.zeros(steps * group, steps * group, dtype=torch.bool)
    for i in range(steps):
        rows = slice(i * group, (i + 1) * group)
        allowed[rows, : (i + 1) * group] = True
    for i in range(steps):
        start = i * group + per_step_a
        allowed[:, start : (i + 1) * group] = False  # query tokens are never keys...
        if obs_tokens:
            actions = slice(start + obs_tokens, (i + 1) * group)
            allowed[actions, start : start + obs_tokens] = True  # ...except foresight, for this step's actions
    return allowed


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (grid*grid, dim): the first half encodes x, the second
    y; each half [sin, cos] of position * 10000^(-i/(d/2)). Computed in float32 as MAE and Seer do."""
    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(d // 2, dtype=np.float32) / np.float32(d / 2.0)
        omega = (1.0 / np.float32(10000) ** omega).astype(np.float32)
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")
    emb = np.concatenate([one_d(dim // 2, xs), one_d(dim // 2, ys)], axis=1)
    return torch.from_numpy(emb).float()


class GPT2Backbone(nn.Module):
    """GPT-2 blocks without token/position tables (inputs are embeddings); `h.<i>` and `ln_f` as in Seer."""

    def __init__(self, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block

        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=1, n_positions=1,
                            bos_token_id=None, eos_token_id=None, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
        config._attn_implementation = "sdpa"
        self.h = nn.ModuleList(GPT2Block(config, layer_idx=i) for i in range(layers))
        self.ln_f = nn.LayerNorm(hidden, eps=config.layer_norm_epsilon)

    def forward(self, embeddings: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(allowed.shape, dtype=embeddings.dtype, device=embeddings.device)
        mask.masked_fill_(~allowed, torch.finfo(embeddings.dtype).min)
        mask = mask[None, None]
        hidden = embeddings
        for block in self.h:
            out = block(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return self.ln_f(hidden)


@ARCHITECTURES.register("seer")
class SeerModel(StateEncoderMixin, ActionDecoderMixin, VlaModel):
    """The Seer teacher (config-driven sizes)."""

    architecture = "seer"
    asset_files = (TOKENIZER_FILE,)
    transform_resizes = True

    def __init__(self, config: CheckpointConfig, tokenizer: Any) -> None:
        super().__init__(config)
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection, ViTConfig
        from transformers.models.vit.modeling_vit import ViTLayer

        m = {**SEER_DEFAULTS, **config.model}
        vis = m["vision"] = {**SEER_DEFAULTS["vision"], **config.model.get("vision", {})}
        txt = m["text"] = {**SEER_DEFAULTS["text"], **config.model.get("text", {})}
        self.config = config = dataclasses.replace(config, model=m)  # defaults made explicit in config.json
        self.tokenizer = tokenizer
        hidden = m["hidden_size"]
        self.hidden = hidden
        self.queries = m["resampler_queries"]
        self.foresight = m["foresight_tokens_per_image"]
        self.text_max_length = txt["max_length"]
        self.image_size = vis["image_size"]
        if config.preprocessing is not None and config.preprocessing.image.size != self.image_size:
            raise CheckpointError(f"config.json preprocessing.image.size {config.preprocessing.image.size} differs from the "
                                  f"vision encoder's image_size {self.image_size}")

        self.vision_encoder = build_vision_encoder(vis)  # "vit" (default) or another encoders.VISION_ENCODERS type
        text_config = CLIPTextConfig(vocab_size=txt["vocab_size"], hidden_size=txt["hidden_size"], num_hidden_layers=txt["layers"],
                                     num_attention_heads=txt["heads"], intermediate_size=txt["intermediate_size"],
                                     max_position_embeddings=txt["max_length"], projection_dim=txt["projection_dim"],
                                     eos_token_id=txt["eos_token_id"], bos_token_id=None, pad_token_id=None)
        text_config._attn_implementation = "sdpa"
        self.text_encoder = CLIPTextModelWithProjection(text_config)
        self.text_projector = nn.Linear(txt["projection_dim"], hidden)
        self._build_state_encoder(hidden)

        vdim = vis["hidden_size"]
        self.perceiver_resampler = PerceiverResampler(vdim, self.queries, m["resampler_depth"], m["resampler_dim_head"], m["resampler_heads"])
        self.image_primary_projector = nn.Linear(vdim, hidden)
        self.cls_token_primary_projector = nn.Linear(vdim, hidden)
        self.image_wrist_projector = nn.Linear(vdim, hidden)
        self.cls_token_wrist_projector = nn.Linear(vdim, hidden)

        self.action_pred_token = nn.Parameter(torch.randn(1, 1, self.action_steps, hidden) * 0.02)
        self.obs_tokens = nn.Parameter(torch.randn(1, 1, 2 * self.foresight, hidden) * 0.02)
        self.embedding_layer_norm = nn.LayerNorm(hidden)
        self.transformer_backbone_position_embedding = nn.Parameter(torch.randn(1, self.history, 1, hidden) * 0.02)
        self.transformer_backbone = GPT2Backbone(hidden, m["layers"], m["heads"])
        self._build_action_decoder(hidden)

        # Foresight head: reconstructs future images from the foresight tokens (training only).
        patches = (vis["image_size"] // vis["patch_size"]) ** 2
        self.patch_size = vis["patch_size"]
        decoder_config = ViTConfig(hidden_size=hidden, num_attention_heads=m["foresight_heads"], intermediate_size=4 * hidden,
                                   layer_norm_eps=1e-5, qkv_bias=True)
        decoder_config._attn_implementation = "sdpa"
        self.mask_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.image_decoder_obs_pred_projector = nn.Linear(hidden, hidden)
        grid_obs, grid_patch = math.isqrt(self.foresight), math.isqrt(patches)
        if grid_obs**2 != self.foresight:
            raise CheckpointError(f"config.json model.foresight_tokens_per_image {self.foresight} must be a square number")
        position = torch.cat([sincos_2d(hidden, grid_obs), sincos_2d(hidden, grid_patch)])[None]
        self.image_decoder_position_embedding = nn.Parameter(position, requires_grad=False)
        self.image_decoder = nn.Sequential(*(ViTLayer(decoder_config) for _ in range(m["foresight_layers"])))
        self.image_decoder_norm = nn.LayerNorm(hidden)
        self.image_decoder_pred = nn.Linear(hidden, self.patch_size**2 * 3)

        self.tokens_a = 2 + 2 * self.queries + 2
        self.tokens_b = 2 * self.foresight + self.action_steps
        self._masks: dict[tuple[int, str], torch.Tensor] = {}
        self._text_cache: dict[str, torch.Tensor] = {}

    def vision_encoder_sincos(self) -> torch.Tensor:
        """MAE's fixed ViT position table (1, 1 + patches, width): a zero row for CLS, then sin-cos."""
        width = self.vision_encoder.config.hidden_size
        grid = self.image_size // self.vision_encoder.config.patch_size
        return torch.cat([torch.zeros(1, width), sincos_2d(width, grid)])[None]

    @classmethod
    def build(cls, config: CheckpointConfig, assets: Path | None = None, tokenizer: Any = None) -> SeerModel:
        if tokenizer is None:
            if assets is None:
                raise CheckpointError("a Seer model needs a tokenizer (tokenizer.json)")
            tokenizer = load_tokenizer(assets)
        return cls(config, tokenizer)

    def save_assets(self, path: Path) -> None:
        self.tokenizer.save_pretrained(str(path))

    # -- pieces --------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        ids = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.text_max_length, return_tensors="pt")
        return ids["input_ids"].to(self.device)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, L) token ids -> (N, H) text token."""
        return self.text_projector(self.text_encoder(input_ids=input_ids).text_embeds)

    def encode_timesteps(self, primary: torch.Tensor, wrist: torch.Tensor, state: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Context tokens of N timesteps: images (N, 3, S, S) per view, state (N, 8), text token (N, H) -> (N, A, H)."""
        tokens = [text[:, None], self.encode_state(state)[:, None]]
        cls_tokens = []
        for images, projector, cls_projector in (
            (primary, self.image_primary_projector, self.cls_token_primary_projector),
            (wrist, self.image_wrist_projector, self.cls_token_wrist_projector),
        ):
            features = self.vision_encoder(pixel_values=images).last_hidden_state
            tokens.append(projector(self.perceiver_resampler(features[:, 1:])))
            cls_tokens.append(cls_projector(features[:, :1]))
        return torch.cat(tokens + cls_tokens, dim=1)

    def mask(self, steps: int, device: torch.device) -> torch.Tensor:
        key = (steps, str(device))
        if key not in self._masks:
            self._masks[key] = block_causal_mask(steps, self.tokens_a, self.tokens_b, 2 * self.foresight).to(device)
        return self._masks[key]

    def forward_tokens(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Context tokens (B, T, A, H), T <= history -> arm (B, T, C, 6), gripper (B, T, C, 1), foresight features (B, T, 2F, H)."""
        batch, steps = context.shape[:2]
        if steps > self.history:
            raise ValueError(f"{steps} timesteps exceed the model's history of {self.history}")
        queries = torch.cat([self.obs_tokens, self.action_pred_token], dim=2).expand(batch, steps, -1, -1)
        tokens = torch.cat([context, queries.to(context.dtype)], dim=2)
        tokens = tokens + self.transformer_backbone_position_embedding[:, :steps]
        hidden = self.transformer_backbone(self.embedding_layer_norm(tokens.flatten(1, 2)), self.mask(steps, tokens.device))
        hidden = hidden.view(batch, steps, self.tokens_a + self.tokens_b, self.hidden)
        foresight = hidden[:, :, self.tokens_a : self.tokens_a + 2 * self.foresight]
        arm, gripper = self.decode_actions(hidden[:, :, self.tokens_a + 2 * self.foresight :])
        return arm, gripper, foresight

    def predict_images(self, foresight: torch.Tensor) -> torch.Tensor:
        """Foresight features (..., 2F, H) -> predicted patches (..., 2, num_patches, patch*patch*3) (training only)."""
        lead = foresight.shape[:-2]
        obs = self.image_decoder_obs_pred_projector(foresight).reshape(-1, self.foresight, self.hidden)
        patches = self.image_decoder_position_embedding.shape[1] - self.foresight
        x = torch.cat([obs, self.mask_token.expand(obs.shape[0], patches, -1)], dim=1) + self.image_decoder_position_embedding
        for layer in self.image_decoder:
            x = layer(x)
        pred = self.image_decoder_pred(self.image_decoder_norm(x[:, -patches:]))
        return pred.view(*lead, 2, patches, -1)

    def forward(self, primary: torch.Tensor, wrist: torch.Tensor, state: torch.Tensor, text_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward: images (B, T, 3, S, S) per view, state (B, T, 8), text ids (B, L)."""
        batch, steps = state.shape[:2]
        text = self.encode_text(text_ids).repeat_interleave(steps, dim=0)
        context = self.encode_timesteps(primary.flatten(0, 1), wrist.flatten(0, 1), state.flatten(0, 1), text)
        arm, gripper, foresight = self.forward_tokens(context.view(batch, steps, self.tokens_a, self.hidden))
        return {"arm": arm, "gripper": gripper, "image_pred": self.predict_images(foresight)}

    # -- inference API -------------------------------------------------------------------------
    def _text_tokens(self, instructions: Sequence[str]) -> torch.Tensor:
        new = sorted({t for t in instructions if t not in self._text_cache})
        if new:
            for text, token in zip(new, self.encode_text(self.tokenize(new))):
                self._text_cache[text] = token
        return torch.stack([self._text_cache[t] for t in instructions])

    def encode_inputs(self, inputs: dict[str, torch.Tensor], instructions: Sequence[str]) -> list[torch.Tensor]:
        primary_view, wrist_view = self.views
        convert = lambda t: t.to(self.device, self.dtype)  # noqa: E731
        context = self.encode_timesteps(convert(inputs[primary_view]), convert(inputs[wrist_view]), convert(inputs["state"]),
                                        self._text_tokens(instructions))
        return list(context)

    def predict(self, windows: Sequence[Sequence[torch.Tensor]], instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        arm = torch.empty(len(windows), self.action_steps, 6, device=self.device, dtype=self.dtype)
        gripper = torch.empty(len(windows), self.action_steps, 1, device=self.device, dtype=self.dtype)
        by_length: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(i)
        for length, rows in by_length.items():  # one forward per window length (all equal once histories fill)
            context = torch.stack([torch.stack(list(windows[i])) for i in rows])
            a, g, _ = self.forward_tokens(context)
            arm[rows], gripper[rows] = a[:, -1], g[:, -1]
        return arm, gripper
