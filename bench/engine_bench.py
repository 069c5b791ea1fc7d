"""Throughput benchmark of the rollout engine on real LIBERO (run by `make bench`).

Measures, in one run on this machine, env steps per second for:
  (a) the plain serial loop: one env, render every step, LIBERO's default (hard) reset;
  (b) the engine with 1, 2 and 4 workers, zero policy, rendering every step, with its default
      soft reset (scene reused; bit-identical, bench/check_reset.py), and 2 workers with LIBERO's
      hard reset;
  (c) the engine with a synthetic policy that takes a fixed 50 ms per batch, against the ideal
      max(sim time / workers, policy time);
  (d) lazy rendering with a policy that reads one observation per 8-action chunk;
  (e) a sweep over the number of envs (--slow-workers, e.g. 2,4,6) of the two slow-policy rows (50 ms
      policy rendering every step; 50 ms policy with 8-action chunks and lazy rendering), against the
      ideal max(sim time / cores, policy time), where the sim rate is the best zero-policy rate measured
      for that rendering mode (with as many workers as cores among them) and the policy time is 50 ms
      per batch of all envs; for each row, the fewest swept envs that reach <= 1.15x the ideal.
Every configuration runs the same episodes (libero_spatial task 0, init states 0..E-1, S steps each;
the zero policy never succeeds, so every episode runs S steps). Rates are steady state, between 10%
and 90% of the steps (resets included; env builds and the unbalanced tail left out); rates over the
whole wall time are reported too. Writes bench/results/<date>-<host>.json and a markdown table of ratios next to it.
`--quick` runs every step with tiny settings into a temporary folder: a check that the bench runs, not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (  # noqa: E402
    POLICY_SECONDS, PROTOCOL, RESULTS, SUITE, TASK, ZERO_ACTION, BenchPolicy, Results, episodes, rounded, row, timed,
)

from vla_bench.envs import EnvSpec, make_env  # noqa: E402
from vla_bench.episodes import Episode  # noqa: E402
from vla_bench.errors import VlaBenchError  # noqa: E402
from vla_bench.results import provenance  # noqa: E402
from vla_bench.rollout import EnvOptions, PoolExecutor, PoolSettings, Rendering  # noqa: E402
from vla_bench.rollout.resources import check_workers, default_workers  # noqa: E402

TARGET = 1.15  # issue #12: every slow-policy row within 1.15x its ideal
SWEEP_ROWS = {  # sweep row -> (rendering, chunk)
    "50 ms policy, render every step": ("all", 1),
    "50 ms policy, 8-action chunks, lazy rendering": ("lazy", 8),
}
FULL = {"episodes": 4, "steps": 60, "lazy_steps": 120, "workers": "1,2,4", "policy_workers": "2,4"}
QUICK = {"episodes": 2, "steps": 10, "lazy_steps": 16, "workers": "1,2", "policy_workers": "2"}


def serial_loop(eps: list[Episode]) -> dict:
    """(a) The reference loop: one env, every step rendered, hard reset per episode."""
    start = time.monotonic()
    spec = EnvSpec.from_protocol(PROTOCOL, SUITE, TASK, image_size=PROTOCOL.model_image_size, fast_reset=False)
    env = make_env("libero", spec)
    stamps: list[float] = []
    try:
        for episode in eps:
            env.start(episode.init_idx, episode.seed)
            for _ in range(episode.max_steps):
                env.step(ZERO_ACTION)
                stamps.append(time.monotonic())
    finally:
        env.close()
    return row("serial loop, render every step, hard reset", 1, len(stamps), time.monotonic() - start, stamps)


def engine(eps: list[Episode], workers: int, policy: BenchPolicy, rendering: str, label: str, soft: bool = True) -> dict:
    options = EnvOptions(image_size=PROTOCOL.model_image_size, rendering=Rendering(rendering), fast_reset=soft)
    executor = PoolExecutor(PoolSettings(workers=workers), "libero", options)
    result = timed(label, workers, lambda on_step: list(executor.run(eps, policy, PROTOCOL, on_step)))
    result.update(policy_batches=policy.batches, mean_batch=policy.observations / max(policy.batches, 1))
    return result


def against_ideal(result: dict, sim_rate: float, workers: int) -> dict:
    """Ideal time per step = max(sim time per step with no policy, policy time per step when every
    batch serves all the workers' envs); compared on the steady-state window."""
    ideal_rate = min(sim_rate, workers / POLICY_SECONDS)
    result["ideal_steps_per_s"] = ideal_rate
    result["wall_over_ideal"] = ideal_rate / result["steps_per_s"]
    return result


def slow_sweep(steps: int, lazy_steps: int, counts: list[int], sim_rates: dict[str, float], done) -> dict:
    """(e) Each slow-policy row for each env count n (n episodes, one per env), against
    max(sim time / cores, policy time): `sim_rates` holds, per rendering mode, the best zero-policy
    rate measured (what the cores give without a policy). Returns, per row, time / ideal by env count
    and the fewest envs reaching TARGET (None: none of the swept counts did)."""
    sweep = {}
    for name, (rendering, chunk) in SWEEP_ROWS.items():
        by_count = {}
        for n in counts:
            eps = episodes(n, lazy_steps if chunk > 1 else steps)
            result = engine(eps, n, BenchPolicy(POLICY_SECONDS, chunk=chunk), rendering, f"sweep: {n} envs, {name}")
            by_count[n] = done(against_ideal(result, sim_rates[rendering], n))["wall_over_ideal"]
        needed = min((n for n, ratio in by_count.items() if ratio <= TARGET), default=None)
        sweep[name] = {"time_over_ideal": by_count, "envs_needed": needed, "sim_steps_per_s": round(sim_rates[rendering], 3)}
        reached = f"{needed} envs" if needed is not None else f"not reached with up to {max(counts, default=0)} envs"
        print(f"sweep: {name}: time / ideal {by_count}; <= {TARGET}x ideal: {reached}", flush=True)
    return sweep


def usable_counts(counts: str, what: str, notes: list[str]) -> list[int]:
    """The env counts of `counts` ("1,2,4") whose workers fit in the memory available now; the others
    are skipped with a line saying why (also kept in `notes`)."""
    usable = []
    for n in (int(n) for n in counts.split(",") if n):
        try:
            check_workers(n, "libero", force=False)
            usable.append(n)
        except VlaBenchError as exc:
            print(f"{what}: skipping {n}: {exc}", flush=True)
            notes.append(f"{what}: skipped {n}: {exc}")
    return usable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, help=f"episodes per configuration (default {FULL['episodes']})")
    parser.add_argument("--steps", type=int, help=f"policy steps per episode, rendered runs (default {FULL['steps']})")
    parser.add_argument("--lazy-steps", type=int, help=f"policy steps per episode for (d) (default {FULL['lazy_steps']})")
    parser.add_argument("--workers", help=f"worker counts for (b) (default {FULL['workers']})")
    parser.add_argument("--policy-workers", help=f"worker counts for (c), also in --workers (default {FULL['policy_workers']})")
    parser.add_argument("--lazy-workers", type=int, default=2, help="workers for (d)")
    parser.add_argument("--slow-workers", default="", help="env counts for the slow-policy sweep (e), e.g. 2,4,6")
    parser.add_argument("--only-sweep", action="store_true", help="run (d)'s zero-policy rows and the sweep only")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny settings ({QUICK}) into a temporary folder unless --output: checks the bench runs, measures nothing")
    parser.add_argument("--output", help=f"results folder (default {RESULTS})")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine shared)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.output = args.output or (tempfile.mkdtemp(prefix="engine-bench-quick-") if args.quick else str(RESULTS))
    notes = (["quick check (--quick): tiny settings, the numbers mean nothing."] if args.quick else []) + ([args.note] if args.note else [])
    worker_counts = usable_counts(args.workers, "workers", notes)
    eps = episodes(args.episodes, args.steps)
    results = Results(args.output)
    rows = []

    def done(result: dict) -> dict:
        rows.append(rounded(result))
        print(f"{result['name']:<58} {result['steps_per_s']:7.2f} steps/s steady  ({result['wall_s']:.1f} s in all)", flush=True)
        return rows[-1]

    ratios: dict[str, float] = {}
    cores = default_workers("libero")  # what "sim time / cores" can use: CPU cores, capped by memory
    w = args.lazy_workers
    lazy_eps = episodes(args.episodes, args.lazy_steps)
    if not args.only_sweep:
        done(serial_loop(eps))
        serial = rows[0]["steps_per_s"]
        for n in worker_counts:
            done(engine(eps, n, BenchPolicy(), "all", f"engine, {n} worker(s), zero policy, render every step"))
        ratios.update({f"{r['workers']} workers / serial loop": r["steps_per_s"] / serial for r in rows[1: 1 + len(worker_counts)]})
        if 2 in worker_counts:
            hard = done(engine(eps, 2, BenchPolicy(), "all", "engine, 2 workers, zero policy, render every step, hard reset", soft=False))
            ratios["2 workers, hard reset / serial loop"] = hard["steps_per_s"] / serial
        zero_rows = {r["workers"]: r for r in rows[1: 1 + len(worker_counts)]}
        for n in (int(n) for n in args.policy_workers.split(",")):
            if n in zero_rows:
                label = f"engine, {n} workers, 50 ms policy, render every step"
                r = done(against_ideal(engine(eps, n, BenchPolicy(POLICY_SECONDS), "all", label), zero_rows[n]["steps_per_s"], n))
                ratios[f"50 ms policy, {n} workers: time / ideal (render every step)"] = r["wall_over_ideal"]
        every = done(engine(lazy_eps, w, BenchPolicy(chunk=8), "all", f"engine, {w} workers, 8-action chunks, render every step"))
    else:
        w = cores
        zero_rows = {w: done(engine(eps, w, BenchPolicy(), "all", f"engine, {w} worker(s), zero policy, render every step"))}
    lazy = done(engine(lazy_eps, w, BenchPolicy(chunk=8), "lazy", f"engine, {w} workers, 8-action chunks, lazy rendering"))
    if not args.only_sweep:
        label = f"engine, {w} workers, 8-action chunks, lazy, 50 ms policy"
        r = done(against_ideal(engine(lazy_eps, w, BenchPolicy(POLICY_SECONDS, chunk=8), "lazy", label), lazy["steps_per_s"], w))
        ratios[f"50 ms policy, {w} workers: time / ideal (lazy, chunks of 8)"] = r["wall_over_ideal"]
        ratios["lazy / render-every-step (chunks of 8)"] = lazy["steps_per_s"] / every["steps_per_s"]
    sweep = {}
    if args.slow_workers:
        counts = usable_counts(args.slow_workers, "sweep envs", notes)
        if cores not in zero_rows:  # the sim rate with every core busy
            label = f"engine, {cores} workers (cores), zero policy, render every step"
            zero_rows[cores] = done(engine(eps, cores, BenchPolicy(), "all", label))
        lazy_rates = [lazy["steps_per_s"]]
        if w != cores:
            label = f"engine, {cores} workers (cores), 8-action chunks, lazy rendering"
            lazy_rates.append(done(engine(lazy_eps, cores, BenchPolicy(chunk=8), "lazy", label))["steps_per_s"])
        sim_rates = {"all": max(r["steps_per_s"] for r in zero_rows.values()), "lazy": max(lazy_rates)}
        sweep = slow_sweep(args.steps, args.lazy_steps, counts, sim_rates, done)
        for name, entry in sweep.items():
            ratios.update({f"sweep, {n} envs, {name}: time / ideal": r for n, r in entry["time_over_ideal"].items()})
    results.note = " ".join(notes)
    results.write({
        "settings": {
            "suite": SUITE, "task": TASK, "protocol": PROTOCOL.name, "render_size": PROTOCOL.render_size,
            "cameras": list(PROTOCOL.cameras), "episodes": args.episodes, "steps": args.steps,
            "lazy_steps": args.lazy_steps, "renderer": provenance.renderer(),
        },
        "rows": rows,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "sweep": {"target_time_over_ideal": TARGET, "cores": cores, "rows": sweep} if sweep else None,
    }, markdown)
    return 0


