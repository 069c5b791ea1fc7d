"""A policy server speaking openpi's websocket protocol, batching concurrent clients.

Every connection is an episode stream: it gets the server's metadata, then sends requests (one
observation each) and gets replies with `actions` (1, 7) (the policy's env action for that step)
and `policy_timing` / `server_timing`. The protocol has no reset message, so an episode starts when a
connection opens and ends when it closes; a client that keeps one connection for several episodes
starts a new one with the control message `{"__ctrl__": "episode_start"}` (replied to with
`{"__ack__": "episode_start"}`; `episode_end` likewise), as openpi's server at commit 04a8d0c does.
The step number the policy sees is the count of requests since the episode started.

Requests waiting at the same time (from any connection) go to the policy as one `infer` batch of at
most `max_batch`, gathered for at most `max_wait_s` after the first; the policy runs in one thread,
so it is never called concurrently. A request with missing, unknown or malformed keys gets a text
frame naming them and close code 1011, like any server error; other connections are unaffected.
`GET /healthz` answers 200.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import http
import itertools
import logging
import time
import traceback
from typing import Any

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.policies.base import Policy, check_output
from vla_bench.remote import codec
from vla_bench.remote.presets import ObservationPreset

LOG = logging.getLogger("vla_bench.serve")
CONTROL_KEY = "__ctrl__"


class BadRequest(ValueError):
    """A request the server refuses (its message goes to the client in the error frame)."""


@dataclasses.dataclass
class _Pending:
    observation: Observation
    future: asyncio.Future
    received: float


@dataclasses.dataclass
class _Stream:
    """One connection's current episode."""

    index: int
    episodes: int = 0
    steps: int = 0
    episode: Episode | None = None


class PolicyServer:
    """Serves `policy` to any number of concurrent clients (see module docstring)."""

    def __init__(
        self,
        policy: Policy,
        preset: ObservationPreset,
        metadata: dict[str, Any],
        max_batch: int = 32,
        max_wait_s: float = 0.002,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_s >= 0")
        self.policy = policy
        self.preset = preset
        self.metadata = metadata
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._keys = set(preset.keys.values())
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._ids = itertools.count()
        self.batches: list[int] = []  # sizes of the infer batches so far

    # -- serving -----------------------------------------------------------------------------------

    async def serve(self, host: str, port: int, ready: asyncio.Event | None = None) -> None:
        """Serve until cancelled."""
        from websockets.asyncio.server import serve

        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        batcher = asyncio.create_task(self._batches())
        try:
            async with serve(self._handle, host, port, compression=None, max_size=None,
                             process_request=_health_check) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                if ready is not None:
                    ready.set()
                await server.serve_forever()
        finally:
            batcher.cancel()
            self._thread.shutdown(wait=False)

    async def _handle(self, websocket: Any) -> None:
        import websockets.exceptions
        from websockets.frames import CloseCode

        stream = _Stream(next(self._ids))
        await websocket.send(codec.pack(self.metadata))
        try:
            while True:
                try:
                    payload = await websocket.recv()
                except websockets.exceptions.ConnectionClosed:
                    return
                received = time.monotonic()
                try:
                    reply = await self._answer(stream, payload, received)
                except BadRequest as exc:
                    LOG.warning("connection %d: %s", stream.index, exc)
                    await _send_error(websocket, f"vla_bench.remote.server.BadRequest: {exc}", CloseCode.INTERNAL_ERROR)
                    return
                except Exception:  # noqa: BLE001  (the policy failed: the client gets the traceback, like openpi's server)
                    LOG.exception("connection %d: policy error", stream.index)
                    await _send_error(websocket, traceback.format_exc(), CloseCode.INTERNAL_ERROR)
                    return
                try:
                    await websocket.send(codec.pack(reply))
                except websockets.exceptions.ConnectionClosed:
                    return
        finally:
            await self._end(stream)

    async def _answer(self, stream: _Stream, payload: Any, received: float) -> dict[str, Any]:
        if isinstance(payload, str):
            raise BadRequest("expected a binary msgpack frame, got a text frame")
        try:
            message = codec.unpack(payload)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not isinstance(message, dict):
            raise BadRequest(f"expected a map of observation keys, got {type(message).__name__}")
        if CONTROL_KEY in message:
            control = message[CONTROL_KEY]
            if control == "episode_start":
                await self._end(stream)
            elif control == "episode_end":
                await self._end(stream)
            return {"__ack__": control if control in ("episode_start", "episode_end") else "ignored"}
        unknown = sorted(str(k) for k in message if k not in self._keys)
        missing = sorted(k for k in self._keys if k not in message)
        if unknown or missing:
            parts = ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else [])
            raise BadRequest(f"request has {' and '.join(parts)}; expected exactly {sorted(self._keys)}")
        try:
            observation = self.preset.observation(message)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if stream.episode is None:
            stream.episode = Episode(suite=f"remote-{stream.index}", task_id=stream.episodes, init_idx=0, seed=0, max_steps=0)
            stream.episodes += 1
            stream.steps = 0
            await self._in_thread(self.policy.start_episode, stream.episode)
        observation.episode, observation.step = stream.episode.key, stream.steps
        stream.steps += 1
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(observation, future, received))
        actions, infer_s, batch = await future
        total_ms = (time.monotonic() - received) * 1000
        return {
            "actions": actions[None, :],
            "policy_timing": {"infer_ms": infer_s * 1000, "batch_size": batch},
            "server_timing": {"infer_ms": infer_s * 1000, "total_ms": total_ms},
        }

    async def _end(self, stream: _Stream) -> None:
        if stream.episode is not None:
            await self._in_thread(self.policy.end_episode, stream.episode)
            stream.episode = None

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # -- batching ----------------------------------------------------------------------------------

    async def _batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        self.batches.append(len(batch))
        start = time.monotonic()
        try:
            actions = await self._in_thread(self._infer, [p.observation for p in batch])
        except Exception as exc:  # noqa: BLE001  (each waiting connection reports it to its client)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        infer_s = time.monotonic() - start
        for pending, action in zip(batch, actions):
            if not pending.future.done():
                pending.future.set_result((action, infer_s, len(batch)))

    def _infer(self, observations: list[Observation]) -> np.ndarray:
        actions, _ = check_output(self.policy.infer(observations), len(observations), self.policy.uses_images)
        return actions


async def _send_error(websocket: Any, text: str, code: int) -> None:
    import websockets.exceptions

    try:
        await websocket.send(text)
        await websocket.close(code=code, reason="Internal server error. Traceback included in previous frame.")
    except websockets.exceptions.ConnectionClosed:
        pass


def _health_check(connection: Any, request: Any) -> Any:
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None
