"""Timing helpers shared by the model inference benchmarks (models_cpu.py, models_gpu.py)."""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode

VIEWS = ("agentview", "robot0_eye_in_hand")
RESULTS = Path(__file__).resolve().parent / "results"


def observation(rng: np.random.Generator, size: int, episode: str, step: int) -> Observation:
    images = {view: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for view in VIEWS}
    state = np.concatenate([rng.normal(0, 0.1, 6), [0.04, -0.04]])
    return Observation(images=images, state=state, instruction="put the black bowl on the plate", episode=episode, step=step)


def steady_state_latency(policy: Any, batch: int, size: int, history: int, reps: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds per `policy.infer` call for `batch` episodes whose history windows are full."""
    rng = np.random.default_rng(0)
    episodes = [Episode("libero_10", 0, i, 42, 10_000) for i in range(batch)]
    for episode in episodes:
        policy.start_episode(episode)
    pool = [[observation(rng, size, e.key, 0) for e in episodes] for _ in range(2)]  # images reused: no RNG in the timing
    step = 0

    def call() -> float:
        nonlocal step
        observations = pool[step % 2]
        for obs in observations:
            obs.step = step
        sync()
        start = time.perf_counter()
        policy.infer(observations)
        sync()
        step += 1
        return time.perf_counter() - start

    for _ in range(history + 1):  # fill the windows (and warm up)
        call()
    return [call() for _ in range(reps)]


def summarise(times: list[float], batch: int) -> dict[str, float]:
    median = statistics.median(times)
    return {
        "batch": batch,
        "latency_ms_median": round(1000 * median, 2),
        "latency_ms_min": round(1000 * min(times), 2),
        "latency_ms_max": round(1000 * max(times), 2),
        "env_steps_per_s": round(batch / median, 1),
        "reps": len(times),
    }


def host() -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def write(name: str, payload: dict[str, Any], table: str, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(table)
    return path
