"""The serial executor and episode runner on the fake env."""

from typing import Sequence

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.envs.fake import FakeBehaviour, FakeEnv
from vla_bench.episodes import Episode, make_plan
from vla_bench.policies import POLICIES, Policy, PolicyContext
from vla_bench.policies.builtin import ZeroPolicy
from vla_bench.rollout import EnvOptions, SerialExecutor, run_episode
from vla_bench.envs import EnvSpec


class GoalSeeker(Policy):
    """Uses the fake env's privileged goal to walk straight to it."""

    uses_images = False

    def __init__(self, env: FakeEnv, gain: float = 10.0) -> None:
        self.env, self.gain = env, gain

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        delta = np.clip(self.gain * (self.env.goal_position - observations[0].state[:3]), -1, 1)
        return np.concatenate([delta, np.zeros(3), [-1.0]])[None]


class BadPolicy(Policy):
    def __init__(self, output: np.ndarray) -> None:
        self.output = output

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        return self.output


def fake_env(openvla, behaviour=FakeBehaviour()) -> FakeEnv:
    return FakeEnv(EnvSpec.from_protocol(openvla, "libero_spatial", 0), behaviour)


def test_success_stops_the_episode(openvla):
    env = fake_env(openvla)
    record = run_episode(env, GoalSeeker(env), Episode("libero_spatial", 0, 3, 0, 100))
    assert record.status == "ok" and record.success and 0 < record.steps < 100
    assert (record.suite, record.task_id, record.init_idx, record.task) == ("libero_spatial", 0, 3, env.language)


def test_failure_runs_to_max_steps(openvla):
    env = fake_env(openvla)
    record = run_episode(env, ZeroPolicy(), Episode("libero_spatial", 0, 3, 0, 17))
    assert record.status == "ok" and not record.success and record.steps == 17


def test_nan_and_misshaped_actions_are_episode_errors(openvla):
    env = fake_env(openvla)
    nan = np.full((1, 7), np.nan)
    record = run_episode(env, BadPolicy(nan), Episode("libero_spatial", 0, 0, 0, 5))
    assert record.status == "error" and "non-finite" in record.error and not record.success
    record = run_episode(env, BadPolicy(np.zeros((1, 6))), Episode("libero_spatial", 0, 0, 0, 5))
    assert record.status == "error" and "expected (1, 7)" in record.error


def test_simulator_crash_is_an_error_not_a_failure(openvla):
    env = fake_env(openvla, FakeBehaviour(crash_at_step=2))
    record = run_episode(env, ZeroPolicy(), Episode("libero_spatial", 0, 0, 0, 5))
    assert record.status == "error" and "FakeSimulatorError: fake simulator crash at step 2" in record.error and record.steps == 2


def test_serial_executor_runs_the_episode_list_in_order(openvla):
    plan = make_plan(suite="libero_spatial,libero_goal", protocol="openvla", tasks="0,1", trials=2, max_steps=4)
    records = list(SerialExecutor("fake", options=EnvOptions(render=False)).run(plan.episodes(), ZeroPolicy(), openvla))
    assert [r.key for r in records] == [e.key for e in plan.episodes()]
    assert all(r.steps == 4 and r.status == "ok" for r in records)


def test_observation_carries_episode_and_step(openvla):
    seen = []

    class Recorder(ZeroPolicy):
        def infer(self, observations):
            seen.append((observations[0].episode, observations[0].step))
            return super().infer(observations)

    run_episode(fake_env(openvla), Recorder(), Episode("libero_spatial", 0, 2, 0, 3))
    assert seen == [("libero_spatial/0/2", 0), ("libero_spatial/0/2", 1), ("libero_spatial/0/2", 2)]
