"""The evaluation API: plan the episodes, build the policy, execute, record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from vla_bench.config import EvalConfig
from vla_bench.envs.base import EPISODE_START
from vla_bench.episodes import Episode, RunPlan, make_plan
from vla_bench.errors import VlaBenchError
from vla_bench.policies import Policy, PolicyContext, make_policy
from vla_bench.results import provenance
from vla_bench.results.io import RunWriter, read_episodes, read_run
from vla_bench.results.schema import STATUS_OK, EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.rollout import EnvOptions, PoolExecutor, PoolSettings, Rendering, SerialExecutor
from vla_bench.rollout.resources import check_workers, default_workers
from vla_bench.rollout.video import VideoRecorder, parse_video_mode
from vla_bench.rollout.worker import EnvFactory
from vla_bench.runs import identity_differences, parse_shard, shard_episodes


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    summary: Summary


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_run_dir(config: EvalConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suites = "+".join(s.strip() for s in config.suite.split(","))
    return Path("results") / f"{stamp}-{config.policy}-{suites}"


def checkpoint_info(checkpoint: str | None) -> dict[str, Any]:
    if checkpoint is None:
        return {"path": None, "sha256": None}
    path = Path(checkpoint)
    if not path.exists():
        raise VlaBenchError(f"--checkpoint {checkpoint}: no such file or directory")
    return {"path": str(path.resolve()), "sha256": provenance.sha256_path(path)}


def policy_info(config: EvalConfig, policy: Policy) -> dict[str, Any]:
    """Policy name and checkpoint; plus the loaded model's facts (`model`) for model policies."""
    info: dict[str, Any] = {"name": config.policy, "checkpoint": checkpoint_info(config.checkpoint)}
    model = policy.describe()
    if model is not None:
        info["model"] = model
    return info


def run_info(config: EvalConfig, plan: RunPlan, policy: Policy, render: bool) -> dict[str, Any]:
    """Everything run.json records besides status and times."""
    return {
        "protocol": plan.protocol.to_dict(),
        "deviations": plan.deviations,
        "suites": [s.name for s in plan.suites],
        "tasks": {name: list(ids) for name, ids in plan.tasks.items()},
        "trials": plan.trials,
        "max_steps": plan.max_steps,
        "seed": plan.seed,
        "episodes_planned": len(plan.episodes()),
        "policy": policy_info(config, policy),
        "env": config.env,
        "episode_start": EPISODE_START,
        "rendering": render,
        "image_size": policy.image_size or plan.protocol.model_image_size,
        "renderer": provenance.renderer() if config.env == "libero" else None,
        "versions": provenance.versions(),
        "git": provenance.git_commit(),
        "host": provenance.host(),
        "command": sys.argv,
    }


def should_render(config: EvalConfig, policy: Policy, video: bool = False) -> bool:
    """Whether the envs have cameras at all (which steps render is the Rendering's call)."""
    if config.render == "off" and video:
        raise VlaBenchError("--video needs camera images; drop --render off")
    return {"on": True, "off": False, "auto": policy.uses_images or video}[config.render]


