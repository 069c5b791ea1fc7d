"""One client connection to a policy server speaking openpi's websocket protocol.

The server sends msgpack(metadata) first; then each binary request frame gets one binary reply. A
server that fails sends a text frame (its traceback) and closes with code 1011.
"""

from __future__ import annotations

from typing import Any

from vla_bench.errors import VlaBenchError
from vla_bench.remote import codec


class RemoteError(Exception):
    """A request to the policy server failed. `retry`: the connection broke (the episode may be
    retried after reconnecting) rather than the server or its reply being wrong."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class ServerUnavailable(VlaBenchError):
    """The server could not be reached, or does not speak the websocket protocol."""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(empty message)"


class Connection:
    """A websocket connection to a policy server (blocking; one request in flight at a time)."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 10.0) -> None:
        import websockets.exceptions
        from websockets.sync.client import connect

        self.url = url
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        try:
            self._ws = connect(url, compression=None, max_size=None, additional_headers=headers,
                               open_timeout=timeout_s, close_timeout=2.0, legacy=True)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException, ValueError) as exc:
            hint = " (is it a websocket policy server?)" if isinstance(exc, websockets.exceptions.InvalidHandshake) else ""
            raise ServerUnavailable(f"cannot connect to policy server {url}: {_describe(exc)}{hint}") from None
        try:
            first = self._ws.recv(timeout=timeout_s)
            if isinstance(first, str):
                raise ServerUnavailable(f"policy server {url} sent an error instead of its metadata: {_one_line(first)}")
            self.metadata = codec.unpack(first)
            if not isinstance(self.metadata, dict):
                raise ServerUnavailable(f"policy server {url} sent metadata of type {type(self.metadata).__name__}, not a map")
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException, ValueError) as exc:
            self.close()
            raise ServerUnavailable(f"policy server {url} did not send its metadata: {_describe(exc)}") from None
        except ServerUnavailable:
            self.close()
            raise

    def infer(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and return the reply; raises RemoteError."""
        import websockets.exceptions

        try:
            self._ws.send(codec.pack(request))
            reply = self._ws.recv(timeout=timeout_s)
        except TimeoutError:
            raise RemoteError(f"no reply from {self.url} within {timeout_s:g} s", retry=True) from None
        except websockets.exceptions.ConnectionClosed as exc:
            raise RemoteError(f"connection to {self.url} closed ({_describe(exc)})", retry=True) from None
        except OSError as exc:
            raise RemoteError(f"connection to {self.url} failed: {_describe(exc)}", retry=True) from None
        if isinstance(reply, str):
            raise RemoteError(f"server error: {_one_line(reply)}", retry=False)
        try:
            message = codec.unpack(reply)
        except ValueError as exc:
            raise RemoteError(f"unreadable reply from {self.url}: {exc}", retry=False) from None
        if not isinstance(message, dict):
            raise RemoteError(f"reply from {self.url} is a {type(message).__name__}, not a map", retry=False)
        return message

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001  (closing a broken socket must not mask the original error)
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return _one_line(text)
