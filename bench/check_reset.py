"""Check, task by task on real LIBERO, that an env reused across episodes starts every episode
exactly like a freshly built env's first episode, with LIBERO's reset (hard) and with the scene
reused (soft, `--reset soft`, the default).

Per task: the reference is a fresh env per init state (a, b). Against it, one env with hard resets
runs b, a, b and one env with soft resets runs a, b, a; every episode is compared (the soft env's
first episode soft-resets the scene its constructor built). An episode = start (10 settle steps) + 20 random actions; compared are the processed
observation (state, and both camera images on the first and last step), `done` at every step,
the fixtures' placement (model body_pos/body_quat, which init states do not set) and the final
sim state. One process per task (fresh GL), two at a time.

    python bench/check_reset.py [--suites libero_spatial,...] [--output bench/results/reset_check]

Writes <output>.json and <output>.md and exits 1 if any episode differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
INITS = (3, 4)
N_ACTIONS = 20


def episode(env, init_idx: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Everything observable about one episode, flattened into named arrays."""
    obs = env.start(init_idx, 0, render=True)
    model = env.raw.sim.model
    out = {"body_pos": model.body_pos.copy(), "body_quat": model.body_quat.copy(), "state/0": obs.state}
    out.update({f"{camera}/0": image for camera, image in obs.images.items()})
    for step, action in enumerate(actions, start=1):
        last = step == len(actions)
        obs, done = env.step(action, render=last)
        out[f"state/{step}"] = obs.state
        out[f"done/{step}"] = np.array(done)
        if last:
            out.update({f"{camera}/{step}": image for camera, image in obs.images.items()})
    out["sim"] = env.raw.sim.get_state().flatten()
    return out


def differences(reference: dict, other: dict) -> list[str]:
    return [key for key in reference if key not in other or not np.array_equal(reference[key], other[key])]


def check_task(target: tuple[str, int]) -> dict:
    from vla_bench.envs import EnvSpec, make_env
    from vla_bench.specs import protocols

    suite, task = target
    started = time.perf_counter()
    spec = EnvSpec.from_protocol(protocols().get("openvla"), suite, task)
    actions = np.random.default_rng(task).uniform(-1, 1, size=(N_ACTIONS, 7))
    actions[:, 6] = np.sign(actions[:, 6])
    a, b = INITS
    fresh = {}
    for init_idx in (a, b):
        env = make_env("libero", spec)
        try:
            fresh[init_idx] = episode(env, init_idx, actions)
        finally:
            env.close()
    result = {"suite": suite, "task": task}
    for mode, order in (("hard", (b, a, b)), ("soft", (a, b, a))):
        env = make_env("libero", dataclasses.replace(spec, fast_reset=mode == "soft"))
        try:
            runs = [(init_idx, episode(env, init_idx, actions)) for init_idx in order]
        finally:
            env.close()
        # every episode, the soft env's first included: it soft-resets the scene its constructor built
        result[mode] = sorted({key for init_idx, run in runs for key in differences(fresh[init_idx], run)})
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--tasks", default="", help="task ids of each suite, e.g. 0-2 or 0,4 (default: all)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--output", default="bench/results/reset_check")
    args = parser.parse_args()

    from vla_bench.specs import suites

    def task_ids(suite: str) -> list[int]:
        if not args.tasks:
            return list(range(suites().get(suite).n_tasks))
        ids: list[int] = []
        for part in args.tasks.split(","):
            first, _, last = part.partition("-")
            ids += range(int(first), int(last or first) + 1)
        return ids

    targets = [(suite, task) for suite in args.suites.split(",") for task in task_ids(suite)]
    started = time.perf_counter()
    results = []
    with multiprocessing.get_context("spawn").Pool(args.processes, maxtasksperchild=1) as pool:
        for result in pool.imap(check_task, targets):
            flag = "ok" if not (result["hard"] or result["soft"]) else f"DIFFERS hard={result['hard'][:3]} soft={result['soft'][:3]}"
            print(f"{result['suite']} task {result['task']}: {flag} ({result['seconds']} s)", flush=True)
            results.append(result)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpus": multiprocessing.cpu_count(),
        "init_states": list(INITS),
        "random_actions": N_ACTIONS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps({**meta, "tasks": results}, indent=1) + "\n")
    lines = [
        f"# Reset check: reused env vs fresh env, {meta['date']}, {meta['cpus']} CPUs, {meta['wall_s']} s",
        "",
        f"Init states {INITS[0]} and {INITS[1]}, 10 settle steps + {N_ACTIONS} random actions, openvla protocol (256 px, both cameras).",
        "",
        "| suite | tasks | identical after hard reset | identical after soft reset |",
        "|---|---|---|---|",
    ]
    for suite in dict.fromkeys(r["suite"] for r in results):
        rows = [r for r in results if r["suite"] == suite]
        hard = sum(not r["hard"] for r in rows)
        soft = sum(not r["soft"] for r in rows)
        lines.append(f"| {suite} | {len(rows)} | {hard}/{len(rows)} | {soft}/{len(rows)} |")
    bad = [r for r in results if r["hard"] or r["soft"]]
    lines += ["", "Differences: " + ("none" if not bad else "; ".join(f"{r['suite']} {r['task']} hard={r['hard']} soft={r['soft']}" for r in bad))]
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
