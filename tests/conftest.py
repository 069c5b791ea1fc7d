"""Shared fixtures. Tests marked `sim` run real LIBERO in MuJoCo; everything else uses fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_bench.specs import protocols


@pytest.fixture
def openvla():
    return protocols().get("openvla")


@pytest.fixture
def vita():
    return protocols().get("vita-vla")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster, a head and a second node process with 1 CPU each, on 127.0.0.1 only;
    this process is connected to it as the driver. Started once per session, always stopped."""
    import ray

    from vla_bench.rollout.ray_local import keep_loopback, local_cluster

    keep_loopback()
    with local_cluster(nodes=2, cpus=1, python_path=[str(Path(__file__).parent)]) as cluster:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            yield cluster
        finally:
            ray.shutdown()
    assert not cluster.leftovers(), "a process of the test Ray cluster survived"
