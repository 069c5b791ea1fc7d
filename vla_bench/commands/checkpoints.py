"""`vla-bench inspect` and `vla-bench import-checkpoint`: look into and create checkpoint directories."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import tyro

from vla_bench.commands import command


@dataclasses.dataclass(frozen=True)
class InspectCommand:
    """Print a checkpoint's architecture, parameter counts, expected protocol and sha256."""

    checkpoint: tyro.conf.Positional[str]
    """Checkpoint directory (config.json + model.safetensors + tokenizer files)."""
    verify: bool = False
    """Also build the model and load the weights strictly (slower for large models)."""


@dataclasses.dataclass(frozen=True)
class ImportCommand:
    """Convert a released training .pth (Seer, or VITA-VLA trainable params) into a checkpoint directory."""

    kind: str
    """Which training code wrote the .pth: seer or vita-vla (one importer module each, in vla_bench/models/importers/)."""
    source: str
    """The training .pth file (a dict with model_state_dict, or the state dict itself; `module.` prefixes are stripped)."""
    config: str
    """A checkpoint config JSON (format of config.json: architecture, model sizes, preprocessing, protocol)."""
    output: str
    """Checkpoint directory to write (must not exist)."""
    tokenizer: Optional[str] = None
    """seer: folder with the CLIP text tokenizer files (tokenizer.json)."""
    vit_checkpoint_path: Optional[str] = None
    """seer: the frozen MAE ViT-B/16 encoder, upstream's mae_pretrain_vit_base.pth (its --vit_checkpoint_path)."""
    clip_checkpoint_path: Optional[str] = None
    """seer: the frozen OpenAI CLIP ViT-B/32, upstream's ViT-B-32.pt (what clip.load("ViT-B/32") reads)."""
    base_vlm: Optional[str] = None
    """vita-vla: the base VLM folder (transformers format: config, weights, tokenizer, preprocessor_config.json)."""
    trust_pickle: bool = False
    """Allow a .pth that stores Python objects besides tensors (unpickling runs code: trusted files only)."""


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def parameter_counts(weights: Path) -> dict[str, int]:
    """Parameters per top-level module from the safetensors header (no tensor is read)."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            top = key.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + math.prod(f.get_slice(key).get_shape())
    return counts


@command("inspect", InspectCommand)
def cmd_inspect(config: InspectCommand) -> int:
    from vla_bench.models.checkpoint import WEIGHTS_NAME, from_pretrained, read_config
    from vla_bench.results.provenance import sha256_path

    path = Path(config.checkpoint)
    ckpt = read_config(path)
    model = ckpt.model
    print(f"checkpoint    {path}")
    vlm = f" (VLM class {model['vlm_class']})" if "vlm_class" in model else ""
    print(f"architecture  {ckpt.architecture}{vlm}; history {model.get('history')}, action steps {model.get('action_steps')}")
    counts = parameter_counts(path / WEIGHTS_NAME)
    print(f"parameters    {sum(counts.values()):,} stored")
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {count:>14,}")
    p = ckpt.protocol
    k = f" (k={p.ensemble_k})" if p.execution == "temporal_ensemble" else ""
    print(
        f"protocol      {p.name}: image {p.image_size}px, views {'+'.join(p.views)}, flip {p.flip_images}, state {p.state}, "
        f"history {p.history}, chunk {p.action_chunk}, execution {p.execution}{k}, gripper {p.gripper}"
    )
    image, state = ckpt.preprocessing.image, ckpt.preprocessing.state
    crop = ", centre crop" if image.crop == "center" else ""
    print(f"preprocess    image {image.library} {image.resize} -> {image.size}px{crop}, mean {list(image.mean)}, "
          f"std {list(image.std)}, {image.dtype}; state gripper {state.gripper}")
    files = sorted(f for f in path.iterdir() if f.is_file())
    print("files         " + ", ".join(f"{f.name} ({_size(f.stat().st_size)})" for f in files))
    print(f"sha256        {sha256_path(path)}  (recorded in run.json as policy.checkpoint.sha256)")
    if config.verify:
        loaded = from_pretrained(path)
        print(f"verified      weights load strictly ({loaded.parameter_counts()['total']:,} parameters)")
    return 0


# ImportCommand fields that are not files for a kind's importer.
_COMMON_FIELDS = ("kind", "source", "config", "output", "trust_pickle")


@command("import-checkpoint", ImportCommand)
def cmd_import(config: ImportCommand) -> int:
    import json

    from vla_bench.errors import VlaBenchError
    from vla_bench.models.checkpoint import CheckpointConfig
    from vla_bench.models.importers import IMPORTERS, ImportRequest

    importer = IMPORTERS.get(config.kind)  # unknown kind -> error naming the known ones
    output = Path(config.output)
    if output.exists():
        raise VlaBenchError(f"--output {output} already exists")
    try:
        data = json.loads(Path(config.config).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VlaBenchError(f"--config {config.config}: cannot read JSON ({exc})") from None
    data.setdefault("format", "vla_bench.checkpoint")
    data.setdefault("format_version", 1)
    data.setdefault("architecture", config.kind)
    ckpt = CheckpointConfig.from_dict(data, config.config)
    if ckpt.architecture != config.kind:
        raise VlaBenchError(f"--config {config.config} describes a {ckpt.architecture!r} model, not {config.kind!r}")
    options = {f.name: (None if getattr(config, f.name) is None else Path(getattr(config, f.name)))
               for f in dataclasses.fields(config) if f.name not in _COMMON_FIELDS}
    report = importer(ImportRequest(Path(config.source), ckpt, output, options, config.trust_pickle))
    print(report.summary())
    return 0
