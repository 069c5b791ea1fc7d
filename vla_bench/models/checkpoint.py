"""The checkpoint directory format shared by every model policy, and strict loading.

A checkpoint is a directory:

    config.json         {"format": "vla_bench.checkpoint", "format_version": 1, "architecture": "seer" | "vita-vla",
                         "model": {...sizes...}, "preprocessing": {...image pipeline, state encoding...},
                         "protocol": {...what it expects...}}
                        (configs written before `preprocessing` existed have "normalisation": {image_mean,
                        image_std} and get vla_bench.transforms.legacy_preprocessing)
    model.safetensors   every weight, by the module's parameter names
    tokenizer files     tokenizer.json + tokenizer_config.json (and, for the student, preprocessor_config.json)

Loading is strict: a missing, unexpected or mis-shaped weight is an error that names them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vla_bench.errors import VlaBenchError
from vla_bench.registry import Registry
from vla_bench.transforms import Preprocessing, PreprocessingError, legacy_preprocessing

if TYPE_CHECKING:
    import torch

    from vla_bench.models.base import VlaModel

FORMAT = "vla_bench.checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SHOWN = 5  # mismatches named in an error message

# Every module of vla_bench.models is imported on the first lookup; model classes register there.
ARCHITECTURES: Registry[type["VlaModel"]] = Registry("model architecture", modules=("vla_bench.models",))


class CheckpointError(VlaBenchError):
    """A checkpoint that cannot be loaded as it is."""


@dataclasses.dataclass(frozen=True)
class ExpectedProtocol:
    """The evaluation settings a checkpoint was trained for."""

    name: str
    image_size: int
    views: tuple[str, ...]
    history: int
    action_chunk: int
    execution: str
    gripper: str
    state: str
    flip_images: bool
    ensemble_k: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedProtocol:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(data)
        if unknown or missing:
            raise CheckpointError(f"config.json 'protocol': missing {sorted(missing)}, unknown {sorted(unknown)}")
        return cls(**{**data, "views": tuple(data["views"])})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "views": list(self.views)}


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Everything in config.json. `preprocessing` None means the legacy default (from `normalisation`,
    `model.gripper_state` and `protocol.image_size`); it is filled in on construction."""

    architecture: str
    model: dict[str, Any]
    normalisation: dict[str, Any]
    protocol: ExpectedProtocol
    format_version: int = FORMAT_VERSION
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        if self.preprocessing is None:
            try:
                legacy = legacy_preprocessing(self.model, self.normalisation, self.protocol.image_size)
            except PreprocessingError as exc:
                raise CheckpointError(str(exc)) from None
            object.__setattr__(self, "preprocessing", legacy)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = CONFIG_NAME) -> CheckpointConfig:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{where}: not a vla_bench checkpoint config (\"format\" is {data.get('format')!r}, expected {FORMAT!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{where}: format_version {data.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
        required = ("architecture", "model", "protocol") + (() if "preprocessing" in data else ("normalisation",))
        for key in required:
            if key not in data:
                raise CheckpointError(f"{where}: missing key {key!r}")
        ARCHITECTURES.canonical(data["architecture"])  # unknown architecture -> error naming the known ones
        try:
            preprocessing = Preprocessing.from_dict(data["preprocessing"], f"{where} 'preprocessing'") if "preprocessing" in data else None
        except PreprocessingError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        return cls(
            architecture=data["architecture"],
            model=dict(data["model"]),
            normalisation=dict(data.get("normalisation", {})),
            protocol=ExpectedProtocol.from_dict(data["protocol"]),
            preprocessing=preprocessing,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self.format_version,
            "architecture": self.architecture,
            "model": self.model,
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }
        if self.normalisation:
            data["normalisation"] = self.normalisation
        data["protocol"] = self.protocol.to_dict()
        return data

    def write(self, directory: Path) -> None:
        (directory / CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def read_config(path: Path) -> CheckpointConfig:
    """Read a checkpoint directory's config.json, saying what is missing when it is not one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file or directory")
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a file; expected a checkpoint directory with {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(import a .pth with `vla-bench import-checkpoint`)"
        )
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a checkpoint directory: missing {', '.join(missing)}")
    try:
        data = json.loads((path / CONFIG_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path / CONFIG_NAME}: invalid JSON ({exc})") from None
    config = CheckpointConfig.from_dict(data, str(path / CONFIG_NAME))
    absent = [name for name in ARCHITECTURES.get(config.architecture).asset_files if not (path / name).is_file()]
    if absent:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(absent)}")
    return config


def _shown(names: list[str]) -> str:
    more = f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def check_state_dict(
    expected: Mapping[str, "torch.Tensor"], given: Mapping[str, "torch.Tensor"], where: str, aliases: Mapping[str, str] = {}
) -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped weights (first few of each).

    `aliases` maps tied parameter names to the name they share storage with; either may be present.
    """
    missing = sorted(k for k in expected if k not in given and aliases.get(k) not in given)
    unexpected = sorted(k for k in given if k not in expected)
    shapes = sorted(
        f"{k} {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_shown(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_shown(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} mis-shaped: {_shown(shapes)}")
    if problems:
        raise CheckpointError(f"{where}: weights do not match the config; " + "; ".join(problems))


def load_weights(module: "torch.nn.Module", state_dict: Mapping[str, "torch.Tensor"], where: str) -> None:
    """Strictly load `state_dict` into `module` (tied parameters may appear under either name)."""
    expected = module.state_dict()
    aliases = tied_aliases(module)
    check_state_dict(expected, state_dict, where, aliases)
    full = dict(state_dict)
    for alias, canonical in aliases.items():
        if alias not in full:
            full[alias] = full[canonical]
    module.load_state_dict(full, strict=True)


def tied_aliases(module: "torch.nn.Module") -> dict[str, str]:
    """Names of state-dict entries that share storage with an earlier entry: {later: earlier}."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        key = (tensor.data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def save_weights(module: "torch.nn.Module", path: Path) -> None:
    """Write the module's weights to safetensors, each tied tensor once."""
    from safetensors.torch import save_file

    aliases = tied_aliases(module)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items() if k not in aliases}
    save_file(tensors, str(path), metadata={"format": "pt"})


def read_weights(path: Path) -> dict[str, "torch.Tensor"]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors weights ({exc})") from None


def from_pretrained(path: Path, device: str = "cpu") -> "VlaModel":
    """Build the model a checkpoint directory describes and load its weights strictly."""
    config = read_config(path)
    return ARCHITECTURES.get(config.architecture).from_pretrained(Path(path), device=device, config=config)
