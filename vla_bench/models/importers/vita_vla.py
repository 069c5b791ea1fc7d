"""VITA-VLA importer (`--kind vita-vla`): the training `.pth` of trainable weights on top of a base VLM.

The default student (`model.vlm_class` VITA-1.5, as VITA-VLA trains it) is converted from upstream's
parameter names as below; a Qwen2.5-VL / Qwen2-VL student (the non-default option) takes a
transformers VLM folder as its base and Qwen2 names in the `.pth` (`import_qwen_vl`).

Two sources, as upstream writes them:

- the base VLM folder (VITA-1.5, `VITAQwen2ForCausalLM.save_pretrained`): `config.json` with
  model_type `vita-Qwen2`, safetensors (or `pytorch_model*.bin`) with VITA's names, tokenizer files;
- the VITA-VLA training `.pth` (`{step}.pth`: `{"epoch": .., "model_state_dict": ..}` holding only
  the parameters with requires_grad, each under DeepSpeed's `module.` prefix).

Name mapping (VITA -> vla_bench):

| upstream | ours |
|---|---|
| `model.vision_tower.vision_tower.embeddings.class_embedding` | `vlm.vision_tower.embeddings.cls_token` |
| `...embeddings.patch_embedding.{weight,bias}` | `vlm.vision_tower.embeddings.patch_embeddings.projection.*` |
| `...embeddings.position_embedding` | `vlm.vision_tower.embeddings.position_embeddings` |
| `...encoder.layers.<i>.attn.qkv.*` (fused) | `vlm.vision_tower.encoder.layer.<i>.attention.{q,k,v}_proj.*` |
| `...encoder.layers.<i>.attn.proj.*` | `...attention.projection_layer.*` |
| `...encoder.layers.<i>.{ls1,ls2}` | `...{lambda_1,lambda_2}` |
| `...encoder.layers.<i>.{norm1,norm2}.*` | `...{layernorm_before,layernorm_after}.*` |
| `...encoder.layers.<i>.mlp.{fc1,fc2}.*` | same under `vlm.vision_tower.encoder.layer.<i>` |
| `model.mm_projector.<j>.*` | `vlm.mm_projector.<j>.*` |
| `model.{embed_tokens,layers,norm}.*` | `vlm.language_model.{embed_tokens,layers,norm}.*` |
| `lm_head.*`, `model.audio_encoder.*` | dropped (the student reads hidden states, never logits or audio) |
| `.pth` `model.vlm.<VITA name>` | as the base names above |
| `.pth` `model.action_pred_token` | `action_token` |
| `.pth` `model.{action_mapper,arm_state_encoder,gripper_state_encoder,state_projector}.*` | same names |
| `.pth` `seer.{action_decoder,arm_action_decoder,gripper_action_decoder}.*` | same names |
| `.pth` other `seer.*` | dropped (teacher parts the student does not run) |

Anything else is an unknown name: the import stops and lists the first ones.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, check_state_dict, load_weights
from vla_bench.models.importers import IMPORTERS, ImportReport, ImportRequest, read_pth, to_float32

VISION = "model.vision_tower.vision_tower."
BASE_DROPPED = ("lm_head.", "model.audio_encoder.")
STUDENT_HEADS = ("action_mapper.", "arm_state_encoder.", "gripper_state_encoder.", "state_projector.")
TEACHER_HEADS = ("action_decoder.", "arm_action_decoder.", "gripper_action_decoder.")
VITA_MODEL_TYPES = ("vita-Qwen2",)
SHOWN = 5
LAYER_NAMES = {"attn.proj": "attention.projection_layer", "norm1": "layernorm_before", "norm2": "layernorm_after",
               "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "attn.q_norm": "attention.q_norm", "attn.k_norm": "attention.k_norm"}
EMBEDDINGS = {"embeddings.class_embedding": "embeddings.cls_token",
              "embeddings.position_embedding": "embeddings.position_embeddings",
              "embeddings.patch_embedding.weight": "embeddings.patch_embeddings.projection.weight",
              "embeddings.patch_embedding.bias": "embeddings.patch_embeddings.projection.bias"}


@dataclasses.dataclass
class Converted:
    """A converted state dict, the upstream names dropped on purpose, and the names not understood."""

    mapped: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    dropped: list[str] = dataclasses.field(default_factory=list)
    unknown: list[str] = dataclasses.field(default_factory=list)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else "")


def map_internvit(rest: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """One InternViT weight (name below the vision tower) -> transformers InternVLVision names."""
    if rest in EMBEDDINGS:
        return {EMBEDDINGS[rest]: value}
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", rest)
    if not m:
        return None
    out, name = f"encoder.layer.{m[1]}", m[2]
    if name in ("ls1", "ls2"):
        return {f"{out}.lambda_{name[-1]}": value}
    module, _, kind = name.rpartition(".")
    if module == "attn.qkv":
        return {f"{out}.attention.{p}.{kind}": part.clone() for p, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0))}
    if module in LAYER_NAMES:
        return {f"{out}.{LAYER_NAMES[module]}.{kind}": value}
    return None


def map_vita15_weight(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """One VITA-1.5 weight (VITAQwen2ForCausalLM names) -> student names; None when not understood."""
    if key.startswith(VISION):
        mapped = map_internvit(key.removeprefix(VISION), value)
        return None if mapped is None else {f"vlm.vision_tower.{k}": v for k, v in mapped.items()}
    if key.startswith("model.mm_projector."):
        return {"vlm." + key.removeprefix("model."): value}
    if key.startswith(("model.embed_tokens.", "model.layers.", "model.norm.")):
        return {"vlm.language_model." + key.removeprefix("model."): value}
    return None


def convert_vita15(state: Mapping[str, torch.Tensor]) -> Converted:
    """A VITA-1.5 base state dict -> the student's `vlm.*` weights."""
    result = Converted()
    for key, value in state.items():
        if key.startswith(BASE_DROPPED):
            result.dropped.append(key)
        elif (mapped := map_vita15_weight(key, value)) is not None:
            result.mapped.update(mapped)
        else:
            result.unknown.append(key)
    return result


