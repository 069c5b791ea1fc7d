"""Re-check that LIBERO's soft reset (scene reused) gives the same episode as its hard reset.

For each (suite, task): two episodes after hard resets, then the same init states (in the other
order) after soft resets of the same env, 10 settle steps and 40 random actions each; compares every
raw observation (images included), `done` and the final sim state. Prints the number of
differences per task (0 = identical). Usage: python bench/check_fast_reset.py [suite:task ...]
"""

from __future__ import annotations

import sys

import numpy as np

from vla_bench.envs import EnvSpec
from vla_bench.envs.libero_env import load_task, make_raw_env
from vla_bench.specs import protocols

DEFAULT = ["libero_object:3", "libero_goal:5", "libero_10:7", "libero_90:11"]


def episode(env, init_state, settle, actions) -> list[dict]:
    env.seed(0)
    env.reset()
    raw = env.set_init_state(init_state)
    out = [{k: np.array(v) for k, v in raw.items()}]
    for _ in range(10):
        raw, *_ = env.step(settle)
    out.append({k: np.array(v) for k, v in raw.items()})
    for action in actions:
        raw, _, done, _ = env.step(action)
        out.append({**{k: np.array(v) for k, v in raw.items()}, "done": np.array(done)})
    out.append({"sim": env.sim.get_state().flatten()})
    return out


def main(targets: list[str]) -> int:
    protocol = protocols().get("openvla")
    actions = np.random.default_rng(1).uniform(-1, 1, size=(40, 7))
    actions[:, 6] = np.sign(actions[:, 6])
    failures = 0
    for target in targets:
        suite, task = target.split(":")
        spec = EnvSpec.from_protocol(protocol, suite, int(task))
        _, inits, bddl = load_task(suite, int(task))
        settle = np.array(spec.settle_action, dtype=float)
        env = make_raw_env(spec, bddl)
        hard = [episode(env, inits[i], settle, actions) for i in (3, 4)]
        env.env.hard_reset = False
        soft = [episode(env, inits[i], settle, actions) for i in (4, 3)][::-1]
        env.close()
        diffs = [(e, j, k) for e in range(2) for j, (x, y) in enumerate(zip(hard[e], soft[e])) for k in x if not np.array_equal(x[k], y[k])]
        failures += bool(diffs)
        print(f"{suite} task {task}: {len(diffs)} differences {diffs[:4]}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEFAULT))
