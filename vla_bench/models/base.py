"""What every model architecture provides: build from config, save/load a checkpoint directory,
encode one observation into a cached frame, and predict action chunks from frame windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.envs.base import Observation
from vla_bench.errors import VlaBenchError
from vla_bench.models.checkpoint import (
    WEIGHTS_NAME,
    CheckpointConfig,
    load_weights,
    read_config,
    read_weights,
    save_weights,
)
from vla_bench.transforms import ObservationTransform, PreprocessingError

STATE_DIM = 8
THREADS_ENV = "VLA_BENCH_TORCH_THREADS"


def resolve_device(device: str) -> tuple[torch.device, torch.dtype]:
    """The torch device and inference dtype: bf16 on CUDA, fp32 on CPU."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise VlaBenchError(f"--device {device!r} is not a torch device (try cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VlaBenchError(f"--device {device}: CUDA was requested but torch.cuda.is_available() is False on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise VlaBenchError(f"--device {device}: only cpu and cuda are supported")
    if dev.type == "cpu":
        torch.set_num_threads(cpu_threads())
    return dev, (torch.bfloat16 if dev.type == "cuda" else torch.float32)


def cpu_threads() -> int:
    """Torch CPU threads for inference: $VLA_BENCH_TORCH_THREADS, default 1.

    The simulator processes of a run compete for the same cores; with more than one intra-op thread
    on a busy machine, OpenMP workers spin-wait on each other (measured on a loaded 2-core machine:
    a LayerNorm took 13 ms with 2 threads and 0.1 ms with 1).
    """
    import os

    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError:
        raise VlaBenchError(f"${THREADS_ENV}={value!r} is not an integer") from None
    if threads < 1:
        raise VlaBenchError(f"${THREADS_ENV}={value!r} must be at least 1")
    return threads


def check_observation(obs: Observation, views: Sequence[str], where: str) -> None:
    """Raise VlaBenchError when an observation lacks a view or the state vector a model needs."""
    for view in views:
        if view not in obs.images:
            have = ", ".join(sorted(obs.images)) or "none (rendering off?)"
            raise VlaBenchError(f"{where} needs camera view {view!r} but the observation has {have}")
    state = np.asarray(obs.state)
    if state.shape != (STATE_DIM,):
        raise VlaBenchError(f"{where} needs an {STATE_DIM}-D state vector; the observation has shape {state.shape}")


class VlaModel(nn.Module):
    """Base class of checkpointable action models; subclasses register in ARCHITECTURES."""

    architecture: ClassVar[str]
    asset_files: ClassVar[tuple[str, ...]] = ()
    # True: the observation transform resizes images, so the env hands them over as rendered;
    # False: the env resizes to protocol.image_size and the model's own processor takes them.
    transform_resizes: ClassVar[bool] = False

    def __init__(self, config: CheckpointConfig) -> None:
        super().__init__()
        self.config = config

    # -- checkpoint directory ------------------------------------------------------------------
    def save_pretrained(self, path: Path) -> None:
        """Write config.json, model.safetensors and the tokenizer/processor files."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.write(path)
        save_weights(self, path / WEIGHTS_NAME)
        self.save_assets(path)

    @classmethod
    def from_pretrained(cls, path: Path, device: str = "cpu", config: CheckpointConfig | None = None) -> VlaModel:
        """Build from config.json and load model.safetensors strictly."""
        path = Path(path)
        config = config or read_config(path)
        model = cls.build(config, assets=path)
        load_weights(model, read_weights(path / WEIGHTS_NAME), f"checkpoint {path}")
        dev, dtype = resolve_device(device)
        return model.to(device=dev, dtype=dtype).eval()

    @classmethod
    def build(cls, config: CheckpointConfig, assets: Path | None = None) -> VlaModel:
        """A randomly initialised model for `config`; tokenizer/processor read from `assets` when given."""
        raise NotImplementedError

    def save_assets(self, path: Path) -> None:
        """Write tokenizer / processor files next to the weights."""

    # -- inference -----------------------------------------------------------------------------
    @property
    def views(self) -> tuple[str, ...]:
        return self.config.protocol.views

    @property
    def history(self) -> int:
        return int(self.config.model["history"])

    @property
    def transform(self) -> ObservationTransform:
        """The checkpoint's observation transform (config.json `preprocessing`, see vla_bench.transforms)."""
        assert self.config.preprocessing is not None
        return ObservationTransform(self.config.preprocessing, self.views)

    @property
    def gripper_state(self) -> str:
        """What fills the state's 2 gripper entries: "qpos" (the 2 finger joints, as observed) or
        "command" (one-hot of the last executed gripper command: [1, 0] open, [0, 1] closed)."""
        return self.transform.preprocessing.state.gripper

    @property
    def action_steps(self) -> int:
        return int(self.config.model["action_steps"])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode_frames(self, observations: Sequence[Observation], last_commands: Sequence[float | None] | None = None) -> list[Any]:
        """One cacheable frame per observation (everything per-timestep that does not depend on history).

        The observations go through the checkpoint's transform (`last_commands`: each episode's last
        executed gripper command, read when the state encoding is "command"), then `encode_inputs`.
        """
        for obs in observations:
            check_observation(obs, self.views, f"policy {self.architecture!r}")
        try:
            inputs = self.transform.batch([o.images for o in observations], [o.state for o in observations], last_commands)
        except PreprocessingError as exc:
            raise VlaBenchError(f"policy {self.architecture!r}: {exc}") from None
        return self.encode_inputs(inputs, [o.instruction for o in observations])

    def encode_inputs(self, inputs: dict[str, torch.Tensor], instructions: Sequence[str]) -> list[Any]:
        """Transformed timesteps ({view: (N, 3, S, S), "state": (N, 8)}) -> N cacheable frames."""
        raise NotImplementedError

    def predict(self, windows: Sequence[Sequence[Any]], instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Action chunk at the last frame of each window: arm (B, C, 6) in [-1, 1], gripper probability (B, C, 1)."""
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per top-level submodule (and 'total')."""
        counts: dict[str, int] = {}
        for name, param in self.named_parameters():
            top = name.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + param.numel()
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
