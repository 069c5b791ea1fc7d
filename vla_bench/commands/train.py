"""`vla-bench train`: train the Seer teacher on demonstrations (docs/training.md)."""

from __future__ import annotations

from vla_bench.commands import command
from vla_bench.training.config import TrainConfig


@command("train", TrainConfig)
def cmd_train(config: TrainConfig) -> int:
    from vla_bench.training.jobs import train_teacher

    checkpoint = train_teacher(config)
    print(f"teacher checkpoint: {checkpoint}")
    return 0
