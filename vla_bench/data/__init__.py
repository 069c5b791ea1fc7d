"""Data shipped inside the package: suites, protocols, published baselines, doctor's references.

Everything here is read through `importlib.resources`, so a wheel or a non-editable install (what a
worker on another machine gets) has the same data as a source checkout:

- `suites.toml`, `protocols.toml`: the LIBERO suites and the evaluation protocol presets;
- `baselines.toml`: published success rates shown as report columns;
- `fingerprints.json`: `vla-bench doctor`'s golden scene fingerprints (`doctor --write-golden`);
- `expert_reference.jsonl`: the expert episodes doctor replays, copied from the reference runs
  `results/reference/expert-<suite>/` by `make expert-reference`;
- `simulator_pins.txt`: the pinned versions doctor checks, the simulator lines of `constraints.txt`
  (written by `make lock`; a test keeps the two in agreement).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any


def resource(name: str) -> Traversable:
    """A data file of the installed package (it may live inside a zip: read it, do not assume a path)."""
    return resources.files(__name__).joinpath(name)


def read_text(name: str) -> str:
    return resource(name).read_text(encoding="utf-8")


def read_toml(name: str) -> dict[str, Any]:
    with resource(name).open("rb") as f:
        return tomllib.load(f)


def source_path(name: str) -> Path:
    """Where to (re)write a data file: the package folder on disk (an editable install's source tree)."""
    return Path(__file__).resolve().parent / name
