"""Servers for the remote-policy tests: our PolicyServer in a thread, a scripted misbehaving server,
and `vla-bench serve` as a real subprocess. Every one is shut down by its context manager."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from vla_bench.remote import codec

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def policy_server_thread(server) -> Iterator[str]:
    """Run a PolicyServer on a free loopback port in a thread; yields its ws:// URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    started = asyncio.Event()

    async def main() -> None:
        task = asyncio.ensure_future(server.serve("127.0.0.1", 0, started))
        await started.wait()
        ready.set()
        await task

    holder: dict = {}

    def run() -> None:
        holder["task"] = loop.create_task(main())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(holder["task"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    try:
        yield f"ws://127.0.0.1:{server.port}"
    finally:
        loop.call_soon_threadsafe(holder["task"].cancel)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def scripted_server(answer: Callable[[int, int, dict], object], metadata: dict | None = None) -> Iterator[str]:
    """A websocket server that sends `metadata`, then answers request n of connection c with
    answer(c, n, request): a dict (sent packed), a str (sent as a text frame, then close 1011),
    or None (the connection is dropped)."""
    from websockets.sync.server import serve

    counter = iter(range(10**6))

    def handler(ws) -> None:
        conn = next(counter)
        ws.send(codec.pack(metadata or {"server": "scripted"}))
        for n in range(10**6):
            try:
                request = codec.unpack(ws.recv())
            except Exception:  # noqa: BLE001  (client went away)
                return
            reply = answer(conn, n, request)
            if reply is None:
                ws.socket.close()  # drop without a closing handshake
                return
            if isinstance(reply, str):
                ws.send(reply)
                ws.close(code=1011)
                return
            ws.send(codec.pack(reply))

    server = serve(handler, "127.0.0.1", 0, compression=None, max_size=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(10)


@contextlib.contextmanager
def serve_subprocess(*args: str, timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`vla-bench serve ARGS --port 0` as a real process; yields (its ws:// URL, the process)."""
    command = [sys.executable, "-m", "vla_bench.cli", "serve", *args, "--port", "0"]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = None
        lines = []
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        for line in process.stderr:
            lines.append(line)
            match = re.search(r"on (ws://\S+) ", line)
            if match:
                url = match.group(1)
                break
        timer.cancel()
        assert url is not None, f"vla-bench serve did not start: {''.join(lines)}"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
