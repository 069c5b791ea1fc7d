"""The scripted expert on the robustness suites next to its unperturbed episodes.

Reads the committed sample runs (`make robust-expert`) and the expert reference runs on the four LIBERO
suites, and prints, for every LIBERO-Plus episode, the variant's outcome and steps next to the base
task's episode from the same init state 0 and seed (camera, noise, language and background variants
change no physics, so a privileged expert should reproduce that episode exactly), then the per-category
table of `vla-bench report`. Output: bench/results/robust_expert.md.

    .venv/bin/python bench/robust_expert.py > bench/results/robust_expert.md
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import platform
from pathlib import Path

from vla_bench.report.build import build_report
from vla_bench.specs import suites
from vla_bench.variants import suite_variants

ROOT = Path(__file__).resolve().parents[1] / "results" / "reference"
BASES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")


def base_task_ids() -> dict[str, list[str]]:
    from vla_bench.envs.libero_setup import ensure_ready

    ensure_ready()
    with contextlib.redirect_stdout(io.StringIO()):
        from libero.libero import benchmark

        return {s: [t.name for t in benchmark.get_benchmark_dict()[s]().tasks] for s in BASES}


def main() -> None:
    reference = {}
    for suite in BASES:
        for line in (ROOT / f"expert-{suite}" / "episodes.jsonl").read_text().splitlines():
            r = json.loads(line)
            reference[(suite, r["task_id"], r["init_idx"])] = (r["success"], r["steps"])
    names = base_task_ids()
    table = suite_variants(suites().get("libero_plus"))
    print(f"# Scripted expert on robustness variants ({dt.date.today()}, {platform.node()})\n")
    print("| category | level | base suite | base task | variant success | steps | base episode (init 0) success | steps | same |")
    print("|---|---:|---|---:|---|---:|---|---:|---|")
    same = {}
    for line in (ROOT / "robust-expert-libero_plus" / "episodes.jsonl").read_text().splitlines():
        r = json.loads(line)
        v = table[r["task_id"]]
        task = names[v.base_suite].index(v.base_task)
        base = reference[(v.base_suite, task, 0)]
        equal = (r["success"], r["steps"]) == base
        same.setdefault(v.category, []).append(equal)
        print(f"| {v.category} | {v.level} | {v.base_suite} | {task} | {r['success']} | {r['steps']} | {base[0]} | {base[1]} | {'yes' if equal else 'no'} |")
    print()
    for category, flags in same.items():
        print(f"- {category}: {sum(flags)}/{len(flags)} episodes identical to the unperturbed episode (outcome and steps)")
    runs = [ROOT / "robust-expert-libero_plus", ROOT / "robust-expert-libero_pro", *(ROOT / f"expert-{s}" for s in BASES)]
    report = build_report([str(p) for p in runs])
    text = report.markdown(with_tasks=False)
    print("\n" + text[text.index("## Perturbation categories"):])


if __name__ == "__main__":
    main()
