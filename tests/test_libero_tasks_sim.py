"""The torch-free task and init-state reader gives exactly what LIBERO's benchmark module gives."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from vla_bench.envs.libero_env import load_task
from vla_bench.envs.libero_tasks import load_init_states
from vla_bench.errors import VlaBenchError
from vla_bench.specs import suites

pytestmark = pytest.mark.sim


def test_every_task_matches_libero_benchmark():
    """All 130 tasks: same name, instruction, BDDL path and bit-identical init states as `torch.load`."""
    load_task("libero_spatial", 0)  # sets LIBERO's config path up
    from libero.libero import benchmark, get_libero_path

    libero_suites = [n for n in suites() if not suites().get(n).robust]  # robustness suites have their own loader
    checked = 0
    for name in libero_suites:
        reference = benchmark.get_benchmark_dict()[name]()
        for task_id in range(reference.n_tasks):
            task, init_states, bddl = load_task(name, task_id)
            expected = reference.get_task(task_id)
            assert (task.name, task.language, task.problem_folder, task.bddl_file) == (
                expected.name, expected.language, expected.problem_folder, expected.bddl_file
            )
            assert bddl == os.path.join(get_libero_path("bddl_files"), expected.problem_folder, expected.bddl_file)
            expected_states = reference.get_task_init_states(task_id)
            assert init_states.dtype == expected_states.dtype
            np.testing.assert_array_equal(init_states, expected_states)
            checked += 1
    assert checked == sum(suites().get(n).n_tasks for n in libero_suites) == 130


def test_env_worker_imports_no_torch():
    code = (
        "import sys; from vla_bench.envs.libero_env import LiberoEnv, load_task; "
        "load_task('libero_10', 3); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_init_state_file_with_foreign_objects_is_refused(tmp_path):
    bad = tmp_path / "bad.pruned_init"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(print))
    with pytest.raises(VlaBenchError, match="unexpected object builtins.print"):
        load_init_states(bad)
    (tmp_path / "garbage.pruned_init").write_bytes(b"not a zip")
    with pytest.raises(VlaBenchError, match="cannot read LIBERO init states"):
        load_init_states(tmp_path / "garbage.pruned_init")
