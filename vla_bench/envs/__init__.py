"""Env layer: the real LIBERO env and fakes behind one interface, registered as env kinds.

An `EnvKind` carries everything the rest of the code needs to know about one kind of env: how to
build it, how much memory one worker process holds, which exceptions are its simulator failing, how
to check the installation before a run, and whether its results are LIBERO results. Nothing outside
this package compares env kind names.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Callable, Sequence

from vla_bench.envs.base import ACTION_DIM, Env, EnvSpec, Observation, SimulatorError, check_action
from vla_bench.registry import Registry

EnvFactory = Callable[[EnvSpec], Env]


@dataclasses.dataclass(frozen=True)
class EnvKind:
    """One registered kind of env."""

    name: str
    build: EnvFactory
    gb_per_worker: float  # peak RSS of one env worker process, for capping the number of workers
    error_classes: tuple[str, ...] = ()  # "module:Class" exceptions meaning the simulator failed
    libero_results: bool = False  # its success rates are LIBERO results (reports warn otherwise)
    prepare: Callable[..., None] | None = None  # (suites, episodes, assets) -> None; raises VlaBenchError
    renderer: Callable[[], str | None] = lambda: None  # the rendering backend recorded in run.json

    def simulator_errors(self) -> tuple[type[BaseException], ...]:
        """The exception classes meaning this simulator failed: `SimulatorError` and the simulator's own.

        Only classes of modules already imported are returned: an exception of a class whose module was
        never imported cannot have been raised, and importing robosuite to find out takes seconds.
        """
        found: list[type[BaseException]] = [SimulatorError]
        for spec in self.error_classes:
            module_name, _, attr = spec.partition(":")
            module = sys.modules.get(module_name)
            if module is not None and hasattr(module, attr):
                found.append(getattr(module, attr))
        return tuple(found)


ENV_KINDS: Registry[EnvKind] = Registry("env")


def _build_libero(spec: EnvSpec) -> Env:
    from vla_bench.envs.libero_env import LiberoEnv

    return LiberoEnv(spec)


def _prepare_libero(suites: Sequence, episodes: Sequence, assets: str | None = None) -> None:
    from vla_bench.envs.libero_env import asset_cache_mode
    from vla_bench.envs.libero_setup import ensure_ready

    ensure_ready()  # fail before creating the run folder if LIBERO is not usable
    asset_cache_mode()  # and on a bad $VLA_BENCH_ASSET_CACHE
    if any(getattr(s, "robust", False) for s in suites):
        from vla_bench.envs.robust_setup import check_episodes, set_assets_dir

        set_assets_dir(assets)
        check_episodes(suites, episodes)  # the packages and every file the chosen variants need


def _libero_renderer() -> str:
    from vla_bench.results.provenance import renderer

    return renderer()


def _build_fake(spec: EnvSpec) -> Env:
    from vla_bench.envs.fake import FakeEnv

    return FakeEnv(spec)


# A rendered LIBERO worker peaks at 1.80 GB (bench/env_memory.py,
# bench/results/env-memory-2026-11-30-vm-after.md), rounded up; the fake env is tiny.
ENV_KINDS.add(
    "libero",
    EnvKind(
        "libero",
        _build_libero,
        gb_per_worker=1.9,
        error_classes=("mujoco:FatalError", "robosuite.utils.errors:robosuiteError"),
        libero_results=True,
        prepare=_prepare_libero,
        renderer=_libero_renderer,
    ),
)
ENV_KINDS.add("fake", EnvKind("fake", _build_fake, gb_per_worker=0.2))


def env_kind(name: str) -> EnvKind:
    """The registered env kind `name` (an unknown name lists the known ones)."""
    return ENV_KINDS.get(name)


def simulator_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a simulator failed (an episode error, not a task failure), over every kind."""
    found: list[type[BaseException]] = []
    for name in ENV_KINDS:
        for cls in ENV_KINDS.get(name).simulator_errors():
            if cls not in found:
                found.append(cls)
    return tuple(found)


def make_env(kind: str, spec: EnvSpec) -> Env:
    return env_kind(kind).build(spec)


class KindFactory:
    """Picklable env factory for a registered env kind: what executors send to their workers when
    the envs are named rather than given as a callable."""

    def __init__(self, kind: str) -> None:
        ENV_KINDS.canonical(kind)  # an unknown kind fails here, naming the known ones
        self.kind = kind

    def __call__(self, spec: EnvSpec) -> Env:
        return make_env(self.kind, spec)


__all__ = [
    "ACTION_DIM",
    "ENV_KINDS",
    "Env",
    "EnvFactory",
    "EnvKind",
    "EnvSpec",
    "KindFactory",
    "Observation",
    "SimulatorError",
    "check_action",
    "env_kind",
    "make_env",
    "simulator_errors",
]
