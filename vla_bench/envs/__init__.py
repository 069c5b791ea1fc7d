"""Env layer: the real LIBERO env and fakes behind one interface, chosen by name."""

from __future__ import annotations

from typing import Callable

from vla_bench.envs.base import ACTION_DIM, Env, EnvSpec, Observation, check_action
from vla_bench.registry import Registry

EnvFactory = Callable[[EnvSpec], Env]

ENVS: Registry[EnvFactory] = Registry("env")


@ENVS.register("libero")
def _make_libero(spec: EnvSpec) -> Env:
    from vla_bench.envs.libero_env import LiberoEnv

    return LiberoEnv(spec)


@ENVS.register("fake")
def _make_fake(spec: EnvSpec) -> Env:
    from vla_bench.envs.fake import FakeEnv

    return FakeEnv(spec)


def make_env(kind: str, spec: EnvSpec) -> Env:
    return ENVS.get(kind)(spec)


class KindFactory:
    """Picklable env factory for a registered env kind ("libero", "fake"): what executors send to
    their workers when the envs are named rather than given as a callable."""

    def __init__(self, kind: str) -> None:
        ENVS.canonical(kind)  # an unknown kind fails here, naming the known ones
        self.kind = kind

    def __call__(self, spec: EnvSpec) -> Env:
        return make_env(self.kind, spec)


__all__ = ["ACTION_DIM", "ENVS", "Env", "EnvFactory", "EnvSpec", "KindFactory", "Observation", "check_action", "make_env"]
