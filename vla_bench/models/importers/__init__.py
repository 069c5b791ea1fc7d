"""Importers from released training checkpoints to vla_bench checkpoint directories, one module per
kind (`seer.py`, `vita_vla.py`, ...), each registering its import function in IMPORTERS under the
`--kind` name. Every module in this package is imported on the first IMPORTERS lookup.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError
from vla_bench.registry import Registry


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    """One `vla-bench import-checkpoint` call: the released file, the target config, and the kind's
    own input files by option name (e.g. {"tokenizer": Path(...)}; None when not given)."""

    source: Path
    config: CheckpointConfig
    output: Path
    options: Mapping[str, Optional[Path]] = dataclasses.field(default_factory=dict)
    trust_pickle: bool = False

    def option(self, name: str, what: str) -> Path:
        """The path given as --NAME, or a CheckpointError saying what that file is."""
        value = self.options.get(name)
        if value is None:
            raise CheckpointError(f"--kind {self.config.architecture} needs --{name.replace('_', '-')} ({what})")
        return Path(value)


@dataclasses.dataclass
class ImportReport:
    """What an importer did: keys renamed, dropped (by reason) and where the result went."""

    output: Path
    renamed: int
    dropped: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. dtype conversions
    dropped_what: str = "pretraining-only weights"

    def summary(self) -> str:
        dropped = f"; dropped {len(self.dropped)} {self.dropped_what} ({_prefixes(self.dropped)})" if self.dropped else ""
        return f"wrote {self.output}: {self.renamed} weights renamed{dropped}" + "".join(f"; {note}" for note in self.notes)


# Key prefixes that identify a training checkpoint's architecture (after `module.` is stripped).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "seer": ("transformer_backbone.", "perceiver_resampler.", "action_pred_token"),
    "vita-vla": ("model.vlm.", "model.action_mapper.", "model.action_pred_token", "seer.action_decoder.", "vlm.", "action_mapper."),
}


def looks_like(keys: Any, kind: str) -> bool:
    """Whether state-dict keys carry `kind`'s signature prefixes."""
    return any(str(k).startswith(SIGNATURES[kind]) for k in keys)


def to_float32(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """fp16/bf16 (any non-fp32 floating) tensors converted to fp32; returns (state, {dtype: count})."""
    out: dict[str, torch.Tensor] = {}
    converted: dict[str, int] = {}
    for key, value in state.items():
        if value.is_floating_point() and value.dtype != torch.float32:
            name = str(value.dtype).removeprefix("torch.")
            converted[name] = converted.get(name, 0) + 1
            value = value.float()
        out[key] = value
    return out, converted


DEEPSPEED_MODEL_FILE = "mp_rank_00_model_states.pt"


def _deepspeed_hint(folder: Path) -> str:
    """Which file of a DeepSpeed checkpoint folder holds the model weights."""
    latest = folder / "latest"
    if latest.is_file():
        candidate = folder / latest.read_text().strip() / DEEPSPEED_MODEL_FILE
        if candidate.is_file():
            return str(candidate)
    found = sorted(folder.rglob(DEEPSPEED_MODEL_FILE))
    return str(found[-1]) if found else ""


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
    if path.is_dir():
        hint = _deepspeed_hint(path)
        if hint:
            raise CheckpointError(f"{path} is a DeepSpeed checkpoint folder; pass the model file inside it: {hint}")
        raise CheckpointError(f"{path} is a folder; expected a training .pth file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: holds objects other than tensors ({first}); pass --trust-pickle if you trust its source") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a torch checkpoint ({str(exc).splitlines()[0]})") from None
    if isinstance(data, Mapping):  # training saves, DeepSpeed's model file, plain state_dict wrappers
        for wrapper in ("model_state_dict", "module", "state_dict"):
            if isinstance(data.get(wrapper), Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state dict (or a dict with 'model_state_dict') of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


Importer = Callable[[ImportRequest], ImportReport]

IMPORTERS: Registry[Importer] = Registry("checkpoint importer", modules=("vla_bench.models.importers",))