def markdown(result: dict) -> str:
    lines = [
        f"# Engine benchmark, {result['date']} on {result['host']['hostname']} ({result['cpu_count']} CPUs, {result.get('memory_total_gb', '?')} GB)",
        "",
        f"libero_spatial task 0, {result['settings']['protocol']} protocol ({result['settings']['render_size']} px, "
        f"{len(result['settings']['cameras'])} cameras), {result['settings']['episodes']} episodes of "
        f"{result['settings']['steps']} steps ({result['settings']['lazy_steps']} for the chunked rows); "
        "steps/s are steady state (between 10% and 90% of the steps: resets included, env builds and the "
        "unbalanced tail left out); the last columns include everything; sweep rows run one episode per env. "
        "Load average before/after: "
        f"{result['load_average_before']} / {result['load_average_after']}.",
    ]
    if result["note"]:
        lines += ["", f"Note: {result['note']}"]
    lines += [
        "",
        "| configuration | steps/s | time / ideal | wall s (all) | steps/s (all) | CPU s: main / workers | mean batch | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        ideal = f"{r['wall_over_ideal']:.2f}" if "wall_over_ideal" in r else ""
        cpu = f"{r['main_cpu_s']:.1f} / {r['workers_cpu_s']:.1f}" if "main_cpu_s" in r else ""
        batch = f"{r['mean_batch']:.2f}" if "mean_batch" in r else ""
        peak = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else ""
        lines.append(
            f"| {r['name']} | {r['steps_per_s']:.2f} | {ideal} | {r['wall_s']:.1f} | {r['steps_per_s_incl_setup']:.2f} | {cpu} | {batch} | {peak} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result["ratios"].items()]
    if result.get("sweep"):
        sweep = result["sweep"]
        lines += ["", f"Slow-policy sweep: time / ideal, ideal = max(sim time / {sweep['cores']} cores, 50 ms policy per "
                  f"batch of all envs); target <= {sweep['target_time_over_ideal']}x.", "",
                  "| row | " + " | ".join(f"{n} envs" for n in next(iter(sweep["rows"].values()))["time_over_ideal"]) +
                  " | envs needed for the target |",
                  "|---|" + "---:|" * (len(next(iter(sweep["rows"].values()))["time_over_ideal"]) + 1)]
        for name, entry in sweep["rows"].items():
            needed = entry["envs_needed"] if entry["envs_needed"] is not None else "not reached"
            lines.append(f"| {name} | " + " | ".join(f"{r:.2f}" for r in entry["time_over_ideal"].values()) + f" | {needed} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
