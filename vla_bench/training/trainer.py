"""The training loop shared by the teacher and both distillation stages, on Hugging Face accelerate
(devices, mixed precision, gradient accumulation, multi-GPU via `accelerate launch`).

Run folder:

    run.json          config, data files + sha256, split, state statistics, versions, git commit
    metrics.jsonl     one line per log interval (loss terms, lr, samples/s) and per validation
    loss.png          the training loss curve
    state/step_N/     resumable: accelerate state (weights, optimizer, scheduler, RNG) + trainer.json
    state/latest      names the newest complete state/step_N (replaced atomically after it is written)
    checkpoint/       the model in the harness format (`vla-bench eval --checkpoint`), state normalisation folded
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vla_bench.errors import VlaBenchError
from vla_bench.models.base import VlaModel
from vla_bench.training import data as D
from vla_bench.training.config import config_difference
from vla_bench.training.objectives import fold_state_dict, validation_metrics

LOG = logging.getLogger("vla_bench")
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
STATE_DIR = "state"
LATEST = "latest"
EXPORT_DIR = "checkpoint"
TRAINER_FILE = "trainer.json"
INTERRUPTED = 137


@dataclasses.dataclass
class Job:
    """What differs between the teacher and the two stages."""

    kind: str  # "teacher" | "align" | "finetune"
    config: Any  # TrainConfig | DistillConfig
    model: VlaModel  # the model being trained (exported at the end)
    objective: torch.nn.Module  # forward(batch) -> {"loss": ..., ...}
    train_demos: list[D.Demo]
    val_demos: list[D.Demo]
    norm: tuple[np.ndarray, np.ndarray] | None
    info: dict[str, Any]  # extra run.json entries


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def latest_state(output: Path) -> Path | None:
    pointer = output / STATE_DIR / LATEST
    if not pointer.is_file():
        return None
    path = output / STATE_DIR / pointer.read_text().strip()
    return path if (path / TRAINER_FILE).is_file() else None


def export(job: Job, output: Path, state: dict[str, torch.Tensor]) -> Path:
    """Write checkpoint/ in the harness format from the objective's (gathered) state dict, the state
    normalisation folded in; never half-written: built beside it, then swapped in."""
    from safetensors.torch import save_file

    from vla_bench.models.checkpoint import WEIGHTS_NAME, tied_aliases

    prefix = "model."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if job.norm is not None:
        weights = fold_state_dict(weights, *job.norm)
    aliases = tied_aliases(job.model)
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items() if k not in aliases}
    final = output / EXPORT_DIR
    tmp = output / (EXPORT_DIR + ".tmp")
    old = output / (EXPORT_DIR + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    job.model.config.write(tmp)
    save_file(weights, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
    job.model.save_assets(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def plot_losses(metrics: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("split") == "train"]
    val = [r for r in rows if r.get("split") == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train])
        axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    if val:
        axes[1].plot([r["step"] for r in val], [r["arm_l1"] for r in val], marker="o", label="arm L1")
        axes[1].plot([r["step"] for r in val], [1 - r["gripper_accuracy"] for r in val], marker="o", label="gripper error")
        axes[1].legend()
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("validation")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def validate(job: Job, dataset: D.WindowDataset, batch_size: int) -> dict[str, float] | None:
    if len(dataset) == 0:
        return None
    model = job.model
    was_training = model.training
    model.eval()
    totals = {"arm_l1": 0.0, "gripper_hits": 0.0, "count": 0.0}
    with torch.no_grad():
        for rows in D.batches(dataset, batch_size, seed=0, epoch=0, shuffle=False):
            part = validation_metrics(model, D.collate([dataset[i] for i in rows]), job.norm)
            for key in totals:
                totals[key] += part[key]
    model.train(was_training)
    count = max(totals["count"], 1.0)
    return {"arm_l1": totals["arm_l1"] / count, "gripper_accuracy": totals["gripper_hits"] / count}


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def run(job: Job, config_dict: dict[str, Any], data_paths: list[Path], output: Path, versions: Callable[[], dict]) -> Path:
    """Train `job` to config.steps (resuming when asked), validating each epoch; returns checkpoint/."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    cfg = job.config
    output.mkdir(parents=True, exist_ok=True)
    state_root = output / STATE_DIR
    resume_from = latest_state(output) if cfg.resume else None
    if cfg.resume:
        if resume_from is None:
            raise VlaBenchError(f"--resume: {output} has no complete resumable checkpoint ({STATE_DIR}/{LATEST})")
        saved = json.loads((resume_from / TRAINER_FILE).read_text())
        diff = config_difference(saved["config"], config_dict)
        if diff:
            raise VlaBenchError(f"--resume: {output} was trained with another config ({diff})")
    elif latest_state(output) is not None or (output / EXPORT_DIR).exists():
        raise VlaBenchError(f"{output} already holds a training run; pass --resume to continue it or choose another --output")

    accelerator = Accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
    set_seed(cfg.seed)
    dataset = D.WindowDataset(job.train_demos, job.model.history, job.model.action_steps)
    val_set = D.WindowDataset(job.val_demos, job.model.history, job.model.action_steps)
    if len(dataset) == 0:
        raise VlaBenchError("no training windows: the training split is empty")
    params = [p for p in job.objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup * cfg.steps), cfg.steps)
    objective, optimizer = accelerator.prepare(job.objective, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # stepped here once per optimizer step
    for frozen in getattr(job.objective, "_teacher", []):
        frozen.to(accelerator.device)

    world = accelerator.num_processes
    rank = accelerator.process_index
    step, epoch, position = 0, 0, 0
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        trainer = json.loads((resume_from / TRAINER_FILE).read_text())
        step, epoch, position = trainer["step"], trainer["epoch"], trainer["position"]
        metrics_path = output / METRICS_FILE
        if metrics_path.exists():  # drop lines logged after the checkpoint we resume from
            rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
            keep = [json.dumps(r) for r in rows if r["step"] < step or (r["step"] == step and r["split"] == "train")]
            metrics_path.write_text("".join(line + "\n" for line in keep))
        LOG.warning("resuming %s from step %d", output, step)
    elif accelerator.is_main_process:
        shutil.rmtree(state_root, ignore_errors=True)
        (output / METRICS_FILE).write_text("")
        info = {
            "kind": job.kind,
            "config": config_dict,
            "data": [{"path": str(p), "sha256": D.data_hash([p])} for p in data_paths],
            "split": {"train_demos": [f"{d.file}:{d.name}" for d in job.train_demos], "val_demos": [f"{d.file}:{d.name}" for d in job.val_demos],
                      "train_groups": sorted({d.group for d in job.train_demos}), "val_groups": sorted({d.group for d in job.val_demos})},
            "windows": {"train": len(dataset), "val": len(val_set)},
            "state_normalisation": None if job.norm is None else {"mean": job.norm[0].tolist(), "std": job.norm[1].tolist()},
            "parameters": {"total": sum(p.numel() for p in job.model.parameters()), "trainable": sum(p.numel() for p in params)},
            "accelerate": {"processes": world, "device": str(accelerator.device), "mixed_precision": cfg.mixed_precision},
            **job.info,
            **versions(),
        }
        (output / RUN_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")

    def save_state() -> None:
        accelerator.wait_for_everyone()
        name = f"step_{step:07d}"
        tmp = state_root / (name + ".tmp")
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.save_state(str(tmp))
        weights = accelerator.get_state_dict(objective)  # gathered from every process (FSDP / DeepSpeed)
        if accelerator.is_main_process:
            (tmp / TRAINER_FILE).write_text(json.dumps({"step": step, "epoch": epoch, "position": position, "config": config_dict}))
            final = state_root / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            _atomic_write(state_root / LATEST, name)
            for old in state_root.iterdir():  # keep the newest complete state only
                if old.is_dir() and old.name != name:
                    shutil.rmtree(old, ignore_errors=True)
            export(job, output, weights)
            plot_losses(output / METRICS_FILE, output / "loss.png")

    def log(row: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            with open(output / METRICS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and accelerator.is_main_process), file=sys.stderr, dynamic_ncols=True)
    objective.train()
    window_terms: dict[str, list[float]] = {}
    tick = time.perf_counter()
    samples = 0
    while step < cfg.steps:
        plan = D.batches(dataset, cfg.batch_size, cfg.seed, epoch)
        if world > 1:  # every process gets the same number of batches (DDP/FSDP step together)
            plan = plan[: max(world, len(plan) - len(plan) % world)][rank::world]
        while position < len(plan) and step < cfg.steps:
            batch = D.collate([dataset[i] for i in plan[position]])
            # seeded by the batch's place in the run, so a resumed run shifts exactly as an uninterrupted one
            batch = D.random_shift(batch, cfg.augment_shift, np.random.default_rng([cfg.seed, epoch, position, rank, 1]))
            try:
                with accelerator.accumulate(objective):
                    losses = objective(batch)
                    accelerator.backward(losses["loss"])
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    if accelerator.sync_gradients:
                        scheduler.step()
                    optimizer.zero_grad()
            except Exception as exc:
                if out_of_memory(exc):
                    raise VlaBenchError(
                        f"out of memory on a batch of {len(plan[position])} windows x {job.model.history} frames: "
                        "lower --batch-size (raise --grad-accum to keep the effective batch), or use --mixed-precision bf16"
                    ) from None
                raise
            position += 1
            samples += len(plan[position - 1]) * world
            for key, value in losses.items():
                window_terms.setdefault(key, []).append(float(value.detach()))
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - tick
                row = {"split": "train", "step": step, "epoch": epoch, **{k: float(np.mean(v)) for k, v in window_terms.items()},
                       "lr": scheduler.get_last_lr()[0], "samples_per_s": samples / max(elapsed, 1e-9)}
                log(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", sps=f"{row['samples_per_s']:.1f}")
                window_terms.clear()
                tick, samples = time.perf_counter(), 0
            if step % cfg.save_every == 0 or step == cfg.steps:
                save_state()
            if cfg.interrupt_after is not None and step >= cfg.interrupt_after:
                bar.close()
                os._exit(INTERRUPTED)
        if position >= len(plan):
            epoch, position = epoch + 1, 0
            if accelerator.is_main_process:
                _validation(job, val_set, cfg.batch_size, step, epoch - 1, log)
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not any(json.loads(line).get("split") == "val" for line in (output / METRICS_FILE).read_text().splitlines() if line.strip()):
            _validation(job, val_set, cfg.batch_size, step, epoch, log)
        plot_losses(output / METRICS_FILE, output / "loss.png")
    return output / EXPORT_DIR


def _validation(job: Job, val_set: D.WindowDataset, batch_size: int, step: int, epoch: int, log: Callable[[dict], None]) -> None:
    result = validate(job, val_set, batch_size)
    if result is not None:
        log({"split": "val", "step": step, "epoch": epoch, **result})
