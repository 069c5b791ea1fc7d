"""`remote`: a policy served over openpi's websocket protocol (openpi, LeRobot or `vla-bench serve`).

Each episode has its own connection (opened at its first query, closed when it ends), so many envs
share the server concurrently and a server that keeps per-connection state sees one episode per
connection. One `infer` call sends the requests of every episode that needs a new chunk at once (one
thread per request) and waits for all replies. A returned chunk (H, 7) of env actions is executed for
`replan_steps` steps (at most H) before the next query; only query steps read images, so envs render
only those. A connection that breaks makes that episode an error that the pool retries from its start
on a new connection; a server error frame or a malformed reply makes it an error with that message.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from vla_bench.envs.base import ACTION_DIM, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyEpisodeErrors, VlaBenchError
from vla_bench.policies.base import POLICIES, Policy, PolicyContext, PolicyOutput
from vla_bench.remote.client import Connection, RemoteError, ServerUnavailable
from vla_bench.remote.options import RemoteOptions
from vla_bench.remote.presets import PRESETS
from vla_bench.specs import Protocol

# Open connections kept for episodes that did not say they ended (the contract on main has no end
# call yet); the least recently used beyond this are closed.
MAX_OPEN_EPISODES = 256


@dataclasses.dataclass
class _Link:
    """One episode's connection and the actions left of its last chunk."""

    connection: Connection | None = None
    queue: collections.deque = dataclasses.field(default_factory=collections.deque)
    used: float = dataclasses.field(default_factory=time.monotonic)


def check_reply(reply: dict[str, Any]) -> np.ndarray:
    """The (H, 7) action chunk of a reply; raises RemoteError naming what is wrong."""
    if "actions" not in reply:
        raise RemoteError(f"reply has no 'actions' (keys: {sorted(map(str, reply))})", retry=False)
    actions = reply["actions"]
    if not isinstance(actions, np.ndarray) or actions.dtype.kind not in "fiu":
        raise RemoteError(f"reply 'actions' is {type(actions).__name__}, not a numeric array", retry=False)
    if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != ACTION_DIM:
        raise RemoteError(f"reply 'actions' has shape {tuple(actions.shape)}; expected (H, {ACTION_DIM})", retry=False)
    if not np.all(np.isfinite(actions)):
        raise RemoteError(f"reply 'actions' of shape {tuple(actions.shape)} holds NaN or inf", retry=False)
    return np.asarray(actions, dtype=np.float64)


def json_safe(value: Any) -> Any:
    """Server metadata as JSON can hold it (bytes keys/values decoded, arrays as lists)."""
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


class RemotePolicy(Policy):
    """Queries a policy server, one connection per episode (see module docstring)."""

    uses_images = True

    def __init__(self, options: RemoteOptions, protocol: Protocol) -> None:
        assert options.server is not None
        self.options = options
        self.url = options.server
        preset = PRESETS.get(options.obs_preset).with_keys(options.obs_keys)
        probe = Connection(self.url, options.api_key, options.connect_timeout)  # fails before the run starts
        self.metadata = probe.metadata
        probe.close()
        served_size = self.metadata.get("image_size")
        if isinstance(served_size, int):
            # A vla_bench server names the image size its policy reads: the env delivers exactly that.
            self.image_size = served_size
            preset = dataclasses.replace(preset, image_size=None)
        else:
            self.image_size = protocol.render_size  # rendered size; the preset resizes as its client does
        self.preset = preset
        self.replan_steps = options.replan_steps or preset.replan_steps
        self._links: dict[str, _Link] = {}
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="remote-policy")
        self.requests = 0
        self.request_s = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (the Ray executor ships the policy to an actor): connections and threads are remade there.
        state = dict(self.__dict__)
        state["_links"], state["_threads"] = {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="remote-policy")

    # -- episodes --------------------------------------------------------------------------------

    def start_episode(self, episode: Episode) -> None:
        self._close_link(episode.key)
        self._links[episode.key] = _Link()
        while len(self._links) > MAX_OPEN_EPISODES:
            oldest = min(self._links, key=lambda key: self._links[key].used)
            self._close_link(oldest)

    def end_episode(self, episode: Episode) -> None:
        """Close the episode's connection (the server ends its episode state)."""
        self._close_link(episode.key)

    def _close_link(self, key: str) -> None:
        link = self._links.pop(key, None)
        if link is not None and link.connection is not None:
            link.connection.close()

    def _needs_query(self, episode: str) -> bool:
        link = self._links.get(episode)
        return link is None or not link.queue

    # -- queries ---------------------------------------------------------------------------------

    def _connect(self) -> Connection:
        """A new connection, retried for up to reconnect_timeout while the server is unreachable."""
        deadline = time.monotonic() + self.options.reconnect_timeout
        while True:
            try:
                connection = Connection(self.url, self.options.api_key, self.options.connect_timeout)
                break
            except ServerUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise RemoteError(str(exc), retry=True) from None
                time.sleep(0.5)
        if json_safe(connection.metadata) != json_safe(self.metadata):
            connection.close()
            raise RemoteError(f"policy server {self.url} now serves another model (its metadata changed)", retry=False)
        return connection

    def _query(self, obs: Observation) -> np.ndarray:
        link = self._links.setdefault(obs.episode, _Link())
        try:
            if link.connection is None:
                link.connection = self._connect()
            start = time.monotonic()
            reply = link.connection.infer(self.preset.request(obs), self.options.request_timeout)
            self.request_s += time.monotonic() - start
            self.requests += 1
            return check_reply(reply)[: self.replan_steps]
        except RemoteError:
            if link.connection is not None:
                link.connection.close()
                link.connection = None
            raise

    def infer(self, observations: Sequence[Observation]) -> PolicyOutput:
        """Actions from each episode's chunk (querying the server when it ran out), and per row whether
        the next step queries again (reads images)."""
        now = time.monotonic()
        rows = [i for i, obs in enumerate(observations) if self._needs_query(obs.episode)]
        futures = {i: self._threads.submit(self._query, observations[i]) for i in rows}
        errors: dict[int, tuple[str, bool]] = {}
        for i, future in futures.items():
            try:
                chunk = future.result()
            except RemoteError as exc:
                errors[i] = (f"remote policy: {exc}", exc.retry)
                continue
            self._links[observations[i].episode].queue.extend(chunk)
        actions = np.zeros((len(observations), ACTION_DIM))
        for i, obs in enumerate(observations):
            if i in errors:
                continue
            link = self._links[obs.episode]
            link.used = now
            actions[i] = link.queue.popleft()
        output = PolicyOutput(actions, [self.uses_images and self._needs_query(obs.episode) for obs in observations])
        if errors:
            raise PolicyEpisodeErrors(output, errors)
        return output

    # -- records ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        identity = {
            "model_name": self.options.model_name,
            "server_metadata": json_safe(self.metadata),
            "obs_preset": self.options.obs_preset,
            "obs_keys": self.preset.keys,
            "replan_steps": self.replan_steps,
        }
        return {"server": self.url, **identity, "identity": identity}

    def close(self) -> None:
        for key in list(self._links):
            self._close_link(key)
        self._threads.shutdown(wait=True)


@POLICIES.register("remote")
def _remote(context: PolicyContext) -> Policy:
    """A model behind an openpi-protocol websocket server: --server ws://HOST:PORT [--model-name ...]."""
    options = context.remote or RemoteOptions()
    if options.server is None:
        raise VlaBenchError("policy 'remote' needs --server ws://HOST:PORT (a policy server speaking openpi's protocol)")
    return RemotePolicy(options, context.protocol)
