"""The evaluation API: plan the episodes, build the policy, execute, record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Callable

from vla_bench.config import EvalConfig
from vla_bench.envs import EnvFactory, KindFactory, env_kind
from vla_bench.envs.base import EPISODE_START
from vla_bench.episodes import Episode, RunPlan, make_plan
from vla_bench.errors import VlaBenchError
from vla_bench.policies import Policy, PolicyContext, make_policy
from vla_bench.remote.options import redact_argv
from vla_bench.results import provenance
from vla_bench.results.description import CheckpointRef, PolicyDescription, RunDescription, ShardDescription
from vla_bench.results.schema import EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.rollout.episode import EnvOptions, Rendering
from vla_bench.rollout.executor import EXECUTORS, default_executor, make_executor, setup_from_config
from vla_bench.rollout.resources import check_workers, default_workers
from vla_bench.rollout.run import Run
from vla_bench.rollout.video import VideoRecorder, parse_video_mode
from vla_bench.runs import parse_shard, shard_episodes


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    summary: Summary


def default_run_dir(config: EvalConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suites = "+".join(s.strip() for s in config.suite.split(","))
    return Path("results") / f"{stamp}-{config.policy}-{suites}"


def checkpoint_info(checkpoint: str | None) -> CheckpointRef:
    if checkpoint is None:
        return CheckpointRef()
    path = Path(checkpoint)
    if not path.exists():
        raise VlaBenchError(f"--checkpoint {checkpoint}: no such file or directory")
    return CheckpointRef(str(path.resolve()), provenance.sha256_path(path))


def policy_info(config: EvalConfig, policy: Policy) -> PolicyDescription:
    """Policy name and checkpoint; plus the loaded model's facts (`model`) for model policies."""
    return PolicyDescription(config.policy, checkpoint_info(config.checkpoint), policy.describe())


def run_info(config: EvalConfig, plan: RunPlan, policy: Policy, render: bool) -> RunDescription:
    """Everything run.json records besides the execution settings, status and times."""
    return RunDescription(
        protocol=plan.protocol,
        deviations=plan.deviations,
        suites=tuple(s.name for s in plan.suites),
        tasks={name: tuple(ids) for name, ids in plan.tasks.items()},
        trials=plan.trials,
        max_steps=dict(plan.max_steps),
        seed=plan.seed,
        episodes_planned=len(plan.episodes()),
        policy=policy_info(config, policy),
        env=config.env,
        episode_start=EPISODE_START,
        rendering=render,
        image_size=policy.image_size or plan.protocol.model_image_size,
        renderer=env_kind(config.env).renderer(),
        versions=provenance.versions(),
        git=provenance.git_commit(),
        host=provenance.host(),
        command=tuple(redact_argv(sys.argv)),
    )


def should_render(config: EvalConfig, policy: Policy, video: bool = False) -> bool:
    """Whether the envs have cameras at all (which steps render is the Rendering's call)."""
    if config.render == "off" and video:
        raise VlaBenchError("--video needs camera images; drop --render off")
    return {"on": True, "off": False, "auto": policy.uses_images or video}[config.render]


def resolve_workers(config: EvalConfig) -> int | None:
    """Env workers on this machine, checked against its memory. For --executor ray the envs run on the
    cluster: None (without --workers) lets the cluster's CPUs and memory decide."""
    if config.executor == "ray":
        if config.workers is not None and config.workers < 1:
            raise VlaBenchError(f"--workers {config.workers}: --executor ray needs 1 or more env actors")
        return config.workers
    workers = default_workers(config.env) if config.workers is None else config.workers
    check_workers(workers, config.env, config.force)
    return workers


def resolve_executor(config: EvalConfig, workers: int | None) -> str:
    """`--executor`, or by default the pool when there are workers and in-process when there are none."""
    name = default_executor(workers) if config.executor is None else EXECUTORS.canonical(config.executor)
    if name == "pool" and workers == 0:
        raise VlaBenchError("--executor pool needs --workers 1 or more (--workers 0 runs in-process: --executor serial)")
    if config.address is not None and name != "ray":
        raise VlaBenchError(f"--address {config.address}: only --executor ray connects to a cluster")
    return name


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
        variants=config.variants,
        limit=config.limit,
    )
    episodes = plan.episodes()
    shard = parse_shard(config.shard) if config.shard is not None else None
    if shard is not None:
        episodes = shard_episodes(episodes, *shard)
    parse_video_mode(config.video)
    if config.resume and config.output is None:
        raise VlaBenchError("--resume needs --output RUN_FOLDER (the run to continue)")
    if config.retry_errors and not config.resume:
        raise VlaBenchError("--retry-errors re-runs the error episodes of an existing run: use it with --resume")
    workers = resolve_workers(config)
    kind = env_kind(config.env)
    if kind.prepare is not None:
        kind.prepare(plan.suites, episodes, config.assets)  # before the run folder exists
    context = PolicyContext(
        protocol=plan.protocol,
        checkpoint=None if config.checkpoint is None else Path(config.checkpoint),
        seed=plan.seed,
        device=config.device,
        strict_protocol=config.strict_protocol,
        remote=config.remote,
    )
    if config.policy != "remote" and config.remote.given():
        raise VlaBenchError(f"{', '.join(config.remote.given())}: only for --policy remote")
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
    workers: int | None,
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
    executor_name = resolve_executor(config, workers)
    info = dataclasses.replace(
        run_info(config, plan, policy, render),
        shard=None if shard is None else ShardDescription(shard[0], shard[1], len(episodes)),
        workers=workers,
        executor=executor_name,
        reset=config.reset,
        render_steps={"on": "all", "off": "none", "auto": "lazy (steps the policy reads)"}[config.render],
    )

    options = EnvOptions(
        render=render,
        image_size=policy.image_size or plan.protocol.model_image_size,
        rendering=Rendering("all" if config.render == "on" else "lazy"),
        fast_reset=config.reset == "soft",
        privileged=policy.needs_privileged,
    )
    setup = setup_from_config(
        config, workers, env_factory or KindFactory(config.env), options, video if video.enabled else None
    )
    executor = make_executor(executor_name, setup)
    if config.resume:
        run = Run.resume(run_dir, info, episodes, progress=config.progress, retry_errors=config.retry_errors)
    else:
        run = Run.create(run_dir, info, episodes, progress=config.progress)
    summary = run.execute(executor, policy, plan.protocol, extra_on_record)
    return RunResult(run_dir=run_dir, summary=summary)
