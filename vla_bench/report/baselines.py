"""Published success rates (package data `vla_bench/data/baselines.toml`) as comparison columns."""

from __future__ import annotations

import dataclasses
import functools

from vla_bench import data as package_data
from vla_bench import specs
from vla_bench.errors import VlaBenchError
from vla_bench.registry import Registry


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One model's published LIBERO success rates, as fractions in [0, 1]."""

    name: str
    model: str
    source: str
    protocol: str
    success: dict[str, float]
    average: float | None = None
    protocol_note: str | None = None
    categories: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)  # (suite, category) -> rate

    def __post_init__(self) -> None:
        for suite, rate in self.success.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"baseline {self.name}: {suite} rate {rate} outside [0, 1]")


@functools.cache
def baselines() -> Registry[Baseline]:
    table = package_data.read_toml("baselines.toml")
    registry: Registry[Baseline] = Registry("baseline")
    known_suites = set(specs.suites().names())
    known_protocols = set(specs.protocols().names())
    for name, entry in table.items():
        unknown = set(entry["success"]) - known_suites
        if unknown:
            raise ValueError(f"baseline {name}: unknown suites {sorted(unknown)}")
        if entry["protocol"] not in known_protocols:
            raise ValueError(f"baseline {name}: unknown protocol {entry['protocol']!r}")
        percent = entry.get("average")
        registry.add(
            name,
            Baseline(
                name=name,
                model=entry["model"],
                source=entry["source"],
                protocol=entry["protocol"],
                success={suite: value / 100 for suite, value in entry["success"].items()},
                average=None if percent is None else percent / 100,
                protocol_note=entry.get("protocol_note"),
                categories={
                    (suite, category): value / 100
                    for suite, table in entry.get("categories", {}).items()
                    for category, value in table.items()
                },
            ),
        )
    return registry


def select_baselines(spec: str | None) -> list[Baseline]:
    """Baselines named in a --baselines value: "NAME,NAME" or "all"; None gives none."""
    if spec is None:
        return []
    registry = baselines()
    if spec.strip() == "all":
        return [registry.get(name) for name in registry]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise VlaBenchError("--baselines: empty list (give names, or 'all')")
    chosen = [registry.get(name) for name in names]
    if len({b.name for b in chosen}) != len(chosen):
        raise VlaBenchError(f"--baselines: {spec!r} names a baseline twice")
    return chosen
