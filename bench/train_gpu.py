"""Step time of a few training steps of the paper-scale student (VITA-VLA on a 7B-shape VLM) on one GPU.

    python bench/train_gpu.py [--stage finetune|align] [--steps 5] [--batch-size 1]   (make bench-train-gpu)

Builds the student of vla_bench/training/recipes/paper-student.json with random weights directly on
the GPU in bf16 (pure bf16 weights and AdamW states: the memory a single-GPU run needs; the cluster
recipe shards with FSDP instead), runs the stage's objective on synthetic windows of the recipe's
history (two 200 px views per frame) and writes bench/results/train-gpu-<date>-<host>.json with the
device name, step times and peak memory. Without a CUDA GPU it says so and exits 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "vla_bench" / "training" / "recipes"


def synthetic_batch(batch: int, history: int, size: int, views: tuple[str, ...], rng: np.random.Generator) -> dict:
    return {
        "images": {v: rng.integers(0, 255, size=(batch, history, size, size, 3), dtype=np.uint8) for v in views},
        "future": {v: rng.integers(0, 255, size=(batch, history, size, size, 3), dtype=np.uint8) for v in views},
        "state": rng.normal(size=(batch, history, 8)).astype(np.float32),
        "command": np.tile(np.array([1.0, 0.0], dtype=np.float32), (batch, history, 1)),
        "actions": np.clip(rng.normal(size=(batch, history, 3, 7)), -1, 1).astype(np.float32),
        "valid": np.ones((batch, history, 3), dtype=bool),
        "instruction": ["put the cream cheese in the bowl"] * batch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("finetune", "align"), default="finetune")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--student", type=Path, default=RECIPES / "paper-student.json")
    parser.add_argument("--teacher", type=Path, default=RECIPES / "paper-teacher.json")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--smoke-cpu", action="store_true", help="check the script on the CPU with small recipes (nothing written)")
    args = parser.parse_args()
    if args.smoke_cpu:
        args.student, args.teacher = RECIPES / "small-student.json", RECIPES / "small-teacher.json"
    elif not torch.cuda.is_available():
        print("bench/train_gpu.py: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing measured", file=sys.stderr)
        return 2

    from vla_bench.models.tiny import model_from_recipe
    from vla_bench.training import objectives as O

    device = torch.device("cpu" if args.smoke_cpu else "cuda")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    with device:
        student = model_from_recipe(args.student).to(torch.bfloat16).train()
        teacher = model_from_recipe(args.teacher).to(torch.bfloat16).eval() if args.stage == "align" else None
    names = O.set_trainable(student, O.default_trainable(args.stage, student), ())
    trainable = [p for n, p in student.named_parameters() if n in set(names)]
    objective = O.AlignObjective(student, teacher, None) if teacher is not None else O.FinetuneObjective(student, np.ones(6, np.float32), None)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    batch = synthetic_batch(args.batch_size, student.history, student.config.protocol.image_size, student.views, rng)

    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(2 + args.steps):
        sync()
        start = time.perf_counter()
        loss = objective(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if step >= 2:
            times.append(time.perf_counter() - start)
    if args.smoke_cpu:
        print(f"smoke run on the CPU ({args.stage}): {len(times)} steps, median {statistics.median(times):.3f} s; nothing written")
        return 0
    result = {
        "what": f"{args.stage} training steps of the paper-scale student ({args.student.name}), pure bf16, AdamW",
        "device": torch.cuda.get_device_name(0),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "batch_windows": args.batch_size,
        "history": student.history,
        "parameters": sum(p.numel() for p in student.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "step_s": {"median": statistics.median(times), "min": min(times), "max": max(times), "all": times},
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"train-gpu-{datetime.date.today().isoformat()}-{socket.gethostname()}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
