"""Ray executor against the worker pool on real LIBERO, on a local 2-CPU Ray cluster (run by `make bench`).

Runs the same episodes (libero_spatial task 0, zero policy, both cameras rendered every step, the
engine's soft reset) twice: on the pool with 2 worker processes, then on a local Ray cluster of two
nodes with one CPU each (a head and a second node process, 127.0.0.1 only) with 2 env actors. Rates
are steady state, as in bench/engine_bench.py (between 10% and 90% of the steps). Also measures the
resident memory of the idle cluster's own processes, and envs per GB: 1 GB (10^9 bytes) over the peak
RSS of one rendered LIBERO env (the largest peak of the pool's workers, and of the env actors).
Writes bench/results/<date>-<host>-ray.json and .md (machine, versions, date, commit). `--quick` runs it
all with 2 episodes of 10 steps into a temporary folder: a check that the bench runs, not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PROTOCOL, RESULTS, BenchPolicy, Results, episodes, rounded, timed  # noqa: E402

from vla_bench.results import provenance  # noqa: E402
from vla_bench.rollout import EnvOptions, PoolExecutor, PoolSettings, Rendering  # noqa: E402
from vla_bench.rollout.ray_executor import RayExecutor, RaySettings, import_ray  # noqa: E402
from vla_bench.rollout.ray_local import keep_loopback, local_cluster  # noqa: E402

TARGET = 0.9  # issue #12: Ray's throughput at least 0.9x the pool's
GB, MIB = 1e9, 2**20
OPTIONS = EnvOptions(image_size=PROTOCOL.model_image_size, rendering=Rendering("all"), fast_reset=True)


def pool_run(eps, on_step) -> list:
    return list(PoolExecutor(PoolSettings(workers=2), "libero", OPTIONS).run(eps, BenchPolicy(), PROTOCOL, on_step))


def ray_run(eps, on_step) -> list:
    return list(RayExecutor(RaySettings(workers=2), "libero", OPTIONS).run(eps, BenchPolicy(), PROTOCOL, on_step))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, help="episodes per executor (default 4; 2 with --quick)")
    parser.add_argument("--steps", type=int, help="steps per episode (default 60; 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny settings into a temporary folder unless --output: checks the bench runs, measures nothing")
    parser.add_argument("--output", help=f"results folder (default {RESULTS})")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine shared)")
    args = parser.parse_args(argv)
    args.episodes = args.episodes or (2 if args.quick else 4)
    args.steps = args.steps or (10 if args.quick else 60)
    args.output = args.output or (tempfile.mkdtemp(prefix="ray-bench-quick-") if args.quick else str(RESULTS))
    note = " ".join(n for n in ("quick check (--quick): tiny settings, the numbers mean nothing." if args.quick else "", args.note) if n)
    eps = episodes(args.episodes, args.steps)
    results = Results(args.output, note, suffix="-ray")
    rows = [timed("pool, 2 workers, zero policy, render every step", 2, lambda on_step: pool_run(eps, on_step))]
    print(rows[-1], flush=True)
    ray = import_ray()
    keep_loopback()
    with local_cluster(nodes=2, cpus=1) as cluster:
        time.sleep(5)  # let start-up work settle before measuring the idle cluster
        idle_rss = cluster.processes_rss_mb()
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            label = "ray, 2 env actors on 2 nodes x 1 CPU, zero policy in the driver, render every step"
            rows.append(timed(label, 2, lambda on_step: ray_run(eps, on_step)))
            rows[-1].pop("workers_cpu_s")  # env actors are not this process's children: their CPU is not counted
        finally:
            ray.shutdown()
    print(rows[-1], flush=True)
    peaks = {"pool worker": rows[0]["peak_rss_mb"], "ray env actor": rows[1]["peak_rss_mb"]}
    ratio = rows[1]["steps_per_s"] / rows[0]["steps_per_s"]
    results.write({
        "settings": {"suite": "libero_spatial", "task": 0, "protocol": PROTOCOL.name, "episodes": args.episodes,
                     "steps": args.steps, "renderer": provenance.renderer()},
        "rows": [rounded(r) for r in rows],
        "ray_over_pool": round(ratio, 3),
        "ray_over_pool_target": TARGET,
        "ray_over_pool_meets_target": ratio >= TARGET,
        "env_peak_rss_mb": peaks,
        "envs_per_gb": {name: round(GB / (mb * MIB), 3) for name, mb in peaks.items()},
        "idle_cluster_rss_mb": idle_rss,
        "idle_cluster_rss_mb_total": round(sum(idle_rss.values()), 1),
    }, markdown, versions={"ray": ray.__version__})
    return 0


def markdown(result: dict) -> str:
    lines = [
        f"# Ray executor vs pool, {result['date']} on {result['host']['hostname']} ({result['cpu_count']} CPUs, {result.get('memory_total_gb', '?')} GB)",
        "",
        f"libero_spatial task 0, {result['settings']['protocol']} protocol, {result['settings']['episodes']} episodes "
        f"of {result['settings']['steps']} steps, zero policy, every step rendered; steady-state steps/s (10-90% of "
        f"the steps). Ray {result['versions']['ray']}. Load average before/after: "
        f"{result['load_average_before']} / {result['load_average_after']}.",
    ]
    if result["note"]:
        lines += ["", f"Note: {result['note']}"]
    lines += ["", "| configuration | steps/s | wall s (all) | steps/s (all) | peak env RSS MB |", "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r['steps_per_s']:.2f} | {r['wall_s']:.1f} | {r['steps_per_s_incl_setup']:.2f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"ray / pool (steady steps/s): **{result['ray_over_pool']:.2f}** (target >= {result['ray_over_pool_target']})", "",
              "Envs per GB (10^9 bytes) of memory, from the peak RSS of one rendered env (both cameras, "
              f"{result['settings']['protocol']} protocol):", ""]
    lines += [f"- {name}: peak {result['env_peak_rss_mb'][name]:.0f} MB (MiB) -> **{per_gb:.2f} envs per GB**"
              for name, per_gb in result["envs_per_gb"].items()]
    lines += ["",
              f"Idle cluster (2 nodes, no actors), resident memory of Ray's own processes: "
              f"{result['idle_cluster_rss_mb_total']:.0f} MB in all:", ""]
    lines += [f"- {name}: {mb:.0f} MB" for name, mb in sorted(result["idle_cluster_rss_mb"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
