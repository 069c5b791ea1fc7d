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
