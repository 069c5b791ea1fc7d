"""An exclusive lock on a run folder, so that two `eval` processes never write one run.

The lock is `<run>/.vla-bench.lock`: an advisory `flock` held for the life of the run (the kernel
drops it when the process dies, however it dies) on a file that names its holder (pid, host). A
second process finds the flock taken and refuses, naming the holder. A lock file left by a process
that died is taken over when it names a pid on this host that no longer runs; one naming another host
is refused (we cannot tell whether that process still runs), and the message says how to clear it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from pathlib import Path

from vla_bench.errors import VlaBenchError

LOCK_FILE = ".vla-bench.lock"


class RunLocked(VlaBenchError):
    """Another process holds the run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace")
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"


class RunLock:
    """Held while a run folder is written; `acquire` raises RunLocked naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        host = socket.gethostname()
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise RunLocked(
                        f"{self.path.parent} is in use by another vla-bench eval ({_describe(holder)}); "
                        "wait for it to end or choose another --output"
                    ) from None
                raise
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder released (removed) the file between our open and flock
                os.close(fd)
                continue
            break
        holder = _read_holder(fd)
        pid = holder.get("pid")
        if holder and holder.get("host") != host:
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent} is locked by {_describe(holder)}; if that eval no longer runs, "
                f"delete {self.path} and retry"
            )
        if holder and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            os.close(fd)  # a live process on this host that does not hold the flock: refuse all the same
            raise RunLocked(f"{self.path.parent} is in use by another vla-bench eval ({_describe(holder)})")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": host}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then drop the flock (a waiter re-checks that it locked the live file)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass  # e.g. the folder became read-only; the flock below still goes with the process
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
