"""VITA-VLA importer: a `.pth` holding only the trainable parameters (`module.` prefixes from DDP)
applied on top of a base VLM directory (transformers format). Every non-VLM weight of the student
(action token, state encoder, mapper, decoder) must be in the `.pth`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import torch

from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, check_state_dict, load_weights
from vla_bench.models.importers import IMPORTERS, ImportReport, ImportRequest, read_pth


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


@IMPORTERS.register("vita-vla")
def _import_vita(request: ImportRequest) -> ImportReport:
    base_vlm = request.option("base_vlm", "the VLM folder the trainable parameters apply to")
    return import_vita(request.source, request.config, base_vlm, request.output, request.trust_pickle)