def convert_vita_vla(state: Mapping[str, torch.Tensor]) -> Converted:
    """A VITA-VLA trainable-weights state dict (`module.` already stripped) -> student weights."""
    result = Converted()
    for key, value in state.items():
        if key.startswith("model.vlm."):
            base = key.removeprefix("model.vlm.")
            if base.startswith(BASE_DROPPED):
                result.dropped.append(key)
            elif (mapped := map_vita15_weight(base, value)) is not None:
                result.mapped.update(mapped)
            else:
                result.unknown.append(key)
        elif key == "model.action_pred_token":
            result.mapped["action_token"] = value
        elif key.startswith("model.") and key.removeprefix("model.").startswith(STUDENT_HEADS):
            result.mapped[key.removeprefix("model.")] = value
        elif key.startswith("seer.") and key.removeprefix("seer.").startswith(TEACHER_HEADS):
            result.mapped[key.removeprefix("seer.")] = value
        elif key.startswith("seer."):
            result.dropped.append(key)
        else:
            result.unknown.append(key)
    return result


# -- reading the files ---------------------------------------------------------------------------


SEER_MARKERS = ("transformer_backbone.", "perceiver_resampler.", "vision_encoder.", "clip_model.")


def read_trainable(path: Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The VITA-VLA `.pth`'s state dict (`module.` stripped) in float32, and how many tensors of
    each other dtype were converted."""
    state = read_pth(path, trust_pickle)
    if not any(k.startswith(("model.", "seer.")) for k in state) and any(k.startswith(SEER_MARKERS) for k in state):
        found = sorted({k.split(".")[0] for k in state if k.startswith(SEER_MARKERS)})
        raise CheckpointError(f"{path} is a Seer checkpoint ({', '.join(found)}), not a VITA-VLA one; import it with --kind seer")
    return to_float32(state)


def _base_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(str(shard)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        state = {}
        for shard in bins:
            state.update(torch.load(shard, map_location="cpu", weights_only=True))
        return state
    raise CheckpointError(f"--base-vlm {folder}: no *.safetensors or pytorch_model*.bin weights")


TEXT_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")


def read_base_vlm(folder: Path, config: CheckpointConfig) -> tuple[Converted, Any, dict[str, int], dict[str, Any]]:
    """The VITA-1.5 folder's converted weights, tokenizer, converted dtypes and its config.json."""
    from vla_bench.models.tokenizer import load_tokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"--base-vlm {folder}: no such directory (the VITA-1.5 model folder)")
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"--base-vlm {folder}: not a model folder (missing config.json; expected the VITA-1.5 folder)")
    base = json.loads((folder / "config.json").read_text())
    model_type = base.get("model_type")
    if model_type not in VITA_MODEL_TYPES:
        raise CheckpointError(f"--base-vlm {folder} is a {model_type!r} model (config.json model_type); expected VITA-1.5 ({', '.join(VITA_MODEL_TYPES)})")
    text = config.model["vlm_config"]["text_config"]
    differ = [f"{k} {base.get(k)} vs --config {text.get(k)}" for k in TEXT_KEYS if k in base and text.get(k) is not None and base[k] != text[k]]
    if differ:
        raise CheckpointError(f"--base-vlm {folder} does not have the sizes in --config: {'; '.join(differ)}")
    converted: dict[str, int] = {}
    state, converted = to_float32(_base_weights(folder))
    if not any(k.startswith(VISION) for k in state):
        raise CheckpointError(f"--base-vlm {folder}: no vision tower weights ({VISION}*); VITA-1.5's own save includes them")
    tokenizer = load_tokenizer(folder)
    return convert_vita15(state), tokenizer, converted, base


def _resize_vocab(weights: dict[str, torch.Tensor], rows: int) -> None:
    """Keep the first `rows` embedding rows, as upstream's `resize_token_embeddings(len(tokenizer))`."""
    key = "vlm.language_model.embed_tokens.weight"
    if key in weights and weights[key].shape[0] > rows:
        weights[key] = weights[key][:rows].clone()


