"""The evaluation API: plan the episodes, build the policy, execute, record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from vla_bench.config import EvalConfig
from vla_bench.episodes import RunPlan, make_plan
from vla_bench.errors import VlaBenchError
from vla_bench.policies import Policy, PolicyContext, make_policy
from vla_bench.results import provenance
from vla_bench.results.io import RunWriter
from vla_bench.results.schema import STATUS_OK, EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.rollout import SerialExecutor


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
        "rendering": render,
        "image_size": policy.image_size or plan.protocol.model_image_size,
        "renderer": provenance.renderer() if config.env == "libero" else None,
        "versions": provenance.versions(),
        "git": provenance.git_commit(),
        "host": provenance.host(),
        "command": sys.argv,
    }


def should_render(config: EvalConfig, policy: Policy) -> bool:
    return {"on": True, "off": False, "auto": policy.uses_images}[config.render]


class Progress:
    """A tqdm bar over episodes with the running success rate."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="ep", disable=not enabled, dynamic_ncols=True)
        self.successes = 0
        self.ok = 0
        self.errors = 0

    def update(self, record: EpisodeRecord) -> None:
        if record.status == STATUS_OK:
            self.ok += 1
            self.successes += int(record.success)
        else:
            self.errors += 1
        rate = f"{100 * self.successes / self.ok:.1f}%" if self.ok else "n/a"
        self.bar.set_postfix(success=rate, errors=self.errors, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def evaluate(config: EvalConfig) -> RunResult:
    """Run the evaluation described by `config`; returns the run folder and its summary."""
    plan = make_plan(
        suite=config.suite,
        protocol=config.protocol,
        tasks=config.tasks,
        trials=config.trials,
        max_steps=config.max_steps,
        seed=config.seed,
    )
    episodes = plan.episodes()
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
    policy.validate(episodes)
    render = should_render(config, policy)
    if policy.uses_images and not render:
        policy.close()
        raise VlaBenchError(f"--render off: policy {config.policy!r} reads camera images (use --render auto)")
    run_dir = Path(config.output) if config.output else default_run_dir(config)
    writer = RunWriter.create(run_dir, {**run_info(config, plan, policy, render), "started_at": _now()})

    executor = SerialExecutor(
        env_kind=config.env,
        render=render,
        image_size=policy.image_size or plan.protocol.model_image_size,
        privileged=policy.needs_privileged,
    )
    progress = Progress(len(episodes), config.progress)
    start = time.monotonic()

    def on_record(record: EpisodeRecord) -> None:
        writer.append(record)
        progress.update(record)

    status = "failed"
    try:
        executor.run(episodes, policy, plan.protocol, on_record)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        progress.close()
        policy.close()
        summary = writer.finish(status, finished_at=_now(), wall_s=round(time.monotonic() - start, 2))
    return RunResult(run_dir=run_dir, summary=summary)
