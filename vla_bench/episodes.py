"""The episode list of a run: which (suite, task, init state, seed) episodes run, fixed before scheduling."""

from __future__ import annotations

import dataclasses
from typing import Any

from vla_bench.errors import VlaBenchError
from vla_bench.specs import Protocol, Suite, default_protocol, protocols, suites


@dataclasses.dataclass(frozen=True, order=True)
class Episode:
    """Identity of one episode; independent of which worker runs it or when."""

    suite: str
    task_id: int
    init_idx: int
    seed: int
    max_steps: int
    # robustness suites: the variant's perturbation (recorded in every episode record); None otherwise
    variant: str | None = dataclasses.field(default=None, compare=False)
    category: str | None = dataclasses.field(default=None, compare=False)
    level: int | None = dataclasses.field(default=None, compare=False)
    base_suite: str | None = dataclasses.field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.task_id}/{self.init_idx}"

    def labels(self) -> dict[str, Any]:
        """The perturbation fields of its record (all None outside robustness suites)."""
        return {"variant": self.variant, "category": self.category, "level": self.level, "base_suite": self.base_suite}


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """The resolved selection of a run: protocol, suites, tasks, trials, limits and deviations."""

    protocol: Protocol
    suites: tuple[Suite, ...]
    tasks: dict[str, tuple[int, ...]]
    trials: int
    max_steps: dict[str, int]
    seed: int
    deviations: dict[str, Any]

    def episodes(self) -> list[Episode]:
        """Episodes in canonical order: suite, task, init state."""
        return [
            self.episode(suite, task_id, init_idx)
            for suite in self.suites
            for task_id in self.tasks[suite.name]
            for init_idx in range(self.trials)
        ]

    def episode(self, suite: Suite, task_id: int, init_idx: int) -> Episode:
        if not suite.robust:
            return Episode(suite.name, task_id, init_idx, self.seed, self.max_steps[suite.name])
        from vla_bench.variants import suite_variants

        variant = suite_variants(suite)[task_id]
        steps = self.max_steps[f"{suite.name}/{variant.base_suite}"]
        return Episode(suite.name, task_id, init_idx, self.seed, steps, **variant.labels())


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """Parse "0,3,5-7" into (0, 3, 5, 6, 7)."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                values.extend(range(lo, hi + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise VlaBenchError(f"{what}: cannot parse {part!r} (expected integers like 0,3,5-7)") from None
    if not values:
        raise VlaBenchError(f"{what}: empty list")
    if len(set(values)) != len(values):
        raise VlaBenchError(f"{what}: {text!r} names an entry twice")
    return tuple(values)


def parse_suite_list(text: str) -> tuple[Suite, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise VlaBenchError("--suite: no suite given")
    registry = suites()
    resolved = tuple(registry.get(name) for name in names)
    if len({s.name for s in resolved}) != len(resolved):
        raise VlaBenchError(f"--suite: {text!r} names a suite twice")
    return resolved


def make_plan(
    *,
    suite: str,
    protocol: str,
    tasks: str | None = None,
    trials: int | None = None,
    max_steps: int | None = None,
    seed: int | None = None,
    variants: str | None = None,
    limit: int | None = None,
) -> RunPlan:
    """Resolve the user's selection against the protocol; every override is recorded as a deviation.
    `protocol` None: the suites' own (a robustness suite's protocol, else openvla)."""
    chosen = parse_suite_list(suite)
    proto = protocols().get(protocol or default_protocol([s.name for s in chosen]))
    for s in chosen:
        if not proto.allows(s):
            if s.robust:
                raise VlaBenchError(f"--protocol {proto.name}: suite {s.name} is evaluated under {' or '.join(s.protocols)} (its paper's protocol)")
            raise VlaBenchError(f"--protocol {proto.name}: a robustness protocol; suite {s.name} is a standard suite (use openvla or vita-vla)")
    if len({s.robust for s in chosen}) > 1:
        raise VlaBenchError(f"--suite {suite}: do not mix robustness suites with standard suites in one run (their protocols differ)")
    deviations: dict[str, Any] = {}

    task_map: dict[str, tuple[int, ...]] = {}
    if tasks is None:
        task_map = {s.name: tuple(range(s.n_tasks)) for s in chosen}
    else:
        ids = parse_int_list(tasks, "--tasks")
        for s in chosen:
            bad = [t for t in ids if not 0 <= t < s.n_tasks]
            if bad:
                raise VlaBenchError(f"--tasks: task id {bad[0]} out of range for {s.name} (0..{s.n_tasks - 1})")
            task_map[s.name] = ids
        deviations["tasks"] = {"protocol": "all", "run": list(ids)}

    robust = [s for s in chosen if s.robust]
    if (variants is not None or limit is not None) and not robust:
        raise VlaBenchError("--variants and --limit select variants of robustness suites (libero_plus, libero_pro_*); use --tasks for standard suites")
    if robust:
        task_map = select_variants(robust, task_map, variants, limit, seed if seed is not None else proto.env_seed, deviations)

    n_trials = proto.trials_per_task if trials is None else trials
    limit = min(s.init_states_per_task for s in chosen)
    if not 1 <= n_trials <= limit:
        raise VlaBenchError(f"--trials {n_trials}: must be between 1 and {limit} (each LIBERO task has {limit} init states)")
    if n_trials != proto.trials_per_task:
        deviations["trials_per_task"] = {"protocol": proto.trials_per_task, "run": n_trials}

    steps = {}
    for s in chosen:
        if s.robust:
            from vla_bench.variants import suite_variants

            for base in dict.fromkeys(v.base_suite for v in suite_variants(s)):
                steps[f"{s.name}/{base}"] = proto.max_steps_for(base)
        else:
            steps[s.name] = proto.max_steps_for(s.name)
    if max_steps is not None:
        if max_steps < 1:
            raise VlaBenchError(f"--max-steps {max_steps}: must be at least 1")
        deviations["max_steps"] = {"protocol": dict(steps), "run": max_steps}
        steps = {name: max_steps for name in steps}

    run_seed = proto.env_seed if seed is None else seed
    if run_seed != proto.env_seed:
        deviations["env_seed"] = {"protocol": proto.env_seed, "run": run_seed}

    return RunPlan(
        protocol=proto,
        suites=chosen,
        tasks=task_map,
        trials=n_trials,
        max_steps=steps,
        seed=run_seed,
        deviations=deviations,
    )


def select_variants(
    chosen: list[Suite],
    task_map: dict[str, tuple[int, ...]],
    variants: str | None,
    limit: int | None,
    seed: int,
    deviations: dict[str, Any],
) -> dict[str, tuple[int, ...]]:
    """Narrow the robustness suites' task lists by --variants and --limit (both recorded as deviations)."""
    from vla_bench.variants import parse_selection, sample, suite_variants

    selection = parse_selection(variants, tuple(chosen)) if variants is not None else None
    if limit is not None and limit < 1:
        raise VlaBenchError(f"--limit {limit}: must be at least 1")
    result = dict(task_map)
    for s in chosen:
        pool = [suite_variants(s)[t] for t in task_map[s.name]]
        if selection is not None:
            pool = [v for v in pool if selection.matches(v)]
            if selection.installed:
                from vla_bench.envs.robust_setup import missing_files

                pool = [v for v in pool if not missing_files(s.name, v.task_id)]
            if not pool:
                raise VlaBenchError(f"--variants {variants}: no variant of {s.name} matches")
        if limit is not None:
            pool = sample(pool, limit, seed)
        result[s.name] = tuple(v.task_id for v in pool)
    if variants is not None:
        deviations["variants"] = {"protocol": "all", "run": variants}
    if limit is not None:
        deviations["limit"] = {"protocol": "all", "run": limit, "sample_seed": seed}
    return result
