"""LIBERO's task list and init states, read from the installed files without importing torch.

LIBERO's benchmark module imports torch (~220 MB per env worker, bench/results/env-memory-*) only to
`torch.load` the `.pruned_init` files. Every one of the 130 files is a torch zip archive whose pickle
holds a single numpy array (no tensors, no storages), so a restricted unpickler that admits only
numpy's array reconstruction reads the very same array. The task list comes from LIBERO's own
`libero_suite_task_map.py`, loaded as a plain file (importing it as a submodule would run the
package's `__init__`, which imports torch). `tests/test_libero_tasks_sim.py` checks every task and
init-state array against LIBERO's benchmark module.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pickle
import zipfile
from pathlib import Path

import numpy as np

from vla_bench.errors import VlaBenchError


@dataclasses.dataclass(frozen=True)
class Task:
    """One LIBERO task, with the fields of LIBERO's own `benchmark.Task` that we use."""

    name: str
    language: str
    problem_folder: str  # the suite
    bddl_file: str
    init_states_file: str


def language_of(name: str) -> str:
    """The instruction LIBERO derives from a task's file name: for LIBERO-90/10 names
    (KITCHEN_SCENE3_turn_on_the_stove) the words after the scene prefix, otherwise the whole name."""
    if name[0].isupper():
        scene = name.find("SCENE")
        digits = 2 if "SCENE10" in name else 1  # SCENE1 .. SCENE10, then one underscore
        name = name[scene + len("SCENE") + digits + 1 :]
    return name.replace("_", " ")


@functools.lru_cache(maxsize=1)
def _task_map(root: str) -> dict[str, list[str]]:
    path = Path(root) / "benchmark" / "libero_suite_task_map.py"
    spec = importlib.util.spec_from_file_location("_libero_suite_task_map", path)
    if spec is None or spec.loader is None:
        raise VlaBenchError(f"LIBERO task map not found at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.libero_task_map


def suite_tasks(root: Path, suite: str) -> list[Task]:
    """The tasks of a suite in LIBERO's default task order (order index 0: the map's order)."""
    names = _task_map(str(root)).get(suite)
    if names is None:
        raise VlaBenchError(f"unknown LIBERO suite {suite!r}")
    return [Task(n, language_of(n), suite, f"{n}.bddl", f"{n}.pruned_init") for n in names]


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what a pickled numpy array needs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in an init-state file")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("init-state file holds torch storages, not a numpy array")


def load_init_states(path: Path) -> np.ndarray:
    """The array saved in a LIBERO `.pruned_init` file (a torch zip archive of one pickled numpy array)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise VlaBenchError(f"{path}: expected one data.pkl in the archive, found {pickles}")
            with archive.open(pickles[0]) as data:
                states = _ArrayUnpickler(data, encoding="utf-8").load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise VlaBenchError(f"cannot read LIBERO init states {path}: {exc}") from None
    if not isinstance(states, np.ndarray):
        raise VlaBenchError(f"{path}: expected a numpy array, found {type(states).__name__}")
    return states
