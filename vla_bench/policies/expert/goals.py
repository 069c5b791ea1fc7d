"""BDDL goal predicates -> an ordered list of subgoals the expert can execute."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from vla_bench.errors import VlaBenchError

PLACE_PREDICATES = ("on", "in")
ARTICULATE_PREDICATES = ("open", "close", "turnon", "turnoff")

# Opening comes first (a drawer must be open before something goes in), placing next, and
# closing / switching last (close the drawer over what was put in it).
_ORDER = {"open": 0, "on": 1, "in": 1, "close": 2, "turnon": 2, "turnoff": 2}


@dataclasses.dataclass(frozen=True)
class Place:
    """Put `obj` on / in `target` (a body name or a region site name)."""

    obj: str
    target: str
    relation: str  # "on" or "in"


@dataclasses.dataclass(frozen=True)
class Articulate:
    """Move an articulated object (or one of its region sites) to a joint state."""

    obj: str
    state: str  # one of ARTICULATE_PREDICATES


Subgoal = Place | Articulate


def parse_goal(goal: Sequence[Sequence[str]]) -> list[Subgoal]:
    """Subgoals for a conjunction of BDDL predicates (as LIBERO's parsed `goal_state`), in execution
    order; raises VlaBenchError for a predicate the expert cannot achieve."""
    subgoals: list[tuple[int, int, Subgoal]] = []
    for index, predicate in enumerate(goal):
        name, *args = (str(p).lower() if i == 0 else str(p) for i, p in enumerate(predicate))
        if name in PLACE_PREDICATES and len(args) == 2:
            subgoal: Subgoal = Place(obj=args[0], target=args[1], relation=name)
        elif name in ARTICULATE_PREDICATES and len(args) == 1:
            subgoal = Articulate(obj=args[0], state=name)
        else:
            raise VlaBenchError(f"expert cannot plan goal predicate {tuple(predicate)!r}")
        subgoals.append((_ORDER[name], index, subgoal))
    return [s for _, _, s in sorted(subgoals, key=lambda item: (item[0], item[1]))]


def with_preconditions(subgoals: Sequence[Subgoal], closed: set[str]) -> list[Subgoal]:
    """Insert the steps the goal leaves implicit: a region inside a closed articulated container
    (a drawer, a microwave) is opened before anything is put in it, unless the goal opens it."""
    planned: list[Subgoal] = []
    opened = {g.obj for g in subgoals if isinstance(g, Articulate) and g.state == "open"}
    for goal in subgoals:
        if isinstance(goal, Place) and goal.relation == "in" and goal.target in closed and goal.target not in opened:
            planned.append(Articulate(obj=goal.target, state="open"))
            opened.add(goal.target)
        planned.append(goal)
    return planned
