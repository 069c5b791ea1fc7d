"""Training: the Seer teacher (`vla-bench train`) and the VITA-VLA student's two distillation stages
(`vla-bench distill`), from LIBERO/robomimic demonstrations to harness-format checkpoints (docs/training.md)."""
