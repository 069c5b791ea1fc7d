"""Env kinds are registered configs: build, memory estimate, simulator errors, installation check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vla_bench.envs import ENV_KINDS, SimulatorError, env_kind, simulator_errors
from vla_bench.envs.fake import FakeSimulatorError
from vla_bench.errors import VlaBenchError
from vla_bench.rollout.resources import per_worker_gb


def test_each_kind_carries_its_memory_estimate_and_results_kind():
    assert per_worker_gb("libero") == env_kind("libero").gb_per_worker > per_worker_gb("fake")
    assert env_kind("libero").libero_results and not env_kind("fake").libero_results
    assert env_kind("libero").prepare is not None and env_kind("fake").prepare is None


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(VlaBenchError, match="unknown env 'libro'.*libero.*did you mean 'libero'"):
        env_kind("libro")


def test_fake_simulator_errors_are_simulator_errors():
    assert issubclass(FakeSimulatorError, SimulatorError)
    assert isinstance(FakeSimulatorError("boom"), simulator_errors())
    assert not isinstance(ValueError("a policy bug"), simulator_errors())


def test_classifying_an_error_imports_no_simulator():
    """Importing robosuite to classify a fake env's error took seconds under load (a flaky hang timeout)."""
    code = (
        "import sys; from vla_bench.envs import simulator_errors; simulator_errors(); "
        "print(sorted(m for m in ('robosuite', 'mujoco', 'vla_bench.envs.fake') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_loaded_simulators_own_errors_are_recognised():
    mujoco = pytest.importorskip("mujoco")
    assert mujoco.FatalError in env_kind("libero").simulator_errors()
    assert set(ENV_KINDS.names()) >= {"libero", "fake"}
