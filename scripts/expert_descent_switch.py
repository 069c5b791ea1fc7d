"""How abruptly the scripted expert switches from approaching the hover point above an object to descending
onto it, read from a demonstration file (`vla-bench collect` output).

A learned policy that hovers above the object (docs/training.md, distill-small attempts 4 and 5) sits where
the expert's labels jump: the approach shrinks its steps as it converges on the hover point, then the
descent starts at full speed. For every demo this finds the first descent before the first gripper close
(the first step whose z label is <= -0.9 after a step whose z label is above -0.5) and prints, per task,
the largest position label component over the three steps before the switch and at the switch; and, for
every demo (whether or not it has such a switch), how many steps before the first close have all position
labels below 0.5 of full scale (creeping: the approach converging, or the descent's last millimetres).

Usage: python scripts/expert_descent_switch.py DEMOS.hdf5
"""

from __future__ import annotations

import sys
from collections import defaultdict

import h5py
import numpy as np


def descent_switch(actions: np.ndarray) -> int | None:
    """Index of the first descent step before the first close, or None."""
    closes = np.flatnonzero(actions[:, 6] > 0)
    end = int(closes[0]) if closes.size else len(actions)
    z = actions[:end, 2]
    for t in range(1, end):
        if z[t] <= -0.9 and z[t - 1] > -0.5:
            return t
    return None


def creep_steps(actions: np.ndarray) -> int:
    """Steps before the first close whose position labels are all below half of full scale."""
    closes = np.flatnonzero(actions[:, 6] > 0)
    end = int(closes[0]) if closes.size else len(actions)
    return int((np.abs(actions[:end, :3]).max(axis=1) < 0.5).sum())


def main(path: str) -> int:
    creep: dict[str, list[int]] = defaultdict(list)
    before: dict[str, list[float]] = defaultdict(list)
    at: dict[str, list[float]] = defaultdict(list)
    missing: dict[str, int] = defaultdict(int)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        print(f"error: cannot read {path} as HDF5 ({exc})", file=sys.stderr)
        return 2
    with f:
        if "data" not in f:
            print(f"error: {path} has no 'data' group (not a demonstration file)", file=sys.stderr)
            return 2
        data = f["data"]
        for key in sorted(data):
            demo = data[key]
            if "actions" not in demo:
                print(f"error: {path} data/{key} has no 'actions'", file=sys.stderr)
                return 2
            task = str(demo.attrs.get("task_id", demo.attrs.get("language_instruction", "?")))
            actions = np.asarray(demo["actions"])
            creep[task].append(creep_steps(actions))
            t = descent_switch(actions)
            if t is None or t < 3:
                missing[task] += 1
                continue
            before[task].append(float(np.abs(actions[t - 3 : t, :3]).max()))
            at[task].append(float(np.abs(actions[t, :3]).max()))
    print(f"{path}: the expert's switch from approach to descent (position labels, action units: 1 = 5 cm)")
    print("task\tdemos\tmax |xyz| over the 3 steps before (mean, median)\tmax |xyz| at the switch (mean)\tno switch found\tcreeping steps before the close (mean)")
    for task in sorted(set(before) | set(missing), key=lambda t: (not t.isdigit(), int(t) if t.isdigit() else 0, t)):
        b, a = np.asarray(before[task]), np.asarray(at[task])
        stats = f"{b.mean():.3f}, {np.median(b):.3f}\t{a.mean():.3f}" if b.size else "-\t-"
        print(f"{task}\t{b.size}\t{stats}\t{missing[task]}\t{np.mean(creep[task]):.1f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python scripts/expert_descent_switch.py DEMOS.hdf5", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
