"""Probe a trained checkpoint on one LIBERO episode through the evaluation path (docs/training.md).

    python scripts/probe_policy.py --checkpoint DIR --data demos.hdf5 --task 0 --init 1 --mode replay
    python scripts/probe_policy.py --checkpoint DIR --task 0 --init 1 --mode closed --steps 300

replay: step the env with the demo's own actions (the demo of that task and init state in --data) while
asking the policy at every step; prints the policy's action next to the demo's, and first checks that the
env's first observation equals the demo's first frame (images and state), so a train/eval skew shows up
as a difference here. closed: the policy drives; prints its action and the raw state every 10 steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from vla_bench.envs import make_env
from vla_bench.envs.base import EnvSpec
from vla_bench.episodes import Episode
from vla_bench.policies.base import POLICIES, PolicyContext, PolicyOutput
from vla_bench.specs import protocols
from vla_bench.training.data import STATE_KEYS, VIEW_KEYS, DatasetError, read_demos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", help="demonstration HDF5 (replay mode)")
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--init", type=int, default=0)
    parser.add_argument("--mode", choices=("replay", "closed"), default="closed")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    checkpoint = Path(args.checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    protocol = protocols().get(config["protocol"]["name"])
    policy = POLICIES.get(config["architecture"])(PolicyContext(protocol=protocol, checkpoint=checkpoint))
    env = make_env("libero", EnvSpec.from_protocol(protocol, args.suite, args.task, image_size=policy.image_size or protocol.model_image_size))
    demo = None
    if args.mode == "replay":
        if not args.data:
            parser.error("--mode replay needs --data")
        try:
            demos = [d for d in read_demos(Path(args.data), list(VIEW_KEYS)) if d.group == f"{args.suite}/{args.task}/{args.init}"]
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not demos:
            print(f"error: {args.data} has no demo of task {args.task} from init state {args.init}", file=sys.stderr)
            return 2
        demo = demos[0]
    episode = Episode(args.suite, args.task, args.init, args.seed, args.steps)
    obs = env.start(args.init, args.seed)
    if demo is not None:
        for view in VIEW_KEYS:
            diff = np.abs(obs.images[view].astype(int) - demo.images[view][0]).max()
            print(f"first frame, {view}: max |env - demo| = {diff}")
        print(f"first state: max |env - demo| = {np.abs(obs.state - demo.state[0]).max():.3g} ({', '.join(STATE_KEYS)})")
    policy.start_episode(episode)
    errors = []
    for t in range(args.steps):
        obs = dataclasses.replace(obs, episode=episode.key, step=t)
        out = policy.infer([obs])
        action = (out.actions if isinstance(out, PolicyOutput) else out)[0]
        if demo is not None:
            if t >= len(demo):
                break
            errors.append(np.abs(action[:6] - demo.actions[t, :6]))
            if t % 10 == 0:
                drift = np.abs(obs.state - demo.state[t]).max()
                print(f"{t:4d} policy {np.round(action, 2)} demo {np.round(demo.actions[t], 2)} |state - demo| {drift:.3g}")
            obs, _ = env.step(demo.actions[t])
            continue
        if t % 10 == 0:
            print(f"{t:4d} action {np.round(action, 2)} state {np.round(obs.state, 3)}")
        obs, success = env.step(action)
        if success:
            print(f"success after {t + 1} steps")
            break
    else:
        if demo is None:
            print(f"no success in {args.steps} steps")
    if errors:
        print(f"mean |policy - demo| per arm dimension {np.mean(errors, 0).round(3)}, overall {np.mean(errors):.4f}")
    policy.end_episode(episode)
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
