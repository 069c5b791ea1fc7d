"""What the engine benchmarks share (bench/engine_bench.py, bench/ray_bench.py): the benchmark episodes,
the synthetic policy, steady-state rates, CPU time, and the results files with machine, versions and date.

Not a benchmark itself; the scripts import it (they put bench/ on sys.path when run as files).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import socket
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import psutil

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.policies.base import Policy, PolicyOutput
from vla_bench.results import provenance
from vla_bench.results.schema import EpisodeRecord
from vla_bench.specs import protocols

SUITE, TASK = "libero_spatial", 0
PROTOCOL = protocols().get("openvla")
ZERO_ACTION = np.array([0, 0, 0, 0, 0, 0, -1.0])
POLICY_SECONDS = 0.05  # the synthetic policy's time per batch
RESULTS = Path(__file__).resolve().parent / "results"


class BenchPolicy(Policy):
    """Zero actions; optionally a fixed delay per batch (a GPU model) and reading images once per chunk."""

    def __init__(self, seconds_per_batch: float = 0.0, chunk: int = 1) -> None:
        self.seconds_per_batch = seconds_per_batch
        self.chunk = chunk
        self.batches = 0
        self.observations = 0  # over all batches: observations / batches = mean batch size

    def infer(self, observations: Sequence[Observation]) -> PolicyOutput:
        self.batches += 1
        self.observations += len(observations)
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        reads_next = [(obs.step + 1) % self.chunk == 0 for obs in observations]  # images once per chunk
        return PolicyOutput(np.tile(ZERO_ACTION, (len(observations), 1)), reads_next)


def episodes(count: int, steps: int) -> list[Episode]:
    return [Episode(SUITE, TASK, i, PROTOCOL.env_seed, steps) for i in range(count)]


def steady_rate(stamps: list[float]) -> tuple[float, float]:
    """Steps/s between 10% and 90% of the steps (leaves out env builds and the unbalanced tail),
    and the length of that window in seconds."""
    lo, hi = int(0.1 * len(stamps)), int(0.9 * len(stamps)) - 1
    window = stamps[hi] - stamps[lo]
    return (hi - lo) / window, window


def row(name: str, workers: int, steps: int, wall: float, stamps: list[float]) -> dict:
    rate, window = steady_rate(stamps)
    return {
        "name": name, "workers": workers, "steps": steps, "wall_s": wall,
        "steps_per_s": rate, "window_s": window, "steps_per_s_incl_setup": steps / wall,
    }


def timed(label: str, workers: int, run: Callable[[Callable[[], None]], list[EpisodeRecord]]) -> dict:
    """Run `run(on_step)` (an executor run returning its records), check that every episode ended
    `ok`, and make a benchmark row of its step times with the envs' peak RSS and the CPU time used."""
    stamps: list[float] = []
    start = time.monotonic()
    cpu_main, cpu_workers = cpu_seconds()
    records = run(lambda: stamps.append(time.monotonic()))
    bad = [r.error for r in records if r.status != "ok"]
    if bad:
        raise RuntimeError(f"benchmark episodes failed: {bad}")
    result = row(label, workers, len(stamps), time.monotonic() - start, stamps)
    result["peak_rss_mb"] = max(r.worker_peak_rss_mb or 0.0 for r in records)
    main_now, workers_now = cpu_seconds()
    # Pool workers are reaped children by now; Ray actors are not this process's children (0 here).
    result.update(main_cpu_s=main_now - cpu_main, workers_cpu_s=workers_now - cpu_workers)
    return result


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process and by its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rounded(result: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


class Results:
    """One benchmark's results file: started when the benchmark starts (load average before), then
    `write` adds the date, machine, versions, git commit and load average after, and writes
    `<output>/<date>-<host><suffix>.json` and `.md`."""

    def __init__(self, output: str | Path, note: str = "", suffix: str = "") -> None:
        self.output, self.note, self.suffix = Path(output), note, suffix
        self.load_before = load()
        self.started = time.monotonic()

    def write(self, fields: dict, markdown: Callable[[dict], str], versions: dict | None = None) -> dict:
        now = dt.datetime.now(dt.timezone.utc)
        result = {
            "date": now.isoformat(timespec="seconds"),
            "host": provenance.host(),
            "cpu_count": os.cpu_count(),
            "memory_total_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "load_average_before": self.load_before,
            "load_average_after": load(),
            "note": self.note,
            "versions": {**provenance.versions(), **(versions or {})},
            "git": provenance.git_commit(),
            **fields,
            "bench_wall_s": round(time.monotonic() - self.started, 1),
        }
        self.output.mkdir(parents=True, exist_ok=True)
        stem = self.output / f"{now:%Y-%m-%d}-{socket.gethostname()}{self.suffix}"
        stem.with_name(stem.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_name(stem.name + ".md").write_text(markdown(result))
        print(markdown(result))
        print(f"wrote {stem}.json and .md")
        return result
