"""Remote vs in-process policy throughput, and the per-request overhead on loopback (`make bench-remote`).

(a) The tiny teacher (checkpoints/tiny-teacher, vita-vla protocol: one query per step, 7-frame
    history, temporal ensembling) on the fake env, 2 pool workers, in process and behind
    `vla-bench serve` (a separate process on 127.0.0.1) queried by `--policy remote`: env steps/s over
    the whole run and their ratio (target >= 0.9). The fake env makes the policy path the bottleneck,
    so the ratio is a lower bound of what a simulator-bound LIBERO run would show.
(b) One openpi-libero request (two 224x224x3 uint8 images, 8-D state, prompt) to the `zero` policy
    served on loopback, one client: median round trip, the server's own time for it, and the
    difference (codec + websocket + batching wait).
Writes bench/results/remote.json and bench/results/remote.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from remote_helpers import serve_subprocess  # noqa: E402  (the test helper starts and always stops the server)

from vla_bench.config import EvalConfig  # noqa: E402
from vla_bench.evaluate import evaluate  # noqa: E402
from vla_bench.remote.client import Connection  # noqa: E402
from vla_bench.remote.options import RemoteOptions  # noqa: E402
from vla_bench.results import provenance  # noqa: E402
from vla_bench.results.io import read_episodes  # noqa: E402

TEACHER = REPO / "checkpoints" / "tiny-teacher"


def throughput(config: EvalConfig) -> dict:
    """Env steps/s over the run's wall time as run.json records it (episodes only: loading the
    policy, or starting the server, is not included)."""
    result = evaluate(config)
    wall = json.loads((result.run_dir / "run.json").read_text())["wall_s"]
    steps = sum(r.steps for r in read_episodes(result.run_dir))
    statuses = sorted({r.status for r in read_episodes(result.run_dir)})
    return {"steps": steps, "wall_s": round(wall, 2), "steps_per_s": round(steps / wall, 2), "statuses": statuses}


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8, help="episodes (tasks 0-3 x 2 trials by default)")
    parser.add_argument("--steps", type=int, default=60, help="steps per episode")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200, help="loopback round trips measured")
    parser.add_argument("--repeats", type=int, default=2, help="alternating in-process / remote runs; the best of each is compared")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "remote")
    args = parser.parse_args()
    trials = 2
    tasks = f"0-{max(args.episodes // trials - 1, 0)}"
    tmp = Path(tempfile.mkdtemp(prefix="remote-bench-"))
    common = dict(suite="libero_spatial", tasks=tasks, trials=trials, max_steps=args.steps, protocol="vita-vla",
                  env="fake", workers=args.workers, progress=False)
    load_before = os.getloadavg()

    local_runs, remote_runs = [], []
    with serve_subprocess("--policy", "seer", "--checkpoint", str(TEACHER), "--protocol", "vita-vla") as (url, _):
        for rep in range(args.repeats):  # alternated, so load changes hit both alike
            local_runs.append(throughput(EvalConfig(policy="seer", checkpoint=str(TEACHER),
                                                    output=str(tmp / f"local{rep}"), **common)))
            remote_runs.append(throughput(EvalConfig(
                policy="remote", remote=RemoteOptions(server=url, model_name="tiny-teacher"),
                output=str(tmp / f"remote{rep}"), **common)))
    local, remote = best(local_runs), best(remote_runs)

    rng = np.random.default_rng(0)
    request = {
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.normal(size=8),
        "prompt": "pick up the black bowl",
    }
    round_trips, server_ms = [], []
    with serve_subprocess("--policy", "zero") as (url, _):
        connection = Connection(url)
        for i in range(args.requests + 10):
            start = time.perf_counter()
            reply = connection.infer(request, timeout_s=30)
            if i >= 10:  # warm-up left out
                round_trips.append((time.perf_counter() - start) * 1000)
                server_ms.append(reply["server_timing"]["total_ms"])
        connection.close()
    rtt, inside = statistics.median(round_trips), statistics.median(server_ms)
    load_after = os.getloadavg()

    versions = provenance.versions()
    import openpi_client
    import websockets
    import msgpack

    data = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": provenance.host(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "versions": {**versions, "websockets": websockets.__version__, "msgpack": ".".join(map(str, msgpack.version)),
                     "openpi_client": getattr(openpi_client, "__version__", "0.1.2")},
        "git": provenance.git_commit(),
        "setup": {"episodes": args.episodes, "steps": args.steps, "workers": args.workers, "env": "fake",
                  "protocol": "vita-vla", "policy": "seer tiny-teacher"},
        "in_process": local,
        "remote": remote,
        "in_process_runs": local_runs,
        "remote_runs": remote_runs,
        "ratio": round(remote["steps_per_s"] / local["steps_per_s"], 3),
        "loopback": {"requests": args.requests, "round_trip_ms_median": round(rtt, 3),
                     "server_ms_median": round(inside, 3), "overhead_ms_median": round(rtt - inside, 3),
                     "round_trip_ms_p90": round(sorted(round_trips)[int(0.9 * len(round_trips))], 3)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    loaded = max(load_before[0], load_after[0]) > (os.cpu_count() or 1)
    md = [
        f"# Remote policy benchmark ({data['date']})",
        "",
        f"Machine: {data['host'].get('hostname')} ({data['host'].get('platform')}), {data['cpu_count']} CPUs, shared by "
        f"8 agents; load average (1/5/15 min) {data['load_average_before']} before, {data['load_average_after']} after"
        f"{' — loaded: the figures are noisy' if loaded else ''}. "
        f"Versions: python {versions.get('python')}, torch {versions.get('torch')}, numpy {versions.get('numpy')}, "
        f"websockets {data['versions']['websockets']}, msgpack {data['versions']['msgpack']}, openpi-client 0.1.2; "
        f"git {data['git']}.",
        "",
        f"Tiny teacher, vita-vla protocol, fake env, {args.episodes} episodes x {args.steps} steps, {args.workers} workers; "
        f"steps/s over run.json's wall_s (the episodes, spawning the 2 env workers included; not loading the policy), best of {args.repeats} alternating runs each "
        f"(all: in process {[r['steps_per_s'] for r in local_runs]}, remote {[r['steps_per_s'] for r in remote_runs]}):",
        "",
        "| policy | env steps | wall s | steps/s | ratio |",
        "|---|---:|---:|---:|---:|",
        f"| in process | {local['steps']} | {local['wall_s']} | {local['steps_per_s']} | 1.00 |",
        f"| remote (vla-bench serve on 127.0.0.1) | {remote['steps']} | {remote['wall_s']} | {remote['steps_per_s']} | {data['ratio']:.2f} (target 0.9) |",
        "",
        f"Loopback, one client, `zero` policy, openpi-libero request (2 x 224x224x3 uint8 + state + prompt), "
        f"{args.requests} requests: median round trip {rtt:.2f} ms (p90 {data['loopback']['round_trip_ms_p90']:.2f}), "
        f"of which {inside:.2f} ms inside the server (batching wait included); overhead outside the server {rtt - inside:.2f} ms.",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