def import_vita15(source: Path, config: CheckpointConfig, base_vlm: Path, output: Path, trust_pickle: bool = False) -> ImportReport:
    """VITA-VLA `.pth` + VITA-1.5 base folder + a student config -> checkpoint directory."""
    from vla_bench.models.vita import VitaStudent
    from vla_bench.models.vita15 import make_processor

    if not config.model.get("prompt", {}).get("system"):
        raise CheckpointError("--config model.prompt.system is missing: set it to the system prompt the student was trained with "
                              "(VITA-VLA: utils/conversation.py, conv_qwen2p5_instruct.system[0]; see docs/models.md)")
    trainable, pth_dtypes = read_trainable(source, trust_pickle)
    from_pth = convert_vita_vla(trainable)
    if from_pth.unknown:
        raise CheckpointError(f"{source}: {len(from_pth.unknown)} names this importer does not know (a newer upstream layout?): {_shown(from_pth.unknown)}")
    base, tokenizer, base_dtypes, _ = read_base_vlm(base_vlm, config)
    if base.unknown:
        raise CheckpointError(f"--base-vlm {base_vlm}: {len(base.unknown)} names this importer does not know (a newer upstream layout?): {_shown(base.unknown)}")

    weights = {**base.mapped, **from_pth.mapped}
    _resize_vocab(weights, len(tokenizer))
    vocab = int(weights["vlm.language_model.embed_tokens.weight"].shape[0]) if "vlm.language_model.embed_tokens.weight" in weights else None
    vlm_config = json.loads(json.dumps(config.model["vlm_config"]))
    if vocab is not None:
        vlm_config["text_config"]["vocab_size"] = vocab
    record = {"kind": "vita-vla", "source": Path(source).name, "base_vlm": Path(base_vlm).name,
              "converted_to_float32": {"pth": pth_dtypes, "base_vlm": base_dtypes},
              "dropped": {"pth": len(from_pth.dropped), "base_vlm": len(base.dropped)}}
    config = dataclasses.replace(config, model={**config.model, "vlm_config": vlm_config, "imported": record})
    processor = make_processor(config.protocol.image_size, config.normalisation["image_mean"], config.normalisation["image_std"])

    with torch.device("meta"):
        student = VitaStudent.build(config, tokenizer=tokenizer, processor=processor)
    expected = student.state_dict()
    heads = {k: v for k, v in expected.items() if not k.startswith("vlm.")}
    check_state_dict(heads, {k: v for k, v in from_pth.mapped.items() if not k.startswith("vlm.")}, f"{source}")
    check_state_dict(expected, weights, f"{source} on --base-vlm {base_vlm}")
    student.load_state_dict(weights, strict=True, assign=True)
    student.save_pretrained(output)
    return ImportReport(output=Path(output), renamed=len(weights), dropped=from_pth.dropped + base.dropped, notes=_notes(record),
                        dropped_what="weights the student never reads (lm_head, audio encoder, other teacher parts)")


def _notes(record: Mapping[str, Any]) -> list[str]:
    notes = []
    for where, counts in record["converted_to_float32"].items():
        if counts:
            notes.append(f"converted {', '.join(f'{n} {d}' for d, n in counts.items())} tensors of the {where.replace('_', ' ')} to float32")
    return notes


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


def import_qwen_vl(source: Path, config: CheckpointConfig, base_vlm: Path, output: Path, trust_pickle: bool = False) -> ImportReport:
    """A Qwen-VL student's trainable-params `.pth` on top of a transformers VLM folder -> checkpoint directory.

    `config.model` needs history, action_steps, teacher_width and vlm_class; the VLM's own config,
    weights, tokenizer and image settings come from `base_vlm`.
    """
    from vla_bench.models.tokenizer import load_tokenizer
    from vla_bench.models.vita import VitaStudent, load_processor, make_qwen_processor, vlm_classes

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
    processor = make_qwen_processor(config.protocol.image_size, base_processor.image_mean, base_processor.image_std,
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


def import_vita(source: Path, config: CheckpointConfig, base_vlm: Path, output: Path, trust_pickle: bool = False) -> ImportReport:
    """Dispatch on the student's VLM: VITA-1.5 (default) or a Qwen-VL transformers class."""
    from vla_bench.models.vita import DEFAULT_VLM

    if config.model.get("vlm_class", DEFAULT_VLM) == "VITA-1.5":
        return import_vita15(source, config, base_vlm, output, trust_pickle)
    return import_qwen_vl(source, config, base_vlm, output, trust_pickle)


@IMPORTERS.register("vita-vla")
def _import_vita(request: ImportRequest) -> ImportReport:
    base_vlm = request.option("base_vlm", "the base VLM folder: VITA-1.5's for the default student")
    return import_vita(request.source, request.config, base_vlm, request.output, request.trust_pickle)
