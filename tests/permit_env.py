"""A fake env that starts only as many episodes as it is given permits (tests/test_resume_shard.py).

A module of its own, importing little: spawned env workers import it to unpickle their env factory.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from vla_bench.envs.base import EnvSpec, Observation
from vla_bench.envs.fake import FakeBehaviour, FakeEnv


class PermitEnv(FakeEnv):
    """A fake env whose episode starts each take one permit (a file in `permits`), waiting while there
    is none: a run given P permits starts P episodes and then waits, so it is still running, with at
    most P records, whenever the test kills it, however slowly a loaded machine runs either process.
    A worker whose main process is gone stops waiting (its episode is lost with the run anyway)."""

    def __init__(self, spec: EnvSpec, permits: str, behaviour: FakeBehaviour = FakeBehaviour()) -> None:
        super().__init__(spec, behaviour)
        self.permits = Path(permits)

    def start(self, init_idx: int, seed: int, render: bool = True) -> Observation:
        parent = multiprocessing.parent_process()
        while not self._take_permit():
            if parent is not None and not parent.is_alive():
                raise SystemExit("the run's main process is gone")
            time.sleep(0.01)
        return super().start(init_idx, seed, render)

    def _take_permit(self) -> bool:
        for name in sorted(os.listdir(self.permits)):
            try:
                (self.permits / name).unlink()  # exactly one process succeeds per permit
                return True
            except FileNotFoundError:
                continue
        return False
