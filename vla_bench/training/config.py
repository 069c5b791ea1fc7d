"""Typed configs of `vla-bench train` (the teacher) and `vla-bench distill` (the student's two stages)."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from vla_bench.errors import VlaBenchError

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """Options `train` and `distill` share: optimisation, data filtering, checkpointing and logging."""

    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup: float = 0.1
    """Fraction of the steps with linear warm-up; cosine decay after."""
    mixed_precision: str = "no"
    """no | bf16 | fp16 (accelerate)."""
    cpu: bool = False
    """Force the CPU even when a GPU is present."""
    noop_filter: bool = False
    """Drop OpenVLA no-op steps from the demonstrations."""
    val_fraction: float = 0.1
    """Fraction of demo groups (task + init state) held out for validation."""
    augment_shift: int = 0
    """Random-shift image augmentation: move each training window's images by up to this many pixels
    (of the stored images) in x and y, edges repeated; 0: off. Validation images are never shifted."""
    normalise_state: bool = True
    """Train on standardised states; the statistics are folded into the state encoder at export."""
    save_every: int = 200
    """Optimizer steps between resumable checkpoints (and exports of checkpoint/)."""
    log_every: int = 10
    """Optimizer steps between metrics.jsonl lines."""
    seed: int = 0
    resume: bool = False
    """Continue from the latest resumable checkpoint in --output (same config required)."""
    progress: bool = True
    """Show a progress bar."""
    interrupt_after: Optional[int] = None
    """Testing aid: stop hard (exit 137, no clean-up) after this many optimizer steps, like kill -9."""


@dataclasses.dataclass(frozen=True)
class TrainConfig(TrainingOptions):
    """Train the Seer teacher on demonstrations (LIBERO/robomimic HDF5)."""

    data: tuple[str, ...]
    """HDF5 demonstration files (`vla-bench collect` output or official LIBERO files)."""
    output: str
    """Run folder: checkpoint/ (harness format), state/ (resumable), metrics.jsonl, loss.png, run.json."""
    init: str = "small-teacher.json"
    """Model to start from: a recipe .json (a path, or a name in vla_bench/training/recipes/; random
    weights, built here) or a checkpoint directory."""
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 8
    """Windows per micro-batch (per process)."""
    frozen: tuple[str, ...] = ()
    """Parameter-name prefixes kept frozen (e.g. text_encoder vision_encoder, as the released Seer)."""
    init_states: Optional[str] = None
    """Train only on demos that started from these init states, e.g. 10-29 (evaluate on others)."""
    arm_loss_scaling: bool = True
    """Scale the arm loss per dimension by 1/std (normalised to mean 1)."""

    def __post_init__(self) -> None:
        check_common(self)


@dataclasses.dataclass(frozen=True)
class DistillConfig(TrainingOptions):
    """Distil a VITA-VLA student from a trained Seer teacher: stage 1 (align) or stage 2 (finetune)."""

    stage: Literal["align", "finetune"]
    """align: match the teacher's action features (VLM + teacher frozen); finetune: action losses."""
    data: tuple[str, ...]
    """HDF5 demonstration files."""
    output: str
    """Run folder (as for `train`)."""
    init: str = "small-student.json"
    """Student to start from: a recipe .json, a base checkpoint, or (finetune) the stage-1 checkpoint/."""
    teacher: Optional[str] = None
    """Trained teacher checkpoint directory (align: required; finetune from a recipe: its decoder is copied)."""
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 4
    """Windows per micro-batch (per process)."""
    trainable: Optional[tuple[str, ...]] = None
    """Parameter-name prefixes to train (default: the stage's parts, DESIGN §6)."""
    frozen: tuple[str, ...] = ()
    """Prefixes kept frozen among the trainable ones."""
    init_states: Optional[str] = None
    """Train only on demos that started from these init states, e.g. 10-29."""
    arm_loss_scaling: bool = True
    """Scale the arm loss per dimension by 1/std (normalised to mean 1); finetune only."""

    def __post_init__(self) -> None:
        check_common(self)
        if self.stage == "align" and self.teacher is None:
            raise VlaBenchError("distill --stage align needs --teacher DIR (the trained teacher checkpoint)")


def check_common(config: TrainConfig | DistillConfig) -> None:
    """Validate the fields both commands share (one-line errors)."""
    if not config.data:
        raise VlaBenchError("--data needs at least one HDF5 file")
    if config.mixed_precision not in MIXED_PRECISION:
        raise VlaBenchError(f"--mixed-precision {config.mixed_precision!r}: choose one of {', '.join(MIXED_PRECISION)}")
    for name in ("steps", "batch_size", "grad_accum", "save_every", "log_every"):
        if getattr(config, name) < 1:
            raise VlaBenchError(f"--{name.replace('_', '-')} must be at least 1")
    if config.augment_shift < 0:
        raise VlaBenchError("--augment-shift must be at least 0")
    if not 0 <= config.val_fraction < 1:
        raise VlaBenchError("--val-fraction must be in [0, 1)")
    if config.init_states is not None:
        from vla_bench.episodes import parse_int_list

        parse_int_list(config.init_states, "--init-states")
    if not 0 <= config.warmup < 1:
        raise VlaBenchError("--warmup must be in [0, 1)")


# Fields that may differ between a run and its resumption.
RESUME_FREE = ("resume", "progress", "interrupt_after")


def config_difference(saved: dict, current: dict) -> str | None:
    """The first field (besides RESUME_FREE) whose value differs, described; None if none."""
    for key in sorted(set(saved) | set(current)):
        if key in RESUME_FREE:
            continue
        if saved.get(key) != current.get(key):
            return f"{key}: saved {saved.get(key)!r}, now {current.get(key)!r}"
    return None
