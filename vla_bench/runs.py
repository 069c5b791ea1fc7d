"""Shards of an episode list (which runs count as the same experiment: vla_bench.results.identity)."""

from __future__ import annotations

import re
from typing import Sequence

from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError


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
