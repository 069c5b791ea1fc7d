"""Shared helpers for the model tests: the committed tiny checkpoints and synthetic observations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_bench.envs.base import Observation

REPO = Path(__file__).resolve().parents[1]
TINY_TEACHER = REPO / "checkpoints" / "tiny-teacher"
TINY_STUDENT = REPO / "checkpoints" / "tiny-student"
VIEWS = ("agentview", "robot0_eye_in_hand")
INSTRUCTIONS = (
    "put the black bowl on the plate",
    "open the top drawer and put the bowl inside",
    "turn on the stove",
)


def make_obs(rng: np.random.Generator, size: int, instruction: str = INSTRUCTIONS[0], episode: str = "libero_10/0/0", step: int = 0) -> Observation:
    images = {view: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for view in VIEWS}
    state = np.concatenate([rng.normal(0, 0.1, 6), [0.04, -0.04]])
    return Observation(images=images, state=state, instruction=instruction, episode=episode, step=step)
