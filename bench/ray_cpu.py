"""CPU seconds per 1000 env steps, by process role, of the pool and the Ray executor on real LIBERO.

Wall-clock rates mean little on a loaded machine; CPU time does not depend on who else runs. This
runs the same episodes as bench/ray_bench.py (libero_spatial task 0, zero policy, both cameras
rendered every step, soft reset; the pool with 2 workers, then 2 env actors on a local two-node Ray
cluster of 1 CPU each) and snapshots the user+system CPU time of every process involved at 10% and
at 90% of the steps (the steady window: env builds and the tail left out). Roles: the driver (this
process: the pool's main process or Ray's driver), the env workers (pool workers, env actors), the
policy actor, and Ray's own processes (raylet, gcs_server, agents, idle workers). The difference
between the two executors' totals is what Ray costs per env step. `--profile FILE` writes a cProfile
of the Ray driver (call counts of ray.get, ray.wait, remote calls). Prints JSON; nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import episodes  # noqa: E402
from ray_bench import pool_run, ray_run  # noqa: E402

from vla_bench.rollout.ray_executor import import_ray  # noqa: E402
from vla_bench.rollout.ray_local import keep_loopback, local_cluster  # noqa: E402


def role(proc: psutil.Process, driver: int) -> str:
    if proc.pid == driver:
        return "driver"
    title = " ".join(proc.cmdline())
    if "EnvActor" in title or "multiprocessing" in title:  # an env actor, or a pool worker (spawned)
        return "env workers"
    if "PolicyActor" in title:
        return "policy actor"
    return "ray system"


def cpu_snapshot(roots: list[int]) -> dict[int, tuple[str, float]]:
    """pid -> (role, user+system CPU seconds) of this process, its descendants and of `roots` and theirs."""
    me = os.getpid()
    found: dict[int, tuple[str, float]] = {}
    for root in [me, *roots]:
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(root)
            for proc in [top, *top.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    found[proc.pid] = (role(proc, me), t.user + t.system)
    return found


class Window:
    """on_step callback: snapshots at 10% and 90% of `total` steps."""

    def __init__(self, total: int, roots: list[int]) -> None:
        self.lo, self.hi = int(0.1 * total), int(0.9 * total)
        self.roots, self.steps, self.snaps = roots, 0, {}

    def __call__(self) -> None:
        self.steps += 1
        if self.steps in (self.lo, self.hi):
            self.snaps[self.steps] = cpu_snapshot(self.roots)

    def per_1000_steps(self) -> dict[str, float]:
        a, b = self.snaps[self.lo], self.snaps[self.hi]
        by_role: dict[str, float] = {}
        for pid, (name, cpu) in b.items():
            if pid in a:  # processes born inside the window count from zero
                cpu -= a[pid][1]
            by_role[name] = by_role.get(name, 0.0) + cpu
        scale = 1000 / (self.hi - self.lo)
        out = {name: round(cpu * scale, 2) for name, cpu in sorted(by_role.items())}
        out["total"] = round(sum(by_role.values()) * scale, 2)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip-pool", action="store_true")
    parser.add_argument("--profile", default="", help="write a cProfile of the Ray driver here")
    parser.add_argument("--ray-env", action="append", default=[], metavar="RAY_NAME=VALUE",
                        help="a Ray config variable for every node and the driver (repeatable)")
    args = parser.parse_args(argv)
    for item in args.ray_env:
        name, _, value = item.partition("=")
        if not name.startswith("RAY_") or not value:
            parser.error(f"--ray-env wants RAY_NAME=VALUE, got {item!r}")
        os.environ[name] = value
    eps = episodes(args.episodes, args.steps)
    total = args.episodes * args.steps
    result = {"episodes": args.episodes, "steps": args.steps, "ray_env": args.ray_env, "load_before": os.getloadavg()}
    if not args.skip_pool:
        window = Window(total, [])
        pool_run(eps, window)
        result["pool"] = window.per_1000_steps()
        print("pool", result["pool"], flush=True)
    ray = import_ray()
    keep_loopback()
    with local_cluster(nodes=2, cpus=1) as cluster:
        time.sleep(5)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            window = Window(total, [p.pid for p in cluster.processes])
            profile = cProfile.Profile() if args.profile else None
            if profile:
                profile.enable()
            ray_run(eps, window)
            if profile:
                profile.disable()
                profile.dump_stats(args.profile)
                stats = pstats.Stats(profile)
                calls = {f"{Path(f).name}:{fn}": n for (f, _, fn), (_, n, *_) in stats.stats.items()
                         if fn in ("get", "wait", "_remote", "put") and "ray" in f}
                result["driver_calls_per_step"] = {k: round(n / total, 3) for k, n in sorted(calls.items())}
        finally:
            ray.shutdown()
    result["ray"] = window.per_1000_steps()
    print("ray", result["ray"], flush=True)
    if "pool" in result:
        result["ray_minus_pool"] = round(result["ray"]["total"] - result["pool"]["total"], 2)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
