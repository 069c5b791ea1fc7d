"""`vla-bench distill --stage align|finetune`: distil a VITA-VLA student from a trained teacher."""

from __future__ import annotations

from vla_bench.commands import command
from vla_bench.training.config import DistillConfig


@command("distill", DistillConfig)
def cmd_distill(config: DistillConfig) -> int:
    from vla_bench.training.jobs import distill

    checkpoint = distill(config)
    print(f"student checkpoint ({config.stage}): {checkpoint}")
    return 0