class Progress:
    """One tqdm bar: episodes done / total (ETA), errors, running success rate, env steps/s."""

    def __init__(self, total: int, enabled: bool, done: int = 0) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="ep", disable=not enabled, dynamic_ncols=True)
        self.successes = 0
        self.ok = 0
        self.errors = 0
        self.steps = 0
        self.start = time.monotonic()
        self._shown = 0.0

    def step(self) -> None:
        self.steps += 1
        now = time.monotonic()
        if now - self._shown > 1.0:
            self._shown = now
            self._postfix(refresh=True)

    def _postfix(self, refresh: bool) -> None:
        rate = f"{100 * self.successes / self.ok:.1f}%" if self.ok else "n/a"
        speed = self.steps / max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix(success=rate, errors=self.errors, steps_s=f"{speed:.1f}", refresh=refresh)

    def update(self, record: EpisodeRecord) -> None:
        if record.status == STATUS_OK:
            self.ok += 1
            self.successes += int(record.success)
        else:
            self.errors += 1
        self._postfix(refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def as_json(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as it reads back from run.json (tuples become lists), for comparisons."""
    return json.loads(json.dumps(data, default=str))


def resolve_workers(config: EvalConfig) -> int:
    workers = default_workers(config.env) if config.workers is None else config.workers
    check_workers(workers, config.env, config.force)
    return workers


def evaluate(
    config: EvalConfig,
    env_factory: EnvFactory | None = None,
    *,
    wrap_policy: Callable[[Policy], Policy] | None = None,
    on_record: Callable[[EpisodeRecord], None] | None = None,
) -> RunResult:
    """Run the evaluation described by `config`; returns the run folder and its summary.

    `env_factory` (Python API and tests) replaces the env named by `config.env` in pool workers;
    `wrap_policy` wraps the built policy (e.g. a demonstration recorder) and `on_record` sees every
    episode record after it is written.
    """
    plan = make_plan(
        suite=config.suite,
        protocol=config.protocol,
        tasks=config.tasks,
        trials=config.trials,
        max_steps=config.max_steps,
        seed=config.seed,
    )
    episodes = plan.episodes()
    shard = parse_shard(config.shard) if config.shard is not None else None
    if shard is not None:
        episodes = shard_episodes(episodes, *shard)
    parse_video_mode(config.video)
    if config.resume and config.output is None:
        raise VlaBenchError("--resume needs --output RUN_FOLDER (the run to continue)")
    workers = resolve_workers(config)
    if config.env == "libero":
        from vla_bench.envs.libero_setup import ensure_ready

        ensure_ready()  # fail before creating the run folder if LIBERO is not usable
    context = PolicyContext(
        protocol=plan.protocol,
        checkpoint=None if config.checkpoint is None else Path(config.checkpoint),
        seed=plan.seed,
        device=config.device,
        strict_protocol=config.strict_protocol,
    )
    policy = make_policy(config.policy, context)
    if wrap_policy is not None:
        policy = wrap_policy(policy)
    try:
        return _execute(config, plan, episodes, shard, workers, policy, env_factory, on_record)
    finally:
        policy.close()


def _execute(
    config: EvalConfig,
    plan: RunPlan,
    episodes: list[Episode],
    shard: tuple[int, int] | None,
    workers: int,
    policy: Policy,
    env_factory: EnvFactory | None,
    extra_on_record: Callable[[EpisodeRecord], None] | None = None,
) -> RunResult:
    """Create (or reopen, for --resume) the run folder and run the episodes that lack a record."""
    policy.validate(episodes)
    run_dir = Path(config.output) if config.output else default_run_dir(config)
    video = VideoRecorder(config.video, run_dir / "videos", episodes, plan.protocol.cameras[0])
    render = should_render(config, policy, video.enabled)
    if policy.uses_images and not render:
        raise VlaBenchError(f"--render off: policy {config.policy!r} reads camera images (use --render auto)")
    image_size = policy.image_size or plan.protocol.model_image_size
    info = run_info(config, plan, policy, render)
    info["shard"] = None if shard is None else {"index": shard[0], "count": shard[1], "episodes": len(episodes)}
    info["workers"] = workers
    info["reset"] = config.reset
    info["render_steps"] = {"on": "all", "off": "none", "auto": "lazy (steps the policy reads)"}[config.render]

    if config.resume:
        old = read_run(run_dir)
        problems = identity_differences(old, as_json(info))
        if problems:
            raise VlaBenchError(f"cannot resume {run_dir}: it was started with other settings: {'; '.join(problems)}")
        resumed = [*old.get("resumed", []), {"at": _now(), "command": sys.argv, "workers": workers}]
        writer = RunWriter.reopen(run_dir, {**old, "resumed": resumed})
        done = {record.key for record in read_episodes(run_dir)}
        todo = [e for e in episodes if e.key not in done]
    else:
        writer = RunWriter.create(run_dir, {**info, "started_at": _now()})
        todo = list(episodes)

    options = EnvOptions(
        render=render,
        image_size=image_size,
        rendering=Rendering("all" if config.render == "on" else "lazy"),
        fast_reset=config.reset == "soft",
        privileged=policy.needs_privileged,
    )
    if workers == 0:
        executor: Any = SerialExecutor(config.env, options, video if video.enabled else None)
    else:
        settings = PoolSettings(
            workers=workers,
            retries=config.retries,
            timeout_s=config.worker_timeout,
            start_timeout_s=max(600.0, 5 * config.worker_timeout),
        )
        executor = PoolExecutor(settings, env_factory or config.env, options, video if video.enabled else None)
    progress = Progress(len(episodes), config.progress, done=len(episodes) - len(todo))
    start = time.monotonic()

    peak_rss: list[float] = [old.get("worker_peak_rss_mb") or 0.0] if config.resume else []

    def on_record(record: EpisodeRecord) -> None:
        writer.append(record)
        progress.update(record)
        if record.worker_peak_rss_mb is not None:
            peak_rss.append(record.worker_peak_rss_mb)
        if extra_on_record is not None:
            extra_on_record(record)

    status = "failed"
    try:
        executor.run(todo, policy, plan.protocol, on_record, progress.step)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        progress.close()
        summary = writer.finish(
            status,
            finished_at=_now(),
            wall_s=round(time.monotonic() - start, 2),
            worker_peak_rss_mb=max(peak_rss, default=None),
        )
        if status != "finished":
            print(f"vla-bench: run {status}; continue it with --resume --output {run_dir}", file=sys.stderr)
    return RunResult(run_dir=run_dir, summary=summary)
