"""Importers from released training checkpoints to vla_bench checkpoint directories, one module per
kind (`seer.py`, `vita_vla.py`, ...), each registering its import function in IMPORTERS under the
`--kind` name. Every module in this package is imported on the first IMPORTERS lookup.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Callable, Mapping, Optional

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


Importer = Callable[[ImportRequest], ImportReport]

IMPORTERS: Registry[Importer] = Registry("checkpoint importer", modules=("vla_bench.models.importers",))
