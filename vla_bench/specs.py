"""Suites and protocols, loaded from the package data `vla_bench/data/{suites,protocols}.toml`."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from vla_bench import data
from vla_bench.registry import Registry

STATE_KINDS = ("axis_angle", "euler")
EXECUTION_MODES = ("single", "chunk", "temporal_ensemble")
GRIPPER_CONVENTIONS = ("binarize", "threshold")


@dataclasses.dataclass(frozen=True)
class Suite:
    """A LIBERO task suite."""

    name: str
    description: str
    n_tasks: int
    init_states_per_task: int
    aliases: tuple[str, ...] = ()
    variants: str | None = None  # robustness suites: the variant table (vla_bench/data/variants/); a task is a variant
    package: str | None = None  # the installed package holding its BDDL and init files (robustness suites)
    protocols: tuple[str, ...] = ()  # protocols it may run under (robustness suites); empty: the standard ones
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n_tasks <= 0 or self.init_states_per_task <= 0:
            raise ValueError(f"suite {self.name}: n_tasks and init_states_per_task must be positive")
        if (self.variants is None) != (self.package is None) or (self.variants is not None and not self.protocols):
            raise ValueError(f"suite {self.name}: a robustness suite needs variants, package and protocols")

    @property
    def robust(self) -> bool:
        """Whether this is a robustness suite (perturbed variants of LIBERO tasks)."""
        return self.variants is not None


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Every constant of an evaluation protocol that can change a success rate."""

    name: str
    description: str
    sources: tuple[str, ...]
    render_size: int
    cameras: tuple[str, ...]
    flip_images: bool
    model_image_size: int
    settle_steps: int
    settle_action: tuple[float, ...]
    trials_per_task: int
    env_seed: int
    state: str
    action_chunk: int
    execution: str
    history: int
    gripper: str
    max_steps: dict[str, int]
    ensemble_k: float | None = None
    robustness: bool = False  # a robustness protocol: only for the suites that name it

    def allows(self, suite: Suite) -> bool:
        """Whether `suite` may be evaluated under this protocol."""
        return self.name in suite.protocols if suite.robust else not self.robustness

    def __post_init__(self) -> None:
        if self.state not in STATE_KINDS:
            raise ValueError(f"protocol {self.name}: state must be one of {STATE_KINDS}")
        if self.execution not in EXECUTION_MODES:
            raise ValueError(f"protocol {self.name}: execution must be one of {EXECUTION_MODES}")
        if self.gripper not in GRIPPER_CONVENTIONS:
            raise ValueError(f"protocol {self.name}: gripper must be one of {GRIPPER_CONVENTIONS}")
        if len(self.settle_action) != 7:
            raise ValueError(f"protocol {self.name}: settle_action must have 7 entries")
        for value in (self.render_size, self.model_image_size, self.trials_per_task, self.action_chunk, self.history):
            if value <= 0:
                raise ValueError(f"protocol {self.name}: sizes and counts must be positive")

    def max_steps_for(self, suite: str) -> int:
        """Step limit of a suite, or of a variant's base suite (robustness protocols key by base suite)."""
        return self.max_steps[suite]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.cache
def suites() -> Registry[Suite]:
    registry: Registry[Suite] = Registry("suite")
    for name, entry in data.read_toml("suites.toml").items():
        aliases = tuple(entry.pop("aliases", ()))
        protocols_ = tuple(entry.pop("protocols", ()))
        sources = tuple(entry.pop("sources", ()))
        registry.add(name, Suite(name=name, aliases=aliases, protocols=protocols_, sources=sources, **entry), aliases)
    return registry


@functools.cache
def protocols() -> Registry[Protocol]:
    registry: Registry[Protocol] = Registry("protocol")
    suite_names = {name for name in suites() if not suites().get(name).robust}
    for name, entry in data.read_toml("protocols.toml").items():
        protocol = Protocol(
            name=name,
            sources=tuple(entry.pop("sources")),
            cameras=tuple(entry.pop("cameras")),
            settle_action=tuple(float(a) for a in entry.pop("settle_action")),
            **entry,
        )
        missing = set() if protocol.robustness else suite_names - set(protocol.max_steps)
        if missing:
            raise ValueError(f"protocol {name}: no max_steps for {sorted(missing)}")
        registry.add(name, protocol)
    return registry


DEFAULT_PROTOCOL = "openvla"


def default_protocol(suite_names: list[str]) -> str:
    """The protocol a run uses when none is named: a robustness suite's own, else `openvla`."""
    registry = suites()
    for name in suite_names:
        suite = registry.get(name)
        if suite.robust:
            return suite.protocols[0]
    return DEFAULT_PROTOCOL
