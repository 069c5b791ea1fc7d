"""One evaluation run's folder for the length of an `eval`: create or resume it, write each record as
it arrives, show progress, and record how the run ended (finished, interrupted, failed)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import Policy
from vla_bench.remote.options import redact_argv
from vla_bench.results.description import RunDescription, read_description
from vla_bench.results.identity import Purpose, identity_differences
from vla_bench.results.io import RunWriter, read_episodes
from vla_bench.results.lock import RunLock
from vla_bench.results.schema import EPISODES_FILE, RETRIED_FILE, STATUS_ERROR, STATUS_OK, EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.rollout.executor import Executor
from vla_bench.specs import Protocol


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Progress:
    """One tqdm bar: episodes done / total (ETA), errors, running success rate, env steps/s."""

    def __init__(self, total: int, enabled: bool, done: int = 0) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="ep", disable=not enabled, dynamic_ncols=True)
        self.successes = 0
        self.ok = 0
        self.errors = 0
        self.steps = 0
        self.start = time.monotonic()
        self._shown = 0.0

    def step(self) -> None:
        self.steps += 1
        now = time.monotonic()
        if now - self._shown > 1.0:
            self._shown = now
            self._postfix(refresh=True)

    def _postfix(self, refresh: bool) -> None:
        rate = f"{100 * self.successes / self.ok:.1f}%" if self.ok else "n/a"
        speed = self.steps / max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix(success=rate, errors=self.errors, steps_s=f"{speed:.1f}", refresh=refresh)

    def update(self, record: EpisodeRecord) -> None:
        if record.status == STATUS_OK:
            self.ok += 1
            self.successes += int(record.success)
        else:
            self.errors += 1
        self._postfix(refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class RunTerminated(KeyboardInterrupt):
    """SIGTERM arrived: the run stops as on Ctrl-C (status "interrupted", resumable)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While active, SIGTERM raises RunTerminated in the main thread, as SIGINT raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunTerminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_failed(run_dir: Path, exc: OSError) -> VlaBenchError:
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return VlaBenchError(f"cannot write the run folder {run_dir}: {reason}{where}")


