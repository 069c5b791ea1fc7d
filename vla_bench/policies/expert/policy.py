"""The `expert` policy: a privileged scripted controller planned from the task's BDDL goal."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vla_bench.envs.base import ACTION_DIM, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import POLICIES, Policy, PolicyContext
from vla_bench.policies.expert.controller import HoldSkill, make_skill
from vla_bench.policies.expert.articulate import closed_containers
from vla_bench.policies.expert.goals import parse_goal, with_preconditions


class EpisodePlan:
    """The subgoals of one episode and the skill executing the current one."""

    def __init__(self, priv: dict, funnel: bool = False) -> None:
        """Plan from the first privileged observation of the episode."""
        self.subgoals = with_preconditions(parse_goal(priv["goal"]), closed_containers(priv))
        self.index = 0
        self.funnel = funnel
        self.skill = make_skill(self.subgoals[0], funnel) if self.subgoals else HoldSkill()

    def act(self, priv: dict) -> np.ndarray:
        if self.skill.done and self.index + 1 < len(self.subgoals):
            self.index += 1
            self.skill = make_skill(self.subgoals[self.index], self.funnel)
        elif self.skill.done:
            self.skill = HoldSkill()
        return self.skill.act(priv)


class ExpertPolicy(Policy):
    """Reads privileged simulator state; needs no images. Deterministic given the simulator."""

    uses_images = False
    needs_privileged = True

    def __init__(self, funnel: bool = False) -> None:
        self.funnel = funnel
        self._plans: dict[str, EpisodePlan] = {}

    def start_episode(self, episode: Episode) -> None:
        self._plans.pop(episode.key, None)

    def end_episode(self, episode: Episode) -> None:
        self._plans.pop(episode.key, None)

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        actions = np.empty((len(observations), ACTION_DIM))
        for row, obs in zip(actions, observations):
            if obs.privileged is None:
                raise VlaBenchError("policy 'expert' needs privileged simulator state (env built without it)")
            plan = self._plans.get(obs.episode)
            if plan is None:
                plan = self._plans[obs.episode] = EpisodePlan(obs.privileged, self.funnel)
            row[:] = plan.act(obs.privileged)
        return actions


@POLICIES.register("expert")
def _expert(context: PolicyContext) -> Policy:
    """Privileged scripted expert planned from the BDDL goal (no images; env --env libero)."""
    return ExpertPolicy()


@POLICIES.register("expert-funnel")
def _expert_funnel(context: PolicyContext) -> Policy:
    """The expert with a pick approach that descends while it aligns (no stop above the object).

    Its approach blends into the descent; tried as make distill-small's demonstrator (attempt 6)."""
    return ExpertPolicy(funnel=True)
