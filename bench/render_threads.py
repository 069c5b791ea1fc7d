"""Time of one rendered LIBERO step for several llvmpipe thread counts (LP_NUM_THREADS), and whether
the images are the same. Each count runs in its own process (Mesa reads the variable once).

    python bench/render_threads.py [--threads 1,2] [--steps 40]

libero_spatial task 0, openvla protocol (both cameras, 256 px), zero action; prints one line per
thread count and writes bench/results/render-threads.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

MEASURE = """
import hashlib, sys, time
import numpy as np
from vla_bench.envs import EnvSpec, make_env
from vla_bench.specs import protocols
steps = int(sys.argv[1])
env = make_env("libero", EnvSpec.from_protocol(protocols().get("openvla"), "libero_spatial", 0, image_size=224))
env.start(0, 0)
action = np.array([0, 0, 0, 0, 0, 0, -1.0])
digest = hashlib.sha256()
started = time.perf_counter()
for _ in range(steps):
    obs, _ = env.step(action)
    for camera in sorted(obs.images):
        digest.update(obs.images[camera].tobytes())
rendered = (time.perf_counter() - started) / steps
started = time.perf_counter()
for _ in range(steps):
    env.step(action, render=False)
plain = (time.perf_counter() - started) / steps
print(f"RESULT {rendered * 1000:.1f} {plain * 1000:.1f} {digest.hexdigest()[:16]}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "render-threads.md"))
    args = parser.parse_args()
    lines = [
        f"# Rendered step vs llvmpipe threads, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs",
        "",
        f"libero_spatial task 0, openvla protocol (2 cameras, 256 px), {args.steps} zero-action steps per row.",
        "",
        "| LP_NUM_THREADS | ms per step, both cameras rendered | ms per step, no rendering | images (sha256 prefix) |",
        "|---:|---:|---:|---|",
    ]
    for threads in args.threads.split(","):
        env = {**os.environ, "LP_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", MEASURE, str(args.steps)], env=env, capture_output=True, text=True)
        result = [line.split()[1:] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not result:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        rendered, plain, digest = result[0]
        print(f"LP_NUM_THREADS={threads}: {rendered} ms rendered, {plain} ms without rendering, images {digest}", flush=True)
        lines.append(f"| {threads} | {rendered} | {plain} | {digest} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
