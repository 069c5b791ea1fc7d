"""How many env workers the machine can hold: CPU cores, capped by available memory."""

from __future__ import annotations

import os

from vla_bench.errors import VlaBenchError

GB = 1e9


def available_gb() -> float:
    import psutil

    return psutil.virtual_memory().available / GB


def per_worker_gb(env_kind: str) -> float:
    """Peak memory of one worker process of this env kind (its registered estimate)."""
    from vla_bench.envs import env_kind as lookup

    return lookup(env_kind).gb_per_worker


def default_workers(env_kind: str) -> int:
    """CPU cores, capped by the memory available now (at least 1)."""
    cores = os.cpu_count() or 1
    fits = int(available_gb() // per_worker_gb(env_kind))
    return max(1, min(cores, fits))


def check_workers(workers: int, env_kind: str, force: bool) -> None:
    """Refuse more workers than memory allows, saying how much is needed, unless forced."""
    if workers < 0:
        raise VlaBenchError(f"--workers {workers}: must be 0 (in-process) or more")
    need = max(workers, 1) * per_worker_gb(env_kind)
    have = available_gb()
    if need > have and not force:
        fits = int(have // per_worker_gb(env_kind))
        raise VlaBenchError(
            f"--workers {workers} needs about {need:.1f} GB of memory ({per_worker_gb(env_kind)} GB per {env_kind} "
            f"worker) but only {have:.1f} GB is available; use --workers {max(fits, 1)} or pass --force"
        )
