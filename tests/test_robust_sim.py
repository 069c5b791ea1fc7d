"""Robustness suites on the real simulator: one LIBERO-Plus variant per category builds, steps, and
renders differently from the unperturbed scene where it should (camera, noise; robot and layout move
things) and identically where it should not (language); a variant whose assets are missing is a
one-line error. The unperturbed reference is a language variant of the same task in LIBERO-Plus's own
env (it changes only the instruction): LIBERO-Plus's scene files render a few pixels differently from
rlinf-libero's (8% of pixels, mean difference 0.25/255 on libero_goal task 0), with the same sim state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_bench.envs import EnvSpec
from vla_bench.envs.libero_env import LiberoEnv
from vla_bench.errors import VlaBenchError
from vla_bench.specs import protocols, suites
from vla_bench.variants import suite_variants

pytestmark = pytest.mark.sim

SIZE = 64  # small renders keep this file fast; the comparisons do not depend on the size
BASE_SUITE = "libero_goal"  # variants of its task 0, open_the_middle_drawer_of_the_cabinet


def _variant_id(category: str, pattern: str = "", nth: int = 0) -> int:
    """The nth offline-available libero_goal task-0 variant of a category."""
    from vla_bench.envs.robust_setup import missing_files

    found = [
        v.task_id
        for v in suite_variants(suites().get("libero_plus"))
        if v.base_suite == BASE_SUITE and v.base_task == "open_the_middle_drawer_of_the_cabinet" and v.category == category
        and pattern in v.name and not missing_files("libero_plus", v.task_id)
    ]  # fmt: skip
    assert len(found) > nth, f"no offline {category} variant"
    return found[nth]


def _observe(suite: str, task_id: int) -> tuple:
    protocol = protocols().get(suites().get(suite).protocols[0])
    spec = dataclasses.replace(EnvSpec.from_protocol(protocol, suite, task_id), render_size=SIZE)
    env = LiberoEnv(spec)
    try:
        obs = env.start(0, protocol.env_seed)
        obs, _ = env.step(np.zeros(7))
        return obs, env.language, env.raw.get_sim_state()
    finally:
        env.close()


@pytest.fixture(scope="module")
def base():
    """The unperturbed scene in LIBERO-Plus's env: a language variant (only its instruction differs)."""
    return _observe("libero_plus", _variant_id("language"))


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or bool(np.any(a != b))


@pytest.mark.parametrize(
    "category, pattern, agentview, wrist, state",
    [
        ("camera", "", "differs", "same", "same"),
        ("noise", "", "differs", "same", "same"),
        ("language", "", "same", "same", "same"),  # a second language variant
        ("robot", "", "differs", "differs", "differs"),
        ("layout", "_level", "differs", None, "differs"),
    ],
)
def test_variant_builds_steps_and_renders_as_its_perturbation(base, category, pattern, agentview, wrist, state):
    base_obs, base_language, base_sim = base
    obs, language, sim = _observe("libero_plus", _variant_id(category, pattern, nth=int(category == "language")))
    expect = {"differs": True, "same": False}
    assert _differs(obs.images["agentview"], base_obs.images["agentview"]) == expect[agentview]
    if wrist is not None:
        assert _differs(obs.images["robot0_eye_in_hand"], base_obs.images["robot0_eye_in_hand"]) == expect[wrist]
    assert (not np.allclose(obs.state, base_obs.state, atol=1e-9) or _differs(sim, base_sim)) == expect[state]
    if category == "language":
        assert language != base_language


def test_light_variant_without_its_assets_is_one_line():
    from vla_bench.envs.robust_setup import missing_files

    light = next(v for v in suite_variants(suites().get("libero_plus")) if v.category == "light")
    if not missing_files("libero_plus", light.task_id):
        pytest.skip("LIBERO-Plus light assets are installed here")
    with pytest.raises(VlaBenchError, match=r"needs missing files scenes/lights/.*assets\.zip"):
        _observe("libero_plus", light.task_id)


def test_libero_pro_swap_variant_moves_objects():
    table = suite_variants(suites().get("libero_pro_goal"))
    swap = next(v for v in table if v.category == "swap")
    plain = next(v for v in table if v.category == "language" and v.base_task == swap.base_task)
    _, swap_language, swap_sim = _observe("libero_pro_goal", swap.task_id)
    _, plain_language, plain_sim = _observe("libero_pro_goal", plain.task_id)
    assert _differs(swap_sim, plain_sim)
    assert swap_language != plain_language


def test_noise_variant_runs_without_cameras():
    """Scripted policies run without rendering; a noise variant then has no image to blur."""
    protocol = protocols().get("libero-plus")
    env = LiberoEnv(EnvSpec.from_protocol(protocol, "libero_plus", _variant_id("noise"), render=False, privileged=True))
    try:
        env.start(0, protocol.env_seed, render=False)
        obs, _ = env.step(np.zeros(7), render=False)
        assert obs.images == {} and obs.privileged is not None
    finally:
        env.close()
