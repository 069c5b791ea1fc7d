"""Executing episode lists: episode runner and executors."""

from vla_bench.rollout.episode import run_episode
from vla_bench.rollout.serial import SerialExecutor

__all__ = ["SerialExecutor", "run_episode"]
