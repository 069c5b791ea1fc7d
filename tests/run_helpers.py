"""A small valid RunDescription for tests that write run folders directly."""

from __future__ import annotations

import dataclasses

from vla_bench.results.description import CheckpointRef, PolicyDescription, RunDescription
from vla_bench.specs import protocols


def description(**changes) -> RunDescription:
    """libero_goal tasks 0-1, 2 trials, policy zero, under openvla; `changes` replace fields."""
    base = RunDescription(
        protocol=protocols().get("openvla"),
        suites=("libero_goal",),
        tasks={"libero_goal": (0, 1)},
        trials=2,
        max_steps={"libero_goal": 300},
        seed=0,
        policy=PolicyDescription("zero", CheckpointRef()),
        env="fake",
        episode_start="fresh-env",
        image_size=224,
    )
    return dataclasses.replace(base, **changes)
