"""Run identity across invocations: shards of an episode list, and what a resumed run must match."""

from __future__ import annotations

import re
from typing import Any, Sequence

from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError

SIMULATOR_PACKAGES = ("mujoco", "robosuite", "libero", "bddl")

# run.json entries that decide which episodes run and what they mean; a resumed run and the shards
# of a merge must agree on all of them.
IDENTITY_FIELDS = ("protocol", "suites", "tasks", "trials", "max_steps", "seed", "env", "episode_start", "image_size")


def parse_shard(text: str) -> tuple[int, int]:
    """"i/n" -> (i, n) with 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise VlaBenchError(f"--shard {text!r}: expected i/n, e.g. 0/4 (i counts from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise VlaBenchError(f"--shard {text!r}: need 0 <= i < n (shards of 4 are 0/4, 1/4, 2/4, 3/4)")
    return index, count


def shard_episodes(episodes: Sequence[Episode], index: int, count: int) -> list[Episode]:
    """Every count-th episode of the canonical list, starting at index: a deterministic slice that
    spreads each task's episodes evenly over the shards."""
    return list(episodes[index::count])


def simulator_versions(run: dict[str, Any]) -> dict[str, Any]:
    versions = run.get("versions") or {}
    return {name: versions.get(name) for name in SIMULATOR_PACKAGES}


def checkpoint_identity(run: dict[str, Any]) -> dict[str, Any]:
    policy = run.get("policy") or {}
    return {
        "name": policy.get("name"),
        "checkpoint_sha256": (policy.get("checkpoint") or {}).get("sha256"),
        "model_identity": (policy.get("model") or {}).get("identity"),  # e.g. a remote server's model
    }


def identity_differences(old: dict[str, Any], new: dict[str, Any], shard: bool = True) -> list[str]:
    """Human-readable differences that make two run.json contents incompatible (empty: compatible)."""
    problems = []
    for name in IDENTITY_FIELDS:
        if old.get(name) != new.get(name):
            problems.append(f"{name}: {_short(old.get(name))} vs {_short(new.get(name))}")
    if checkpoint_identity(old) != checkpoint_identity(new):
        problems.append(f"policy/checkpoint: {checkpoint_identity(old)} vs {checkpoint_identity(new)}")
    if simulator_versions(old) != simulator_versions(new):
        problems.append(f"simulator versions: {simulator_versions(old)} vs {simulator_versions(new)}")
    if shard and old.get("shard") != new.get("shard"):
        problems.append(f"shard: {old.get('shard')} vs {new.get('shard')}")
    return problems


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
