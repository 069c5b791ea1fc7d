"""Executing episode lists: the episode runner, the executor contract and registry, the executors, the run."""

from vla_bench.rollout.driver import EpisodeDriver, act_batch, run_episode
from vla_bench.rollout.episode import EnvOptions, Rendering
from vla_bench.rollout.executor import EXECUTORS, EnvExecutor, Executor, ExecutorSetup, make_executor
from vla_bench.rollout.pool import PoolExecutor, PoolSettings, WorkerError
from vla_bench.rollout.serial import SerialExecutor

__all__ = [
    "EXECUTORS", "EnvExecutor", "EnvOptions", "EpisodeDriver", "Executor", "ExecutorSetup", "PoolExecutor", "PoolSettings", "Rendering",
    "SerialExecutor", "WorkerError", "act_batch", "make_executor", "run_episode",
]
