"""Robustness-suite variants: each task of LIBERO-Plus / LIBERO-PRO is a perturbed LIBERO task, with
its perturbation category and level. Tables live in `vla_bench/data/variants/` (scripts/make_robust_variants.py).

Selection (`--variants`): comma-separated terms; a term is a category (`camera`), a level (`L3`, or a
range `L2-4`) or a base suite (`libero_goal`). Terms of one kind are alternatives, kinds combine:
`camera,light,L4-5,libero_goal` = camera or light variants of level 4 or 5 on libero_goal tasks. The
term `installed` keeps only variants whose files are all installed here (see envs/robust_setup.py).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import random
import re

from vla_bench import data
from vla_bench.errors import VlaBenchError
from vla_bench.specs import Suite

VARIANTS_DIR = "variants"  # package data folder (vla_bench/data/variants)
UNRATED = None  # LIBERO-Plus leaves 121 light variants without a difficulty level
# Display order: LIBERO-Plus's seven dimensions as its leaderboard lists them, then LIBERO-PRO's four.
CATEGORY_ORDER = ("camera", "robot", "language", "light", "background", "noise", "layout", "object", "swap", "task")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One perturbed task: which files build it and which perturbation it is."""

    task_id: int
    base_suite: str
    base_task: str
    name: str
    category: str
    level: int | None
    bddl: str  # relative to the package's bddl_files folder
    init: str  # relative to the package's init_files folder
    requires: tuple[str, ...]  # asset files (relative to the assets folder) or package files it needs

    def labels(self) -> dict[str, object]:
        """The fields every episode record of this variant carries."""
        return {"variant": self.name, "category": self.category, "level": self.level, "base_suite": self.base_suite}


@functools.cache
def variants(suite_name: str, table: str) -> tuple[Variant, ...]:
    """The variants of a robustness suite, in task-id order."""
    path = data.resource(f"{VARIANTS_DIR}/{table}")
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if table.endswith(".gz") else raw
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    result = tuple(
        Variant(
            task_id=int(row["task_id"]),
            base_suite=row["base_suite"],
            base_task=row["base_task"],
            name=row["name"],
            category=row["category"],
            level=int(row["level"]) if row["level"] else UNRATED,
            bddl=row["bddl"],
            init=row["init"],
            requires=tuple(row["requires"].split()),
        )
        for row in rows
    )
    if [v.task_id for v in result] != list(range(len(result))):
        raise ValueError(f"{path}: task ids must be 0..n-1 in order")
    return result


def suite_variants(suite: Suite) -> tuple[Variant, ...]:
    if suite.variants is None:
        raise VlaBenchError(f"suite {suite.name} has no variants (it is not a robustness suite)")
    return variants(suite.name, suite.variants)


def categories(suite: Suite) -> list[str]:
    """The suite's categories in display order (CATEGORY_ORDER)."""
    found = set(v.category for v in suite_variants(suite))
    return [c for c in CATEGORY_ORDER if c in found] + sorted(found - set(CATEGORY_ORDER))


def levels(suite: Suite) -> list[int]:
    return sorted({v.level for v in suite_variants(suite) if v.level is not None})


@dataclasses.dataclass(frozen=True)
class Selection:
    """A parsed --variants value: allowed categories, levels and base suites (empty: any)."""

    categories: frozenset[str] = frozenset()
    levels: frozenset[int] = frozenset()
    base_suites: frozenset[str] = frozenset()
    installed: bool = False  # only variants whose files are all installed here (term `installed`)

    def matches(self, variant: Variant) -> bool:
        return (
            (not self.categories or variant.category in self.categories)
            and (not self.levels or variant.level in self.levels)
            and (not self.base_suites or variant.base_suite in self.base_suites)
        )


INSTALLED = "installed"
_LEVEL = re.compile(r"^(?:l|level)(\d+)(?:-(\d+))?$", re.I)


def parse_selection(text: str, suites: tuple[Suite, ...]) -> Selection:
    """Parse --variants against the robustness suites of a run; unknown terms raise one line listing
    the known categories, levels and base suites."""
    known_categories: list[str] = []
    known_levels: list[int] = []
    known_bases: list[str] = []
    for suite in suites:
        known_categories += [c for c in categories(suite) if c not in known_categories]
        known_levels += [lv for lv in levels(suite) if lv not in known_levels]
        known_bases += [b for b in dict.fromkeys(v.base_suite for v in suite_variants(suite)) if b not in known_bases]
    chosen_categories: set[str] = set()
    chosen_levels: set[int] = set()
    chosen_bases: set[str] = set()
    terms = [t.strip() for t in text.split(",") if t.strip()]
    if not terms:
        raise VlaBenchError("--variants: empty selection")
    installed = False
    for term in terms:
        level = _LEVEL.match(term)
        if term.lower() == INSTALLED:
            installed = True
        elif term.lower() in known_categories:
            chosen_categories.add(term.lower())
        elif term in known_bases:
            chosen_bases.add(term)
        elif level and known_levels:
            low = int(level.group(1))
            high = int(level.group(2) or low)
            wanted = set(range(low, high + 1))
            if high < low or not wanted <= set(known_levels):
                raise VlaBenchError(f"--variants: unknown level {term!r}; known levels: {', '.join(f'L{x}' for x in known_levels)}")
            chosen_levels |= wanted
        else:
            kind = "level" if level else "category"
            levels_text = ", ".join(f"L{x}" for x in known_levels) or "none (these suites have no levels)"
            raise VlaBenchError(
                f"--variants: unknown {kind} {term!r}; known categories: {', '.join(known_categories)}; "
                f"levels: {levels_text}; base suites: {', '.join(known_bases)}; or {INSTALLED}"
            )
    return Selection(frozenset(chosen_categories), frozenset(chosen_levels), frozenset(chosen_bases), installed)


def _rank(category: str) -> int:
    return CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)


def sample(variants_: list[Variant], limit: int, seed: int) -> list[Variant]:
    """A fixed, seeded subset of `limit` variants spread evenly over their categories (the first
    categories in table order get one more when `limit` does not divide), kept in task-id order.
    It depends only on the list, the limit and the seed: never on workers, shards or resumes."""
    if limit >= len(variants_):
        return list(variants_)
    groups: dict[str, list[Variant]] = {}
    for variant in sorted(variants_, key=lambda v: _rank(v.category)):
        groups.setdefault(variant.category, []).append(variant)
    for members in groups.values():
        members.sort(key=lambda v: v.task_id)
    quota = {name: limit // len(groups) for name in groups}
    for name in list(groups)[: limit % len(groups)]:
        quota[name] += 1
    spare = 0
    for name in groups:  # a category smaller than its quota passes the rest on
        quota[name] += spare
        spare = max(0, quota[name] - len(groups[name]))
        quota[name] -= spare
    rng = random.Random(f"vla_bench.variants/{seed}")
    chosen: set[int] = set()
    for name, members in groups.items():
        chosen |= {v.task_id for v in rng.sample(members, quota[name])}
    return [v for v in variants_ if v.task_id in chosen]
