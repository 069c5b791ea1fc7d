"""CPU inference benchmark of the tiny teacher and student checkpoints through the real policy path
(observation preprocessing, frozen encoders, history windows, temporal ensembling).

    python bench/models_cpu.py [--reps 20] [--batches 1,4,8] [--threads 1,2] [--name models-cpu]

Writes bench/results/<name>.json and .md. Latency is per `infer` call with full 7-frame history
windows; env steps/s = batch / latency, the step rate the policy alone could serve.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_timing import RESULTS, host, steady_state_latency, summarise, write  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="tiny model CPU inference benchmark")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts to compare")
    parser.add_argument("--name", default="models-cpu")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from vla_bench.policies import PolicyContext, make_policy
    from vla_bench.specs import protocols

    protocol = protocols().get("vita-vla")
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        os.environ["VLA_BENCH_TORCH_THREADS"] = str(threads)
        for name, checkpoint in (("seer", "tiny-teacher"), ("vita-vla", "tiny-student")):
            policy = make_policy(name, PolicyContext(protocol=protocol, checkpoint=REPO / "checkpoints" / checkpoint))
            model = policy.predictor.model
            params = sum(p.numel() for p in model.parameters())
            for batch in [int(b) for b in args.batches.split(",")]:
                times = steady_state_latency(policy, batch, policy.image_size, model.history, args.reps)
                row = {"policy": name, "checkpoint": f"checkpoints/{checkpoint}", "params": params,
                       "threads": torch.get_num_threads(), **summarise(times, batch)}
                rows.append(row)
                print(row, flush=True)

    table = ["| policy | params | threads | batch | latency median (min-max) ms | env steps/s |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['policy']} ({r['checkpoint']}) | {r['params']:,} | {r['threads']} | {r['batch']} | "
                     f"{r['latency_ms_median']} ({r['latency_ms_min']}-{r['latency_ms_max']}) | {r['env_steps_per_s']} |")
    info = host()
    header = (f"# Tiny model inference on CPU\n\nCommand: `python bench/models_cpu.py {' '.join(sys.argv[1:])}`\n\n"
              f"Host: {info['hostname']}, {info['cpu_count']} cores, torch {info['torch']}, {info['date']}, "
              f"load average at start {info.get('load_average_at_start')} (shared machine: compare ratios).\n\n"
              "Per `infer` call, protocol vita-vla (temporal ensembling), full 7-frame history windows.\n\n")
    path = write(args.name, {"host": info, "command": sys.argv, "rows": rows}, header + "\n".join(table) + "\n", args.out_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
