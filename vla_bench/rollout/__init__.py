"""Executing episode lists: episode runner and executors."""

from vla_bench.rollout.episode import EnvOptions, Rendering, run_episode
from vla_bench.rollout.pool import PoolExecutor, PoolSettings, WorkerError
from vla_bench.rollout.serial import SerialExecutor

__all__ = ["EnvOptions", "PoolExecutor", "PoolSettings", "Rendering", "SerialExecutor", "WorkerError", "run_episode"]
