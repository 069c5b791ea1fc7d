"""Typed configuration behind the CLI. Field names become flags (`max_steps` -> `--max-steps`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import tyro

from vla_bench.remote.options import RemoteOptions


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Run a policy on LIBERO suites under a named protocol and write a run folder."""

    suite: str
    """Suite name(s), comma-separated: libero_spatial, libero_object, libero_goal, libero_10, libero_90;
    robustness suites libero_plus, libero_pro_spatial, libero_pro_object, libero_pro_goal, libero_pro_10."""
    policy: str
    """Registered policy name (see `vla-bench policies`)."""
    checkpoint: Optional[str] = None
    """Checkpoint path (file or directory) for policies that load weights or recorded actions."""
    protocol: Optional[str] = None
    """Evaluation protocol preset (see `vla-bench suites`); default: openvla, or a robustness suite's own."""
    tasks: Optional[str] = None
    """Task ids, e.g. 0,3 or 0-4 (default: all). A deviation from the protocol."""
    trials: Optional[int] = None
    """Episodes per task; trial i starts from init state i (default: the protocol's). A deviation."""
    variants: Optional[str] = None
    """Robustness suites: variants by category, level (L3, L2-4) or base suite, e.g. camera,light,L5 (default: all). A deviation."""
    limit: Optional[int] = None
    """Robustness suites: run a fixed, seeded sample of N variants spread over the categories. A deviation."""
    assets: Optional[str] = None
    """Folder holding a robustness suite's extra assets (e.g. LIBERO-Plus's assets.zip unpacked); env VLA_BENCH_ROBUST_ASSETS."""
    max_steps: Optional[int] = None
    """Policy steps per episode for every suite (default: the protocol's per-suite limit). A deviation."""
    seed: Optional[int] = None
    """Env seed set before every episode, also seeds random policies (default: the protocol's)."""
    output: Optional[str] = None
    """Run folder (default: results/<date>-<policy>-<suites>). Must not already hold a run."""
    env: Literal["libero", "fake"] = "libero"
    """Simulator: real LIBERO, or the fast fake env for smoke tests of a policy."""
    render: Literal["auto", "on", "off"] = "auto"
    """Render cameras: auto renders only for policies that read images (outcomes do not depend on it)."""
    device: str = "cpu"
    """Torch device for model policies."""
    progress: bool = True
    """Show a progress bar."""
    strict_protocol: bool = False
    """Refuse to run a checkpoint whose expected protocol differs from --protocol (default: warn)."""
    workers: Optional[int] = None
    """Env worker processes (default: CPU cores, capped by free memory); 0 runs the episodes in this process."""
    executor: Optional[str] = None
    """How episodes are executed: pool (env worker processes), serial (in this process) or ray (env actors on a
    Ray cluster, see --address); default pool, or serial with --workers 0."""
    address: Optional[str] = None
    """Ray cluster for --executor ray: auto (default: the cluster `ray start` runs on this machine, or $RAY_ADDRESS)
    or HOST:PORT of its head node."""
    resume: bool = False
    """Continue the run in --output: run only its episodes without a record (same protocol, checkpoint, selection)."""
    retry_errors: bool = False
    """With --resume: also re-run the episodes recorded as errors (their old records move to retried-errors.jsonl)."""
    shard: Optional[str] = None
    """Run slice i of n of the episode list, e.g. 0/4 (i counts from 0); join the folders with `vla-bench merge`."""
    video: str = "none"
    """Episode videos (mp4 in <run>/videos): none, failures, all, or first-K (the first K episodes)."""
    retries: int = 2
    """Extra attempts for an episode whose worker crashed, hung or raised a simulator error."""
    worker_timeout: float = 120.0
    """Seconds to wait for one env step before declaring the worker hung (episode starts get 600 s or more)."""
    reset: Literal["soft", "hard"] = "soft"
    """Between episodes of a task: soft reuses the env's scene (~0.5 s), hard rebuilds it as LIBERO's reset
    does (~2 s). Both start every episode bit-identically to a fresh env (bench/results/reset_check.md)."""
    force: bool = False
    """Start the requested workers even if the machine seems to lack the memory for them."""
    remote: Annotated[RemoteOptions, tyro.conf.OmitArgPrefixes] = RemoteOptions()
    """Options of --policy remote (--server, --model-name, ...)."""
