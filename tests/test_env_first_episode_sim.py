"""A scene-reusing LIBERO env starts its first episode on the scene its constructor compiled (one
compile per task instead of two) and that episode equals a hard-reset env's, step by step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_bench.envs import EnvSpec, make_env
from vla_bench.specs import protocols

pytestmark = pytest.mark.sim


def episode(env, init_idx: int, actions: np.ndarray) -> list:
    obs = env.start(init_idx, 0, render=True)
    out = [(obs.state, obs.images, False)]
    for action in actions:
        obs, done = env.step(action, render=True)
        out.append((obs.state, obs.images, done))
    sim = env.raw.env.sim
    out.append((sim.get_state().flatten(), {"body_pos": sim.model.body_pos.copy()}, None))
    return out


def test_first_episode_reuses_the_built_scene_and_equals_a_hard_reset():
    protocol = protocols().get("openvla")
    # libero_spatial task 4: a drawer fixture placed by a sampler at every reset
    spec = EnvSpec.from_protocol(protocol, "libero_spatial", 4, fast_reset=True)
    actions = np.random.default_rng(3).uniform(-1, 1, size=(12, 7))
    actions[:, 6] = np.sign(actions[:, 6])
    hard = make_env("libero", dataclasses.replace(spec, fast_reset=False))
    try:
        built = hard.raw.env.sim
        reference = episode(hard, 2, actions)
        assert hard.raw.env.sim is not built  # the hard reset compiled the scene again
    finally:
        hard.close()
    soft = make_env("libero", spec)
    try:
        built = soft.raw.env.sim
        first = episode(soft, 2, actions)
        assert soft.raw.env.sim is built  # no second compile
    finally:
        soft.close()
    assert len(first) == len(reference)
    for step, ((state_r, images_r, done_r), (state_f, images_f, done_f)) in enumerate(zip(reference, first)):
        assert np.array_equal(state_r, state_f) and done_r == done_f, step
        assert images_r.keys() == images_f.keys(), step
        for name in images_r:
            assert np.array_equal(images_r[name], images_f[name]), (step, name)
