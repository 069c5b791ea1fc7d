"""Tiny demonstration files for the training tests: scripted episodes of the fake env (a point that
moves to a goal), written by the real `DemoWriter` in the layout `vla-bench collect` produces."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vla_bench.collect import DemoWriter
from vla_bench.envs.base import EnvSpec
from vla_bench.envs.fake import FakeEnv
from vla_bench.results.schema import EpisodeRecord
from vla_bench.specs import protocols

SUITE = "libero_object"


def scripted_episode(env: FakeEnv, init_idx: int, max_steps: int = 40) -> tuple[dict, bool]:
    """Move straight to the goal (full-scale steps, exact +-1 gripper: closed for the second half)."""
    obs = env.start(init_idx, seed=0)
    buffer: dict[str, list] = {k: [] for k in ("actions", "agentview_rgb", "eye_in_hand_rgb", "state", "joint_states")}
    success = False
    for step in range(max_steps):
        delta = (env.goal_position - env.position) / env.behaviour.step_scale
        action = np.zeros(7)
        action[:3] = np.clip(delta, -0.3, 0.3)  # slow enough for episodes of ~10-20 steps
        action[3:6] = 0.01 * np.sin(step + np.arange(3))  # small rotation deltas, as in LIBERO
        action[6] = 1.0 if np.linalg.norm(delta) < 2 else -1.0
        buffer["agentview_rgb"].append(obs.images["agentview"])
        buffer["eye_in_hand_rgb"].append(obs.images["robot0_eye_in_hand"])
        buffer["state"].append(obs.state)
        buffer["joint_states"].append(np.zeros(7))
        buffer["actions"].append(action)
        obs, success = env.step(action)
        if success:
            break
    return buffer, success


def write_fake_demos(path: Path, tasks: Sequence[int] = (0,), inits: Sequence[int] = (0, 1), image_size: int | None = None) -> Path:
    """A collect-layout HDF5 of successful scripted fake-env episodes (protocol vita-vla; images as
    rendered unless `image_size`)."""
    protocol = protocols().get("vita-vla")
    writer = DemoWriter(path, protocol, "scripted-fake")
    for task in tasks:
        env = FakeEnv(EnvSpec.from_protocol(protocol, SUITE, task, image_size=image_size))
        args = {"bddl_file": f"{SUITE}_{task}.bddl", "problem_name": "fake", "env_kwargs": {}}
        for init in inits:
            buffer, success = scripted_episode(env, init)
            assert success, f"scripted fake episode {task}/{init} did not reach its goal"
            record = EpisodeRecord(SUITE, task, env.language, init, 0, True, len(buffer["actions"]), 1.0, "ok")
            writer.add(record, buffer, args)
    writer.close()
    return path
