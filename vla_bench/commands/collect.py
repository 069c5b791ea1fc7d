"""`vla-bench collect`: keep a policy's successful episodes as a LIBERO/robomimic HDF5 dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from vla_bench.commands import command
from vla_bench.specs import DEFAULT_PROTOCOL


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """Run a policy (default: the scripted expert) and write its successful episodes as demonstrations."""

    suite: str
    """Suite name(s), comma-separated."""
    output: str
    """The HDF5 file to write (must not exist). The run folder goes beside it as <name>-run/."""
    policy: str = "expert"
    """Registered policy name."""
    checkpoint: Optional[str] = None
    """Checkpoint for policies that load one."""
    protocol: str = DEFAULT_PROTOCOL
    """Protocol preset: render size, orientation, settle steps, step limits."""
    tasks: Optional[str] = None
    """Task ids, e.g. 0,3 or 0-4 (default: all)."""
    trials: Optional[int] = None
    """Episodes per task; trial i starts from init state i (default: the protocol's)."""
    max_steps: Optional[int] = None
    """Policy steps per episode (default: the protocol's per-suite limit)."""
    seed: Optional[int] = None
    """Env seed (default: the protocol's)."""
    image_size: Optional[int] = None
    """Stored image size (default: the protocol's render size, no resizing)."""
    action_noise: float = 0.0
    """Std of Gaussian noise added to the executed arm position deltas (action units: 1 is 5 cm), DART
    style: the demos keep the policy's clean actions as labels and the sent ones as actions_executed."""
    rotation_noise: float = 0.0
    """Std of Gaussian noise added to the executed arm rotation deltas (action units: 1 is 0.5 rad)."""
    workers: Optional[int] = None
    """Env worker processes (default: CPU cores, capped by memory); 0 runs in this process."""
    progress: bool = True
    """Show a progress bar."""


@command("collect", CollectConfig)
def cmd_collect(config: CollectConfig) -> int:
    from vla_bench.collect import ActionNoise, DemoRecorder, DemoWriter, env_args, keep
    from vla_bench.config import EvalConfig
    from vla_bench.episodes import make_plan
    from vla_bench.evaluate import evaluate

    noise = ActionNoise(position=config.action_noise, rotation=config.rotation_noise)
    protocol = make_plan(suite=config.suite, protocol=config.protocol).protocol
    path = Path(config.output)
    image_size = config.image_size or protocol.render_size
    writer = DemoWriter(path, protocol, config.policy, noise)
    recorder: list[DemoRecorder] = []
    args_cache: dict[tuple[str, int], dict] = {}

    def wrap(policy):
        recorder.append(DemoRecorder(policy, image_size, noise))
        return recorder[0]

    def on_record(record) -> None:
        buffer = recorder[0].take(record.key)
        if keep(record) and buffer is not None:
            key = (record.suite, record.task_id)
            if key not in args_cache:
                args_cache[key] = env_args(protocol, *key, image_size)
            writer.add(record, buffer, args_cache[key])

    eval_config = EvalConfig(
        suite=config.suite, policy=config.policy, checkpoint=config.checkpoint, protocol=config.protocol,
        tasks=config.tasks, trials=config.trials, max_steps=config.max_steps, seed=config.seed,
        output=str(path.with_name(path.stem + "-run")), workers=config.workers, progress=config.progress,
    )
    try:
        result = evaluate(eval_config, wrap_policy=wrap, on_record=on_record)
    finally:
        writer.close()
    print(f"wrote {writer.count} successful episodes of {sum(t.episodes for t in result.summary.suites.values())} to {path}")
    print(f"run folder: {result.run_dir}")
    return 0