class Run:
    """Owns a run folder while episodes are executed into it.

    `Run.create` starts a new folder; `Run.resume` validates an existing one completely (run.json,
    identity with this invocation, every record) before it changes anything in it. Both take the
    folder's lock (`results/lock.py`) first: a second eval on the folder refuses. `execute` drives an
    executor and writes every record it yields (appended and fsynced one by one), then writes the end
    status and summaries whatever happened, and releases the lock.
    """

    def __init__(self, writer: RunWriter, lock: RunLock, episodes: Sequence[Episode], todo: Sequence[Episode],
                 progress: bool, peak_rss_mb: float | None = None) -> None:
        self.writer = writer
        self.lock = lock
        self.run_dir = writer.run_dir
        self.episodes = list(episodes)
        self.todo = list(todo)
        self.progress = Progress(len(self.episodes), progress, done=len(self.episodes) - len(self.todo))
        self._peak_rss = [peak_rss_mb] if peak_rss_mb else []

    @classmethod
    def create(cls, run_dir: Path, description: RunDescription, episodes: Sequence[Episode], progress: bool = True) -> Run:
        """A new run folder for `episodes`; refuses a folder that already holds a run or is in use."""
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = RunLock(run_dir).acquire()
        except OSError as exc:
            raise write_failed(run_dir, exc) from None
        try:
            writer = RunWriter.create(run_dir, dataclasses.replace(description, started_at=now()))
        except OSError as exc:
            lock.release()
            raise write_failed(run_dir, exc) from None
        except BaseException:
            lock.release()
            raise
        return cls(writer, lock, episodes, episodes, progress)

    @classmethod
    def resume(cls, run_dir: Path, description: RunDescription, episodes: Sequence[Episode], progress: bool = True,
               retry_errors: bool = False) -> Run:
        """Continue the run in `run_dir`: only episodes without a record remain to do (and, with
        `retry_errors`, those recorded as errors: their records move to `retried-errors.jsonl`).
        Refuses, before writing anything, a folder that is not a run, is in use, was started with
        other settings, or holds a malformed record."""
        if not run_dir.is_dir():
            read_description(run_dir)  # raises: not a run folder
        try:
            lock = RunLock(run_dir).acquire()
        except OSError as exc:
            raise write_failed(run_dir, exc) from None
        try:
            old = read_description(run_dir)
            problems = identity_differences(old, description, Purpose.RESUME)
            if problems:
                listed = "; ".join(str(p) for p in problems)
                raise VlaBenchError(f"cannot resume {run_dir}: it was started with other settings (run folder vs this command): {listed}")
            records = read_episodes(run_dir)
            retried = [r for r in records if r.status == STATUS_ERROR] if retry_errors else []
            entry = {"at": now(), "command": redact_argv(sys.argv), "workers": description.workers, "executor": description.executor}
            if retry_errors:
                entry["retried_errors"] = len(retried)
            try:
                if retried:
                    set_aside_records(run_dir, [r for r in records if r.status != STATUS_ERROR], retried)
                writer = RunWriter.reopen(run_dir, dataclasses.replace(old, resumed=(*old.resumed, entry)))
            except OSError as exc:
                raise write_failed(run_dir, exc) from None
        except BaseException:
            lock.release()
            raise
        retried_keys = {r.key for r in retried}
        done = {r.key for r in records if r.key not in retried_keys}
        todo = [e for e in episodes if e.key not in done]
        return cls(writer, lock, episodes, todo, progress, old.worker_peak_rss_mb)

    def add(self, record: EpisodeRecord) -> None:
        """Write one record (fsynced) and count it."""
        self.writer.append(record)
        self.progress.update(record)
        if record.worker_peak_rss_mb is not None:
            self._peak_rss.append(record.worker_peak_rss_mb)

    def execute(
        self,
        executor: Executor,
        policy: Policy,
        protocol: Protocol,
        on_record: Callable[[EpisodeRecord], None] | None = None,
    ) -> Summary:
        """Run the remaining episodes on `executor`, writing each record as it arrives; always ends by
        recording the run's status (finished, interrupted on Ctrl-C or SIGTERM, failed) and its
        summaries. A failed write (read-only folder, full disk) stops the run with a one-line error."""
        status = "failed"
        hint = True  # say how to continue (not when the error message already does)
        start = time.monotonic()
        try:
            with sigterm_interrupts(), contextlib.closing(
                executor.run(self.todo, policy, protocol, self.progress.step)
            ) as records:
                for record in records:
                    try:
                        self.add(record)
                    except OSError as exc:
                        hint = False
                        raise VlaBenchError(
                            f"{write_failed(self.run_dir, exc)}; the run stopped (records written before are kept: "
                            f"continue it with --resume --output {self.run_dir} once it is writable)"
                        ) from None
                    if on_record is not None:
                        on_record(record)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.progress.close()
            summary = self._close(status, time.monotonic() - start)
            if status != "finished" and hint:
                print(f"vla-bench: run {status}; continue it with --resume --output {self.run_dir}", file=sys.stderr)
        if summary is None:
            raise VlaBenchError(f"cannot write the end of the run to {self.run_dir} (run.json, summaries)")
        return summary

    def _close(self, status: str, wall_s: float) -> Summary | None:
        """Record the end status and summaries and release the lock; None if the folder refused the writes
        (the exception in flight, if any, says why)."""
        try:
            return self.writer.finish(
                status,
                finished_at=now(),
                wall_s=round(wall_s, 2),
                worker_peak_rss_mb=max(self._peak_rss, default=None),
            )
        except OSError:
            return None
        finally:
            self.lock.release()


def set_aside_records(run_dir: Path, keep: Sequence[EpisodeRecord], retried: Sequence[EpisodeRecord]) -> None:
    """Move `retried` records out of episodes.jsonl into retried-errors.jsonl (appended first, so no
    record is ever only in memory), then rewrite episodes.jsonl with `keep` atomically."""
    with open(run_dir / RETRIED_FILE, "a") as f:
        for record in retried:
            f.write(json.dumps(record.to_dict()) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp = run_dir / (EPISODES_FILE + ".tmp")
    with open(tmp, "w") as f:
        for record in keep:
            f.write(json.dumps(record.to_dict()) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / EPISODES_FILE)
