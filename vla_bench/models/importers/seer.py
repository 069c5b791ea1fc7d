"""Seer importer: a `.pth` whose `model_state_dict` uses the Seer training code's names: a timm MAE ViT
(`vision_encoder.blocks.<i>.attn.qkv`), OpenAI CLIP (`clip_model.transformer.resblocks.<i>`), and
Seer's own modules. The ViT and CLIP weights are renamed (and fused q/k/v split) onto the
transformers modules; pretraining-only weights are dropped and listed; everything else must match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, load_weights
from vla_bench.models.importers import IMPORTERS, ImportReport, ImportRequest, read_pth

# Seer weights used only in pretraining / never at inference: dropped on import (and reported).
SEER_DROPPED = (
    "vision_encoder.decoder_",  # MAE pixel decoder
    "vision_encoder.mask_token",
    "clip_model.visual.",  # CLIP image tower (Seer reads only the text tower)
    "clip_model.logit_scale",
    "action_pose_encoder.",  # action encoders and state reconstruction heads (unused by Seer)
    "action_gripper_position_encoder.",
    "action_projector.",
    "recon_state_decoder.",
    "recon_arm_state_decoder.",
    "recon_gripper_state_decoder.",
)


def _timm_block(out: str, rest: str, value: torch.Tensor, target: dict[str, torch.Tensor]) -> bool:
    """Map one timm ViT block weight (`norm1`, `attn.qkv`, ...) onto a transformers ViTLayer."""
    simple = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
              "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    module, _, kind = rest.rpartition(".")
    if module in simple:
        target[f"{out}.{simple[module]}.{kind}"] = value
        return True
    if module == "attn.qkv":
        for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
            target[f"{out}.attention.{name}.{kind}"] = part.clone()
        return True
    return False


def map_seer_state_dict(source: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a Seer training state dict to SeerModel names; returns (mapped, dropped keys).

    Unknown keys are passed through unchanged, so the strict check afterwards names them.
    """
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in source.items():
        if key.startswith(SEER_DROPPED) or key == "attention_mask":
            dropped.append(key)
            continue
        if m := re.fullmatch(r"vision_encoder\.blocks\.(\d+)\.(.+)", key):
            if _timm_block(f"vision_encoder.layers.{m[1]}", m[2], value, mapped):
                continue
        if m := re.fullmatch(r"image_decoder\.(\d+)\.(.+)", key):
            if _timm_block(f"image_decoder.{m[1]}", m[2], value, mapped):
                continue
        vit = {
            "vision_encoder.cls_token": "vision_encoder.embeddings.cls_token",
            "vision_encoder.pos_embed": "vision_encoder.embeddings.position_embeddings",
            "vision_encoder.patch_embed.proj.weight": "vision_encoder.embeddings.patch_embeddings.projection.weight",
            "vision_encoder.patch_embed.proj.bias": "vision_encoder.embeddings.patch_embeddings.projection.bias",
            "vision_encoder.norm.weight": "vision_encoder.layernorm.weight",
            "vision_encoder.norm.bias": "vision_encoder.layernorm.bias",
            "clip_model.token_embedding.weight": "text_encoder.text_model.embeddings.token_embedding.weight",
            "clip_model.positional_embedding": "text_encoder.text_model.embeddings.position_embedding.weight",
            "clip_model.ln_final.weight": "text_encoder.text_model.final_layer_norm.weight",
            "clip_model.ln_final.bias": "text_encoder.text_model.final_layer_norm.bias",
        }
        if key in vit:
            mapped[vit[key]] = value
            continue
        if key == "clip_model.text_projection":  # x @ P in CLIP; a Linear stores P^T
            mapped["text_encoder.text_projection.weight"] = value.t().contiguous()
            continue
        if m := re.fullmatch(r"clip_model\.transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias|in_proj_weight|in_proj_bias)", key):
            out = f"text_encoder.text_model.encoder.layers.{m[1]}"
            module, kind = m[2], m[3]
            if kind.startswith("in_proj"):
                suffix = kind.removeprefix("in_proj_")
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    mapped[f"{out}.self_attn.{name}.{suffix}"] = part.clone()
                continue
            names = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                     "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
            if module in names:
                mapped[f"{out}.{names[module]}.{kind}"] = value
                continue
        mapped[key] = value
    return mapped, dropped


def _check_seer_mask(source: Mapping[str, torch.Tensor], model: Any) -> None:
    """A stored Seer attention mask must be the block-causal variant this model builds."""
    if "attention_mask" not in source:
        return
    stored = source["attention_mask"]
    ours = model.mask(model.history, torch.device("cpu"))
    if tuple(stored.shape) != tuple(ours.shape) or not torch.equal(torch.isfinite(stored) & (stored == 0), ours):
        raise CheckpointError(
            f"the checkpoint's attention_mask {tuple(stored.shape)} is not the block-causal mask for history "
            f"{model.history} (a Seer variant with goal/observation-only attention is not supported)"
        )


def import_seer(source: Path, config: CheckpointConfig, tokenizer_dir: Path, output: Path, trust_pickle: bool = False) -> ImportReport:
    """Seer `.pth` + a checkpoint config (sizes, protocol) + tokenizer files -> checkpoint directory."""
    from vla_bench.models.seer import SeerModel

    state = read_pth(source, trust_pickle)
    model = SeerModel.build(config, assets=tokenizer_dir)
    mapped, dropped = map_seer_state_dict(state)
    _check_seer_mask(state, model)
    load_weights(model, mapped, f"{source}")
    model.save_pretrained(output)
    renamed = sum(1 for k in state if k not in dropped and k not in mapped)
    return ImportReport(output=Path(output), renamed=renamed, dropped=dropped)




@IMPORTERS.register("seer")
def _import_seer(request: ImportRequest) -> ImportReport:
    tokenizer = request.option("tokenizer", "folder with the CLIP text tokenizer files, tokenizer.json")
    return import_seer(request.source, request.config, tokenizer, request.output, request.trust_pickle)
