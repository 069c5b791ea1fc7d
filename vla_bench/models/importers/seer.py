"""Seer importer: the `.pth` Seer's train.py writes, plus the frozen parts from their own files.

Seer (OpenRobotLab/Seer, read at ee228e1) freezes the MAE ViT and the CLIP text encoder, and its
train.py saves only the trainable weights (`get_checkpoint`: `model_state_dict` without parameters
that do not require grad, `module.` prefixed by DDP). Its eval builds the frozen parts from their own
files, the MAE ViT-B/16 from `mae_pretrain_vit_base.pth` (`--vit_checkpoint_path`) and OpenAI CLIP
ViT-B/32 (`clip.load("ViT-B/32")`, or `checkpoints/clip/ViT-B-32.pt`), then loads the checkpoint with
`strict=False`. This importer does the same from local paths (`--vit-checkpoint-path`,
`--clip-checkpoint-path`), but strictly: the fixed tables (the image decoder's sin-cos position
embedding, the ViT's when its file lacks it, the attention mask) are computed; every other weight
must come from one of the files, and anything missing or unknown is named.

Names: a timm MAE ViT (`blocks.<i>.attn.qkv`), OpenAI CLIP (`transformer.resblocks.<i>`), and Seer's
own modules. The ViT and CLIP weights are renamed (fused q/k/v split) onto the transformers modules;
pretraining-only weights are dropped and listed. A `.pth` that already holds the frozen parts (a
full state dict) needs no extra file. fp16/bf16 tensors are converted to fp32 and the conversion is
recorded in config.json (`source.converted`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

import dataclasses


from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, load_weights
from vla_bench.models.importers import IMPORTERS, ImportReport, ImportRequest, looks_like, read_pth, to_float32

UPSTREAM = "OpenRobotLab/Seer ee228e1"
MAE_FILE = "mae_pretrain_vit_base.pth"
CLIP_FILE = "ViT-B-32.pt"
MAE_OPTION = ("vit_checkpoint_path", f"the frozen MAE ViT-B/16 encoder, what upstream calls {MAE_FILE} (--vit_checkpoint_path)")
CLIP_OPTION = ("clip_checkpoint_path", f"the frozen OpenAI CLIP ViT-B/32, what upstream calls {CLIP_FILE} (clip.load('ViT-B/32'))")

# The top-level modules of Seer's SeerAgent at ee228e1; a key under any other name is from another layout.
SEER_MODULES = frozenset((
    "text_projector", "arm_state_encoder", "gripper_state_encoder", "state_projector", "action_pose_encoder",
    "action_gripper_position_encoder", "action_projector", "vision_encoder", "perceiver_resampler",
    "image_primary_projector", "cls_token_primary_projector", "image_wrist_projector", "cls_token_wrist_projector",
    "action_pred_token", "obs_tokens", "embedding_layer_norm", "attention_mask", "transformer_backbone_position_embedding",
    "transformer_backbone", "action_decoder", "arm_action_decoder", "gripper_action_decoder", "recon_state_decoder",
    "recon_arm_state_decoder", "recon_gripper_state_decoder", "mask_token", "image_decoder_obs_pred_projector",
    "image_decoder_position_embedding", "image_decoder", "image_decoder_norm", "image_decoder_pred", "clip_model",
))
# Fixed tables: computed by the model, checked when a file has them.
COMPUTED = ("image_decoder_position_embedding",)
# Integers the OpenAI CLIP TorchScript release stores next to the weights.
CLIP_SCALARS = ("input_resolution", "context_length", "vocab_size")

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


def _load_any(path: Path, what: str) -> Mapping[str, Any]:
    """A frozen-part file: a TorchScript archive (the OpenAI CLIP release) or a torch.save'd dict."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; expected the file {what}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file ({what})")
    try:
        return torch.jit.load(str(path), map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        pass
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (pickle errors of many kinds: one line naming the file)
        raise CheckpointError(f"{path}: not a torch checkpoint ({what}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors ({what})")
    return data


def _kind_of(keys: Any) -> str:
    """What a state dict's keys look like: 'mae', 'clip', 'seer', 'vita-vla' or 'unknown'."""
    keys = list(keys)
    if looks_like(keys, "vita-vla"):
        return "vita-vla"
    if any(k.startswith(("transformer_backbone.", "action_pred_token", "perceiver_resampler.")) for k in keys):
        return "seer"
    if "token_embedding.weight" in keys or any(k.startswith("transformer.resblocks.") for k in keys):
        return "clip"
    if "patch_embed.proj.weight" in keys and any(k.startswith("blocks.") for k in keys):
        return "mae"
    return "unknown"


NAMES = {"mae": f"an MAE ViT ({MAE_FILE})", "clip": f"OpenAI CLIP ({CLIP_FILE})", "seer": "a Seer training checkpoint",
         "vita-vla": "a VITA-VLA checkpoint", "unknown": "something else"}


def _unwrap(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a saved dict ({"model": ...}, {"state_dict": ...}, {"model_state_dict": ...})."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(data.get(key), Mapping):
            return data[key]
    return data


def read_mae(path: Path) -> dict[str, torch.Tensor]:
    """The MAE ViT encoder weights of `path` (FAIR's release: {"model": state dict}), as `vision_encoder.*`."""
    state = _unwrap(_load_any(path, MAE_OPTION[1]))
    kind = _kind_of(state)
    if kind != "mae":
        raise CheckpointError(f"{path} is {NAMES[kind]}, not the MAE ViT encoder Seer freezes (upstream {MAE_FILE}, --vit_checkpoint_path)")
    return {f"vision_encoder.{k.removeprefix('module.')}": v for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_clip(path: Path) -> dict[str, torch.Tensor]:
    """OpenAI CLIP weights of `path` (the TorchScript release or a state dict), as `clip_model.*`."""
    state = _unwrap(_load_any(path, CLIP_OPTION[1]))
    kind = _kind_of(state)
    if kind != "clip":
        raise CheckpointError(f"{path} is {NAMES[kind]}, not OpenAI CLIP ViT-B/32 (upstream {CLIP_FILE}, clip.load('ViT-B/32'))")
    return {f"clip_model.{k}": v for k, v in state.items() if k not in CLIP_SCALARS and isinstance(v, torch.Tensor)}


def _unknown_layout(keys: Any) -> list[str]:
    return sorted(k for k in keys if k.split(".", 1)[0] not in SEER_MODULES)


def _check_computed(mapped: dict[str, torch.Tensor], model: Any, where: str) -> None:
    """Fill the fixed tables from the model; a stored one must equal it."""
    ours = model.state_dict()
    for key in COMPUTED:
        if key in mapped and tuple(mapped[key].shape) == tuple(ours[key].shape):
            if not torch.allclose(mapped[key].float(), ours[key], atol=1e-5):
                raise CheckpointError(f"{where}: {key} differs from the sin-cos table Seer computes (max difference "
                                      f"{(mapped[key].float() - ours[key]).abs().max():.2g})")
        if key not in mapped:
            mapped[key] = ours[key]
    pos = "vision_encoder.embeddings.position_embeddings"
    if pos not in mapped and any(k.startswith("vision_encoder.") for k in mapped):
        mapped[pos] = model.vision_encoder_sincos()  # MAE's fixed table, when the file leaves it out


def import_seer(source: Path, config: CheckpointConfig, tokenizer_dir: Path, output: Path, trust_pickle: bool = False,
                vit_checkpoint: Path | None = None, clip_checkpoint: Path | None = None) -> ImportReport:
    """Seer training `.pth` (+ the frozen MAE ViT and CLIP files) + config + tokenizer -> checkpoint directory."""
    from vla_bench.models.seer import SeerModel

    state = read_pth(source, trust_pickle)
    kind = _kind_of(state)
    if kind == "vita-vla":
        raise CheckpointError(f"{source} is a VITA-VLA checkpoint (keys like {_first(state, ('model.', 'seer.'))}); use --kind vita-vla")
    if kind in ("mae", "clip"):
        raise CheckpointError(f"{source} is {NAMES[kind]}, a frozen part: pass it as --{(MAE_OPTION if kind == 'mae' else CLIP_OPTION)[0].replace('_', '-')} "
                              "and the training .pth as --source")
    unknown = _unknown_layout(state)
    if unknown:
        more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise CheckpointError(f"{source}: {len(unknown)} keys unknown to the Seer layout this importer reads ({UPSTREAM}; "
                              f"a newer upstream version?): {', '.join(unknown[:5])}{more}")
    files: dict[str, Any] = {"checkpoint": Path(source).name}
    converted: dict[str, dict[str, int]] = {}
    for prefix, option, reader in (("vision_encoder.", MAE_OPTION, read_mae), ("clip_model.", CLIP_OPTION, read_clip)):
        given = vit_checkpoint if option is MAE_OPTION else clip_checkpoint
        has = any(k.startswith(prefix) for k in state)
        if has and given is not None:
            raise CheckpointError(f"{source} already holds {prefix.rstrip('.')} weights; drop --{option[0].replace('_', '-')}")
        if not has:
            if given is None:
                raise CheckpointError(f"{source} holds only the trainable weights (as Seer's train.py saves them); "
                                      f"pass --{option[0].replace('_', '-')} FILE: {option[1]}")
            part, converted[option[0]] = to_float32(reader(Path(given)))
            state.update(part)
            files[option[0]] = Path(given).name
    state, converted["checkpoint"] = to_float32(state)
    model = SeerModel.build(config, assets=tokenizer_dir)
    mapped, dropped = map_seer_state_dict(state)
    _check_seer_mask(state, model)
    _check_computed(mapped, model, str(source))
    load_weights(model, mapped, f"{source}")
    record = {"kind": "seer", "upstream": UPSTREAM, "files": files, "converted_to_float32": converted}
    model.config = dataclasses.replace(model.config, model={**model.config.model, "imported": record})
    model.save_pretrained(output)
    renamed = sum(1 for k in state if k not in dropped and k not in mapped)
    notes = [f"converted {', '.join(f'{n} {d}' for d, n in counts.items())} tensors of {files[where]} to float32"
             for where, counts in converted.items() if counts]
    return ImportReport(output=Path(output), renamed=renamed, dropped=dropped, notes=notes)


def _first(state: Mapping[str, Any], prefixes: tuple[str, ...]) -> str:
    return next((k for k in state if k.startswith(prefixes)), next(iter(state), ""))


@IMPORTERS.register("seer")
def _import_seer(request: ImportRequest) -> ImportReport:
    tokenizer = request.option("tokenizer", "folder with the CLIP text tokenizer files, tokenizer.json")
    return import_seer(request.source, request.config, tokenizer, request.output, request.trust_pickle,
                       vit_checkpoint=request.options.get(MAE_OPTION[0]), clip_checkpoint=request.options.get(CLIP_OPTION[0]))
