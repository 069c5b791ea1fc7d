"""What makes two runs the same experiment: one definition, read from the run description, with one
variant per use.

A run's identity is a flat mapping `field -> value` (`identity`). Its fields:

    policy.name, policy.checkpoint_sha256, policy.model_identity, image_size     who is evaluated
    protocol.<constant>  every protocol constant that changes how an episode runs (render size,
                         cameras, flip, model image size, settling, env seed, state, chunking,
                         execution, ensembling, history, gripper); not its description and sources
    protocol.name, protocol.trials_per_task, protocol.robustness                  the preset as named
    env, seed, episode_start                                                      how episodes start
    max_steps.<suite>, tasks.<suite>, trials, suites                              which episodes, how long
    versions.<simulator package>                                                  the simulator build
    shard                                                                         which slice of the episodes

Each purpose takes the fields it needs (`PURPOSES`):

    RESUME   continuing a run folder: everything, including the shard.
    MERGE    joining the shards of one run: everything but the shard.
    COMPARE  a candidate against a reference (gate, report columns side by side): the protocol's
             constants, env, seed, episode start and the selection (tasks, trials, step limits) on the
             suites both have; the policy, checkpoint and image size are what is being compared, the
             preset's name and simulator versions are only noted (different package versions do not
             make an experiment different, they may explain a difference).
    COLUMN   runs that form one report column (one policy on several suites, e.g. its libero_plus run
             and its libero_goal run): policy, checkpoint, image size, protocol constants, env, seed,
             episode start, step limits on the suites both have.

Per-suite fields (`max_steps.S`, `tasks.S`) are compared on every suite either run has for RESUME and
MERGE, and only on the suites both have otherwise. A field one side does not state (a hand-written
gate baseline) is not compared; a field stated as None is (an older run.json without episode_start).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, Mapping, Sequence

from vla_bench.results.description import RunDescription
from vla_bench.specs import Protocol

SIMULATOR_PACKAGES = ("mujoco", "robosuite", "libero", "bddl")
PROTOCOL_DOC_FIELDS = ("description", "sources")  # describe a preset, change no outcome
PROTOCOL_PRESET_FIELDS = ("name", "trials_per_task", "robustness")  # the preset as named; the run's own values are its selection
PER_SUITE = ("max_steps", "tasks")


class Purpose(enum.Enum):
    RESUME = "resume"
    MERGE = "merge"
    COMPARE = "compare"
    COLUMN = "column"


POLICY = ("policy.name", "policy.checkpoint_sha256", "policy.model_identity", "image_size")
START = ("env", "seed", "episode_start")
PURPOSES: dict[Purpose, tuple[str, ...]] = {
    # groups of fields, "protocol.*" = the protocol's constants, "preset" = PROTOCOL_PRESET_FIELDS
    Purpose.RESUME: (*POLICY, "protocol.*", "preset", *START, "max_steps", "tasks", "trials", "suites", "versions", "shard"),
    Purpose.MERGE: (*POLICY, "protocol.*", "preset", *START, "max_steps", "tasks", "trials", "suites", "versions"),
    Purpose.COMPARE: ("protocol.*", *START, "max_steps", "tasks", "trials"),
    Purpose.COLUMN: (*POLICY, "protocol.*", *START, "max_steps"),
}
STRICT = (Purpose.RESUME, Purpose.MERGE)  # per-suite fields compared on all suites, not only the common ones


@dataclasses.dataclass(frozen=True)
class Difference:
    """One identity field that differs: its name and the two values."""

    field: str
    left: Any
    right: Any

    def __str__(self) -> str:
        return f"{self.field}: {_short(self.left)} vs {_short(self.right)}"


def protocol_fields(protocol: Protocol) -> dict[str, Any]:
    """`protocol.<constant>` entries (preset fields included, doc fields and its step-limit table left out:
    the run's effective step limits are `max_steps.<suite>`)."""
    values = _plain(dataclasses.asdict(protocol))
    return {f"protocol.{k}": v for k, v in values.items() if k not in PROTOCOL_DOC_FIELDS and k != "max_steps"}


def all_fields(run: RunDescription) -> dict[str, Any]:
    """Every identity field of a run (see the module docstring)."""
    fields: dict[str, Any] = {
        "policy.name": run.policy.name,
        "policy.checkpoint_sha256": run.policy.checkpoint.sha256,
        "policy.model_identity": (run.policy.model or {}).get("identity"),
        "image_size": run.image_size,
        **protocol_fields(run.protocol),
        "env": run.env,
        "seed": run.seed,
        "episode_start": run.episode_start,
        **{f"max_steps.{suite}": steps for suite, steps in run.max_steps.items()},
        **{f"tasks.{suite}": list(ids) for suite, ids in run.tasks.items()},
        "trials": run.trials,
        "suites": list(run.suites),
        **{f"versions.{name}": (run.versions or {}).get(name) for name in SIMULATOR_PACKAGES},
        "shard": None if run.shard is None else dataclasses.asdict(run.shard),
    }
    return json.loads(json.dumps(fields, default=str))  # as read back from run.json: a live run compares equal to its file


def stated_identity(purpose: Purpose, *, protocol: Protocol | dict[str, Any] | None = None, **stated: Any) -> dict[str, Any]:
    """The identity fields a source that is not a run folder states (a gate baseline written by
    `report --json` or by hand), named as `identity` names them; what it does not state is left out
    and so not compared. `protocol`: a Protocol or an object of some of its constants; `stated`:
    env, seed, trials, episode_start, image_size, max_steps ({suite: steps}), tasks ({suite: ids})."""
    fields: dict[str, Any] = {}
    if isinstance(protocol, Protocol):
        fields.update(protocol_fields(protocol))
    elif protocol is not None:
        fields.update({f"protocol.{k}": v for k, v in protocol.items() if k not in PROTOCOL_DOC_FIELDS and k != "max_steps"})
    for name, value in stated.items():
        if value is None:
            continue
        if name in PER_SUITE:
            fields.update({f"{name}.{suite}": v for suite, v in value.items()})
        else:
            fields[name] = value
    return select(json.loads(json.dumps(fields, default=str)), purpose)


def select(fields: Mapping[str, Any], purpose: Purpose) -> dict[str, Any]:
    """The entries of `fields` that `purpose` compares."""
    return {name: value for name, value in fields.items() if _group(name) in PURPOSES[purpose]}


def identity(run: RunDescription, purpose: Purpose) -> dict[str, Any]:
    """What makes `run` the experiment it is, for `purpose`."""
    return select(all_fields(run), purpose)


def suite_of(field: str) -> str | None:
    """The suite a per-suite field is about ("max_steps.libero_plus/libero_goal" -> "libero_plus")."""
    head, _, rest = field.partition(".")
    return rest.split("/")[0] if head in PER_SUITE else None


def differences(
    left: Mapping[str, Any], right: Mapping[str, Any], purpose: Purpose, suites: Sequence[str] | None = None
) -> list[Difference]:
    """The fields of two identities (from `identity`, or partial ones) that differ, in field order.
    `suites` limits the per-suite fields to those suites."""
    strict = purpose in STRICT
    names = list(dict.fromkeys([*left, *right]))
    found = []
    for name in names:
        suite = suite_of(name)
        if suites is not None and suite is not None and suite not in suites:
            continue
        if name not in left or name not in right:
            if not (strict and suite is not None):
                continue  # not stated by one side (or a suite only one side has): not compared
        if left.get(name) != right.get(name):
            found.append(Difference(name, left.get(name), right.get(name)))
    return found


def identity_differences(left: RunDescription, right: RunDescription, purpose: Purpose) -> list[Difference]:
    """How two runs differ as experiments, for `purpose` (empty: the same experiment)."""
    return differences(identity(left, purpose), identity(right, purpose), purpose)


def _group(field: str) -> str:
    head, _, rest = field.partition(".")
    if head == "protocol":
        return "preset" if rest in PROTOCOL_PRESET_FIELDS else "protocol.*"
    if head in ("policy",):
        return field
    return head


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
