"""Importers from released training checkpoints to vla_bench checkpoint directories.

- Seer: a `.pth` whose `model_state_dict` uses the Seer training code's names: a timm MAE ViT
  (`vision_encoder.blocks.<i>.attn.qkv`), OpenAI CLIP (`clip_model.transformer.resblocks.<i>`), and
  Seer's own modules. The ViT and CLIP weights are renamed (and fused q/k/v split) onto the
  transformers modules; pretraining-only weights are dropped and listed; everything else must match.
- VITA-VLA: a `.pth` holding only the trainable parameters (`module.` prefixes from DDP) applied on
  top of a base VLM directory (transformers format). Every non-VLM weight of the student (action
  token, state encoder, mapper, decoder) must be in the `.pth`.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, check_state_dict, load_weights

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


@dataclasses.dataclass
class ImportReport:
    """What an importer did: keys renamed, dropped (by reason) and where the result went."""

    output: Path
    renamed: int
    dropped: list[str]

    def summary(self) -> str:
        dropped = f"; dropped {len(self.dropped)} pretraining-only weights ({_prefixes(self.dropped)})" if self.dropped else ""
        return f"wrote {self.output}: {self.renamed} weights renamed{dropped}"


def _prefixes(keys: list[str]) -> str:
    found: list[str] = []
    for key in keys:
        prefix = key.split(".")[0] + ("." + key.split(".")[1] if key.startswith(("vision_encoder", "clip_model")) else "")
        if prefix not in found:
            found.append(prefix)
    return ", ".join(found[:6]) + (" ..." if len(found) > 6 else "")


def read_pth(path: Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a training `.pth`: its `model_state_dict` (or the dict itself), `module.` stripped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: holds objects other than tensors ({first}); pass --trust-pickle if you trust its source") from None
    except (RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a torch checkpoint ({str(exc).splitlines()[0]})") from None
    if isinstance(data, Mapping) and "model_state_dict" in data:
        data = data["model_state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict (or a dict with 'model_state_dict') of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


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


# VITA-VLA trainable-parameter names for the VLM's language model, as a Qwen2 causal LM names them.
VLM_ALIASES = (
    ("model.language_model.", "vlm.model.language_model."),
    ("model.visual.", "vlm.model.visual."),
    ("model.layers.", "vlm.model.language_model.layers."),
    ("model.embed_tokens.", "vlm.model.language_model.embed_tokens."),
    ("model.norm.", "vlm.model.language_model.norm."),
    ("lm_head.", "vlm.lm_head."),
)


def map_vita_state_dict(source: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    mapped = {}
    for key, value in source.items():
        for old, new in VLM_ALIASES:
            if key.startswith(old):
                key = new + key.removeprefix(old)
                break
        mapped[key] = value
    return mapped


def import_vita(source: Path, config: CheckpointConfig, base_vlm: Path, output: Path, trust_pickle: bool = False) -> ImportReport:
    """VITA-VLA trainable-params `.pth` on top of a base VLM directory -> checkpoint directory.

    `config.model` needs history, action_steps, teacher_width and vlm_class; the VLM's own config,
    weights, tokenizer and image settings come from `base_vlm`.
    """
    from vla_bench.models.tokenizer import load_tokenizer
    from vla_bench.models.vita import VitaStudent, load_processor, make_processor, vlm_classes

    base_vlm = Path(base_vlm)
    if not (base_vlm / "config.json").is_file():
        raise CheckpointError(f"--base-vlm {base_vlm}: not a transformers model directory (missing config.json)")
    model_class, _ = vlm_classes(config.model.get("vlm_class", ""))
    vlm, info = model_class.from_pretrained(str(base_vlm), output_loading_info=True, dtype=torch.float32)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise CheckpointError(f"--base-vlm {base_vlm}: weights do not match its config: {problems}")
    vlm_config = vlm.config.to_dict()
    for key in ("architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype"):
        vlm_config.pop(key, None)
    config = dataclasses.replace(config, model={**config.model, "vlm_config": vlm_config})
    tokenizer = load_tokenizer(base_vlm)
    base_processor = load_processor(base_vlm)
    processor = make_processor(config.protocol.image_size, base_processor.image_mean, base_processor.image_std,
                               base_processor.patch_size, base_processor.merge_size, base_processor.temporal_patch_size)
    student = VitaStudent(config, vlm, tokenizer, processor)

    trainable = map_vita_state_dict(read_pth(source, trust_pickle))
    expected = student.state_dict()
    heads = {k: v for k, v in expected.items() if not k.startswith("vlm.")}
    check_state_dict(heads, {k: v for k, v in trainable.items() if not k.startswith("vlm.")}, f"{source}")
    vlm_part = {k: v for k, v in trainable.items() if k.startswith("vlm.")}
    check_state_dict({k: expected[k] for k in vlm_part if k in expected}, vlm_part, f"{source} (VLM weights)")
    load_weights(student, {**expected, **trainable}, f"{source}")
    student.save_pretrained(output)
    return ImportReport(output=Path(output), renamed=len(trainable), dropped=[])
