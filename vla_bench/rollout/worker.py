"""Env worker processes and the explicit protocol the main process speaks with them.

Commands (tuples sent by the main process):
  ("start", spec, init_idx, seed, render)  build the task's env if the worker does not hold it yet
                                           (lazily, inside the worker), begin an episode
  ("step", action, render)                 step the current episode
  ("close",)                               close the env and exit
Replies are `(result, ok)`. With ok=True, result is `(observation, success, language, peak_rss_mb)`
(success is False after "start"). With ok=False, result is a `WorkerFailure`: a simulator error (the
episode is retried on a fresh worker) or any other exception (a bug or bad input: the run stops).
Every wait on a reply has a deadline, and `WorkerHandle.close` always leaves no process behind.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import resource
import signal
import traceback
from typing import Any, Callable

from vla_bench.envs import EnvFactory
from vla_bench.envs.base import Env, EnvSpec

SIMULATOR = "simulator"
OTHER = "other"


@dataclasses.dataclass(frozen=True)
class WorkerFailure:
    """An exception raised inside a worker, carried back with its traceback."""

    kind: str  # SIMULATOR or OTHER
    message: str
    traceback: str


class WorkerLost(Exception):
    """A worker died, hung past its deadline, or broke the pipe."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports ru_maxrss in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def worker_main(conn: multiprocessing.connection.Connection, env_factory: EnvFactory) -> None:
    """Serve commands until "close" or until the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    env: Env | None = None
    try:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                return  # the main process is gone
            name = command[0]
            if name == "close":
                return
            try:
                if name == "start":
                    _, spec, init_idx, seed, render = command
                    if env is None or env.spec != spec:
                        if env is not None:
                            env, old = None, env
                            old.close()
                        env = env_factory(spec)
                    obs = env.start(init_idx, seed, render=render)
                    reply: Any = ((obs, False, env.language, peak_rss_mb()), True)
                elif name == "step":
                    _, action, render = command
                    assert env is not None, "step before start"
                    obs, success = env.step(action, render=render)
                    reply = ((obs, success, env.language, peak_rss_mb()), True)
                else:
                    raise ValueError(f"unknown worker command {name!r}")
            except Exception as exc:  # carried back; the main process retries or stops the run
                reply = (_failure(SIMULATOR if _is_simulator_error(exc) else OTHER, exc), False)
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return
    finally:
        if env is not None:
            env.close()


def _is_simulator_error(exc: BaseException) -> bool:
    """Whether `exc` is a registered env kind's simulator failing (never imports a simulator)."""
    from vla_bench.envs import simulator_errors

    return isinstance(exc, simulator_errors())


def _failure(kind: str, exc: BaseException) -> WorkerFailure:
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return WorkerFailure(kind, message, traceback.format_exc())


class WorkerHandle:
    """The main process's side of one worker: a process and the pipe to it."""

    def __init__(self, index: int, env_factory: EnvFactory, context: multiprocessing.context.BaseContext) -> None:
        self.index = index
        parent, child = context.Pipe()
        self.conn = parent
        self.process = context.Process(
            target=worker_main, args=(child, env_factory), name=f"vla-bench-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.spec: EnvSpec | None = None  # the task env the worker holds (as far as we know)

    def send(self, command: tuple) -> None:
        try:
            self.conn.send(command)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerLost(f"worker {self.index}: pipe closed ({exc})") from None

    def receive(self) -> tuple[Any, bool]:
        """The reply to the last command; call only when the pipe is readable (see `wait_any`)."""
        try:
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            code = self.process.exitcode
            why = f"exit code {code}" if code is not None else type(exc).__name__
            raise WorkerLost(f"worker {self.index} died ({why})") from None

    def close(self, terminate: bool = False, timeout_s: float = 5.0) -> None:
        """Stop the worker; always returns with the process reaped. `terminate` skips the polite close."""
        if not terminate and self.process.is_alive():
            try:
                self.conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout_s)
        self.conn.close()


def wait_any(handles: list[WorkerHandle], timeout_s: float) -> list[WorkerHandle]:
    """Workers whose reply (or death) is ready, waiting at most `timeout_s`."""
    if not handles:
        return []
    by_conn = {h.conn: h for h in handles}
    ready = multiprocessing.connection.wait(list(by_conn), timeout=max(timeout_s, 0.0))
    return [by_conn[c] for c in ready]


def start_context(method: str = "spawn") -> multiprocessing.context.BaseContext:
    """Workers are spawned (never forked): each builds its own GL context from a clean process."""
    if method not in ("spawn", "forkserver"):
        raise ValueError(f"start method {method!r}: use spawn or forkserver")
    return multiprocessing.get_context(method)
