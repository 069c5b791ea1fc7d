"""Real LIBERO in MuJoCo: the env layer must behave exactly like the reference evaluation loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_bench.cli import main
from vla_bench.envs import EnvSpec
from vla_bench.envs.libero_env import LiberoEnv, load_task
from vla_bench.specs import protocols, suites

pytestmark = pytest.mark.sim

OPENVLA = protocols().get("openvla")


def random_actions(n: int, seed: int = 0) -> np.ndarray:
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(n, 7))
    actions[:, 6] = np.sign(actions[:, 6])
    return actions


@pytest.fixture(scope="module")
def rendered_env():
    env = LiberoEnv(EnvSpec.from_protocol(OPENVLA, "libero_spatial", 0, render=True))
    yield env
    env.close()


@pytest.mark.parametrize("suite", ["libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"])
def test_each_suite_starts_and_steps(suite):
    env = LiberoEnv(EnvSpec.from_protocol(OPENVLA, suite, 0, render=False))
    try:
        assert env.n_init_states == suites().get(suite).init_states_per_task
        assert env.language
        obs = env.start(0, OPENVLA.env_seed)
        assert obs.state.shape == (8,) and np.all(np.isfinite(obs.state)) and obs.images == {}
        for action in random_actions(3):
            obs, success = env.step(action)
            assert not success
    finally:
        env.close()


def test_task_count_matches_installed_benchmark():
    from libero.libero import benchmark

    for name in suites():
        if suites().get(name).robust:  # robustness suites come from their own packages (tests/test_robust*.py)
            continue
        assert benchmark.get_benchmark_dict()[name]().n_tasks == suites().get(name).n_tasks


def test_matches_the_straightforward_loop(rendered_env):
    """make env -> seed -> reset -> set_init_state -> settle no-ops -> step, by hand with LIBERO's own API."""
    from libero.libero.envs import OffScreenRenderEnv

    task, init_states, bddl = load_task("libero_spatial", 0)
    reference = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=256, camera_widths=256)
    try:
        reference.seed(0)
        reference.reset()
        raw = reference.set_init_state(init_states[2])
        for _ in range(10):
            raw, _, _, _ = reference.step([0, 0, 0, 0, 0, 0, -1])
        obs = rendered_env.start(2, 0)
        for action in [None, *random_actions(5, seed=1)]:
            if action is not None:
                raw, _, done, _ = reference.step(action)
                obs, success = rendered_env.step(action)
                assert success == done
            np.testing.assert_array_equal(obs.images["agentview"], raw["agentview_image"][::-1, ::-1])
            np.testing.assert_array_equal(obs.images["robot0_eye_in_hand"], raw["robot0_eye_in_hand_image"][::-1, ::-1])
            np.testing.assert_array_equal(obs.state[:3], raw["robot0_eef_pos"])
            np.testing.assert_array_equal(obs.state[6:], raw["robot0_gripper_qpos"])
    finally:
        reference.close()


def test_axis_angle_matches_robosuite(rendered_env):
    from robosuite.utils.transform_utils import quat2axisangle

    rendered_env.start(0, 0)
    obs, _ = rendered_env.step(np.zeros(7))
    raw = rendered_env.raw.env._get_observations()
    np.testing.assert_allclose(obs.state[3:6], quat2axisangle(raw["robot0_eef_quat"].copy()), atol=1e-12)


def test_replaying_the_same_actions_twice_is_identical(rendered_env):
    """Runs after test_matches_the_straightforward_loop built and closed a second env in this
    process: the scene reuse between episodes must notice that its GL context was disturbed
    (robosuite renders into whichever context is current) and rebuild instead of rendering garbage."""
    actions = random_actions(8, seed=2)
    runs = []
    for _ in range(2):
        trace = [rendered_env.start(1, 0)]
        trace += [rendered_env.step(a)[0] for a in actions]
        runs.append(trace)
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first.state, second.state)
        np.testing.assert_array_equal(first.images["agentview"], second.images["agentview"])


def test_rendering_does_not_change_the_physics(rendered_env):
    """Why `--render auto` may skip cameras for policies that never read them."""
    headless = LiberoEnv(EnvSpec.from_protocol(OPENVLA, "libero_spatial", 0, render=False))
    try:
        a, b = rendered_env.start(3, 0), headless.start(3, 0)
        np.testing.assert_array_equal(a.state, b.state)
        for action in random_actions(10, seed=3):
            (a, sa), (b, sb) = rendered_env.step(action), headless.step(action)
            np.testing.assert_array_equal(a.state, b.state)
            assert sa == sb
        np.testing.assert_array_equal(rendered_env.raw.sim.data.qpos, headless.raw.sim.data.qpos)
    finally:
        headless.close()


def test_episode_forced_to_its_goal_reports_success():
    """libero_goal task 0 is "open the middle drawer of the cabinet": open it with LIBERO's joint setter."""
    env = LiberoEnv(EnvSpec.from_protocol(OPENVLA, "libero_goal", 0, render=False))
    try:
        env.start(0, 0)
        noop = np.array(OPENVLA.settle_action)
        assert env.step(noop)[1] is False
        goal = env.raw.env.parsed_problem["goal_state"]
        assert goal == [["open", "wooden_cabinet_1_middle_region"]]
        env.raw.env.object_states_dict["wooden_cabinet_1_middle_region"].set_joint(-0.15)
        env.raw.sim.forward()
        assert env.step(noop)[1] is True
    finally:
        env.close()


def test_cli_eval_on_real_libero(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["eval", "--suite", "libero_object", "--tasks", "0", "--trials", "2", "--policy", "zero",
                 "--max-steps", "20", "--output", str(out), "--no-progress"]) == 0
    assert "| libero_object | 0.0% | 0 / 2 | 0 |" in capsys.readouterr().out
    records = sorted((json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()), key=lambda r: r["init_idx"])
    assert [(r["task"], r["init_idx"], r["steps"], r["status"]) for r in records] == [
        ("pick up the alphabet soup and place it in the basket", 0, 20, "ok"),
        ("pick up the alphabet soup and place it in the basket", 1, 20, "ok"),
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["versions"]["mujoco"] == "3.3.7" and run["versions"]["libero"]["name"] == "rlinf-libero"
    assert run["renderer"] == "egl" and run["rendering"] is False
