"""Fingerprint of a few rendered expert episodes, to prove that a change to the env layer changes nothing.

Runs the scripted expert on real LIBERO with both cameras rendered at every step, and hashes, step by
step, the two camera images, the state vector and `done`, plus the final MuJoCo state. Episodes run
on one env per task in sequence (the first with a hard reset, the next with the soft reset, as an
engine worker does), then one task change in the same process. Run it on two versions of the code and
compare the outputs (`--compare A.json B.json`): every hash must be equal.

  python bench/episode_digest.py --output bench/results/digest-before.json   # on the old code
  python bench/episode_digest.py --output bench/results/digest-after.json    # on the new code
  python bench/episode_digest.py --compare bench/results/digest-before.json bench/results/digest-after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

# (suite, task, init states): the pick-and-place task whose fixtures are placed by a sampler, a drawer.
EPISODES = [("libero_spatial", 4, (1, 2)), ("libero_goal", 0, (0,))]
MAX_STEPS = 120


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def run(max_steps: int) -> dict:
    from vla_bench.envs import EnvSpec
    from vla_bench.envs.libero_env import LiberoEnv
    from vla_bench.episodes import Episode
    from vla_bench.policies import PolicyContext, make_policy
    from vla_bench.specs import protocols

    protocol = protocols().get("openvla")
    policy = make_policy("expert", PolicyContext(protocol=protocol))
    out: dict[str, dict] = {}
    for suite, task_id, inits in EPISODES:
        spec = EnvSpec.from_protocol(protocol, suite, task_id, render=True, privileged=True, fast_reset=True)
        env = LiberoEnv(spec)
        try:
            for init_idx in inits:
                episode = Episode(suite, task_id, init_idx, protocol.env_seed, max_steps)
                policy.start_episode(episode)
                obs = env.start(init_idx, episode.seed)
                steps, done = [], False
                for step in range(max_steps):
                    obs.episode, obs.step = episode.key, step
                    steps.append(digest(obs.images["agentview"], obs.images["robot0_eye_in_hand"], obs.state))
                    obs, done = env.step(policy.infer([obs])[0])
                    if done:
                        break
                steps.append(digest(obs.images["agentview"], obs.images["robot0_eye_in_hand"], obs.state))
                sim = env.raw.env.sim
                out[episode.key] = {
                    "steps": len(steps) - 1,
                    "success": bool(done),
                    "step_digests": steps,
                    "final_sim_state": digest(sim.data.qpos, sim.data.qvel, sim.model.body_pos, sim.model.body_quat),
                }
                print(f"{episode.key}: {len(steps) - 1} steps, success {done}", flush=True)
        finally:
            env.close()
    return out


def compare(a_path: str, b_path: str) -> int:
    a, b = (json.loads(Path(p).read_text())["episodes"] for p in (a_path, b_path))
    if a.keys() != b.keys():
        print(f"different episodes: {sorted(a)} vs {sorted(b)}")
        return 1
    bad = 0
    for key in a:
        first = next((i for i, (x, y) in enumerate(zip(a[key]["step_digests"], b[key]["step_digests"])) if x != y), None)
        same = a[key] == b[key]
        print(f"{key}: {'identical' if same else f'DIFFERENT (first differing step: {first})'} ({a[key]['steps']} steps)")
        bad += not same
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="write the digests here (JSON)")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--compare", nargs=2, metavar="JSON", help="compare two digest files instead")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    from vla_bench.results import provenance

    result = {"git": provenance.git_commit(), "versions": provenance.versions(), "episodes": run(args.max_steps)}
    text = json.dumps(result, indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
