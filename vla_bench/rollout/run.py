"""One evaluation run's folder for the length of an `eval`: create or resume it, write each record as
it arrives, show progress, and record how the run ended (finished, interrupted, failed)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import Policy
from vla_bench.remote.options import redact_argv
from vla_bench.results.io import RunWriter, read_episodes, read_run
from vla_bench.results.schema import STATUS_OK, EpisodeRecord
from vla_bench.results.summary import Summary
from vla_bench.rollout.executor import Executor
from vla_bench.runs import identity_differences
from vla_bench.specs import Protocol


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def as_json(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as it reads back from run.json (tuples become lists), for comparisons."""
    return json.loads(json.dumps(data, default=str))


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


class Run:
    """Owns a run folder while episodes are executed into it.

    `Run.create` starts a new folder; `Run.resume` validates an existing one completely (run.json,
    identity with this invocation, every record) before it changes anything in it. `execute` drives an
    executor and writes every record it yields (appended and fsynced one by one), then writes the end
    status and summaries whatever happened.
    """

    def __init__(self, writer: RunWriter, episodes: Sequence[Episode], todo: Sequence[Episode], progress: bool,
                 peak_rss_mb: float | None = None) -> None:
        self.writer = writer
        self.run_dir = writer.run_dir
        self.episodes = list(episodes)
        self.todo = list(todo)
        self.progress = Progress(len(self.episodes), progress, done=len(self.episodes) - len(self.todo))
        self._peak_rss = [peak_rss_mb] if peak_rss_mb else []

    @classmethod
    def create(cls, run_dir: Path, info: dict[str, Any], episodes: Sequence[Episode], progress: bool = True) -> Run:
        """A new run folder for `episodes`; refuses a folder that already holds a run."""
        writer = RunWriter.create(run_dir, {**info, "started_at": now()})
        return cls(writer, episodes, episodes, progress)

    @classmethod
    def resume(cls, run_dir: Path, info: dict[str, Any], episodes: Sequence[Episode], progress: bool = True) -> Run:
        """Continue the run in `run_dir`: only episodes without a record remain to do. Refuses (before
        writing anything) a folder that is not a run, was started with other settings, or holds a
        malformed record."""
        old = read_run(run_dir)
        problems = identity_differences(old, as_json(info))
        if problems:
            raise VlaBenchError(f"cannot resume {run_dir}: it was started with other settings: {'; '.join(problems)}")
        done = {record.key for record in read_episodes(run_dir)}
        resumed = [*old.get("resumed", []), {"at": now(), "command": redact_argv(sys.argv), "workers": info.get("workers")}]
        writer = RunWriter.reopen(run_dir, {**old, "resumed": resumed})
        todo = [e for e in episodes if e.key not in done]
        return cls(writer, episodes, todo, progress, old.get("worker_peak_rss_mb"))

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
        recording the run's status (finished, interrupted, failed) and its summaries."""
        status = "failed"
        start = time.monotonic()
        try:
            with contextlib.closing(executor.run(self.todo, policy, protocol, self.progress.step)) as records:
                for record in records:
                    self.add(record)
                    if on_record is not None:
                        on_record(record)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.progress.close()
            summary = self.writer.finish(
                status,
                finished_at=now(),
                wall_s=round(time.monotonic() - start, 2),
                worker_peak_rss_mb=max(self._peak_rss, default=None),
            )
            if status != "finished":
                print(f"vla-bench: run {status}; continue it with --resume --output {self.run_dir}", file=sys.stderr)
        return summary
