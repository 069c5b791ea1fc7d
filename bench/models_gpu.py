"""GPU inference benchmark of a VITA-VLA student in the 7B shape (VITA-1.5-7B: InternViT-300M-448px,
mlp2x_gelu projector, Qwen2.5-7B language model with hidden 3584, 28 layers; sizes from
checkpoints/configs/vita-vla-7b-student.json; random init, bf16), with S = 7 turns of history and
2 views, at batch 1/8/16/32.

    python bench/models_gpu.py [--batches 1,8,16,32] [--reps 10] [--name models-gpu]

Needs CUDA: without it the script says so and exits 2 (`--shape tiny --device cpu` is a smoke test
of the script itself, not a measurement). Reports, per batch: latency of the whole policy call
(image preprocessing, vision tower for the new frames, the 7-turn language-model pass, decoding,
ensembling), env steps/s, and the model-only forward (language model + heads over full windows of
cached frames) with tokens/s and achieved FLOP/s of an analytic estimate against the GPU's dense
bf16 peak.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_timing import RESULTS, host, observation, steady_state_latency, summarise, write  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), by device-name substring, FLOP/s.
PEAKS = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.5e12, "H100": 989.4e12,
         "A100": 312e12, "L40S": 362e12, "A10G": 70e12}

SHAPE_7B = REPO / "checkpoints" / "configs" / "vita-vla-7b-student.json"  # VITA-1.5-7B sizes


def build_policy(shape: str, device: str):
    import torch

    from vla_bench.models.checkpoint import CheckpointConfig, ExpectedProtocol
    from vla_bench.models.tiny import RECIPES, build_tokenizer
    from vla_bench.models.vita import VitaStudent
    from vla_bench.models.vita15 import make_processor
    from vla_bench.policies.execution import ExecutionPolicy
    from vla_bench.policies.vla_models import TorchChunkPredictor

    recipe = json.loads((RECIPES / "tiny-student.json").read_text())
    tokenizer = build_tokenizer(recipe["tokenizer"])  # the tiny BPE tokenizer: ids stay below any vocab size
    model = copy.deepcopy(recipe["model"])
    if shape == "7b":
        big = json.loads(SHAPE_7B.read_text())["model"]
        model.update(vlm_config=big["vlm_config"], teacher_width=big["teacher_width"])
    config = CheckpointConfig(architecture="vita-vla", model=model, normalisation=recipe["normalisation"],
                              protocol=ExpectedProtocol.from_dict(recipe["protocol"]))
    norm = recipe["normalisation"]
    processor = make_processor(200, norm["image_mean"], norm["image_std"])
    from vla_bench.models.base import resolve_device

    _, dtype = resolve_device(device)  # bf16 on CUDA, fp32 on CPU (one CPU thread unless told otherwise)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            student = VitaStudent.build(config, tokenizer=tokenizer, processor=processor)
    finally:
        torch.set_default_dtype(previous)
    student = student.to(device=device, dtype=dtype).eval()
    policy = ExecutionPolicy(TorchChunkPredictor(student, 200), "temporal_ensemble", "threshold", ensemble_k=0.01)
    return policy, student


def flops_per_window(student, tokens: int) -> float:
    """Analytic FLOPs of the timed model forward for one env: the language model over the whole
    window, 2 * params * tokens plus causal attention 2 * layers * tokens^2 * hidden (the heads are
    negligible; the vision tower runs outside the timed forward, on cached frames)."""
    text = student.vlm.config
    lm_params = sum(p.numel() for n, p in student.vlm.language_model.named_parameters() if "embed_tokens" not in n)
    return 2 * lm_params * tokens + 2 * text.num_hidden_layers * tokens**2 * text.hidden_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="7B-shape student GPU inference benchmark")
    parser.add_argument("--batches", default="1,8,16,32")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--shape", choices=("7b", "tiny"), default="7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--name", default="models-gpu")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("models_gpu.py: CUDA is not available on this machine; this benchmark needs a GPU "
              "(bench/models_cpu.py measures the tiny models on CPU)", file=sys.stderr)
        return 2
    if args.device != "cuda" and args.shape != "tiny":
        print("models_gpu.py: the 7B shape runs only on CUDA (use --shape tiny --device cpu for a smoke test)", file=sys.stderr)
        return 2

    policy, student = build_policy(args.shape, args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    peak = next((v for k, v in PEAKS.items() if k in device_name), None)
    params = sum(p.numel() for p in student.parameters())
    print(f"{device_name}: student with {params / 1e9:.2f} B parameters ({args.shape} shape)", flush=True)

    import numpy as np

    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = steady_state_latency(policy, batch, 200, student.history, args.reps, sync)
        row = summarise(times, batch)
        # Model-only forward on full windows (no preprocessing), for tokens/s and FLOP/s.
        rng = np.random.default_rng(1)
        with torch.inference_mode():
            frames = student.encode_frames([observation(rng, 200, f"b/{i}", 0) for i in range(batch)])
            windows = [[f] * student.history for f in frames]
            instructions = ["put the black bowl on the plate"] * batch
            model_times = []
            for _ in range(args.reps + 2):
                sync()
                start = time.perf_counter()
                student.predict(windows, instructions)
                sync()
                model_times.append(time.perf_counter() - start)
            model_s = statistics.median(model_times[2:])
        tokens = len(student.backend.window_tokens(student, windows[0], instructions[0])[0])
        flops = batch * flops_per_window(student, tokens)
        row.update({
            "model_forward_ms_median": round(1000 * model_s, 2),
            "tokens_per_window": tokens,
            "tokens_per_s": round(batch * tokens / model_s),
            "model_tflops_per_s": round(flops / model_s / 1e12, 1),
            "fraction_of_peak": round(flops / model_s / peak, 3) if peak else None,
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if args.device == "cuda" else None,
        })
        rows.append(row)
        print(row, flush=True)

    table = ["| batch | policy call ms (median) | env steps/s | model forward ms | tokens/window | tokens/s | TFLOP/s | of peak | peak mem GiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['batch']} | {r['latency_ms_median']} | {r['env_steps_per_s']} | {r['model_forward_ms_median']} | "
                     f"{r['tokens_per_window']} | {r['tokens_per_s']:,} | {r['model_tflops_per_s']} | {r['fraction_of_peak']} | {r['peak_memory_gib']} |")
    info = {**host(), "device": device_name, "peak_bf16_flops": peak, "parameters": params, "shape": args.shape}
    header = (f"# VITA-VLA student inference ({args.shape} shape, random init) on {device_name}\n\n"
              f"Command: `python bench/models_gpu.py {' '.join(sys.argv[1:])}`\n\n"
              f"{params / 1e9:.2f} B parameters, {student.dtype}, S = 7 turns, 2 views at 200 px, temporal ensembling. "
              f"Model forward = language model + heads on cached frames; TFLOP/s from an analytic estimate "
              f"(flops_per_window); peak {peak} FLOP/s.\n\n")
    path = write(args.name, {"host": info, "command": sys.argv, "rows": rows}, header + "\n".join(table) + "\n", args.out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
