"""`vla-bench serve`: any registered policy behind openpi's websocket policy protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Optional

from vla_bench.commands import command
from vla_bench.errors import VlaBenchError
from vla_bench.specs import DEFAULT_PROTOCOL


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Serve a policy over openpi's websocket protocol (batching concurrent clients)."""

    policy: str
    """Registered policy name (see `vla-bench policies`)."""
    checkpoint: Optional[str] = None
    """Checkpoint path for policies that load weights or recorded actions."""
    port: int = 8000
    """TCP port (0: any free port; the chosen one is printed)."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 for every interface)."""
    protocol: str = DEFAULT_PROTOCOL
    """Protocol the policy executes its actions under (execution mode, gripper, image size)."""
    obs_preset: str = "openpi-libero"
    """Request keys clients send (openpi-libero: observation/image, observation/wrist_image, observation/state, prompt)."""
    obs_keys: Optional[str] = None
    """Rename request keys, "image=K,wrist_image=K,state=K,prompt=K" (any subset)."""
    max_batch: int = 32
    """Most requests answered by one batched infer call."""
    max_wait_ms: float = 2.0
    """Longest wait after a request for others to batch with it."""
    device: str = "cpu"
    """Torch device for model policies."""
    seed: int = 0
    """Seed for random policies."""
    strict_protocol: bool = False
    """Refuse a checkpoint whose expected protocol differs from --protocol."""


def server_metadata(config: ServeConfig, policy: Any, preset: Any, image_size: int) -> dict[str, Any]:
    """What every client receives on connecting (and a vla_bench client records in run.json)."""
    import vla_bench
    from vla_bench.evaluate import checkpoint_info

    model = policy.describe()
    return {
        "server": "vla_bench",
        "vla_bench_version": vla_bench.__version__,
        "policy": config.policy,
        "checkpoint": dataclasses.asdict(checkpoint_info(config.checkpoint)),
        "expected_protocol": (model or {}).get("expected_protocol"),
        "protocol": config.protocol,
        "image_size": image_size,
        "action_horizon": 1,
        "request_keys": dict(preset.keys),
        "model": model,
    }


@command("serve", ServeConfig)
def cmd_serve(config: ServeConfig) -> int:
    from vla_bench.policies import PolicyContext, make_policy
    from vla_bench.remote.presets import PRESETS
    from vla_bench.remote.server import PolicyServer
    from vla_bench.specs import protocols

    if config.max_batch < 1 or config.max_wait_ms < 0:
        raise VlaBenchError("--max-batch must be at least 1 and --max-wait-ms at least 0")
    preset = PRESETS.get(config.obs_preset).with_keys(config.obs_keys)
    protocol = protocols().get(config.protocol)
    _check_port(config.host, config.port)
    context = PolicyContext(
        protocol=protocol,
        checkpoint=None if config.checkpoint is None else Path(config.checkpoint),
        seed=config.seed,
        device=config.device,
        strict_protocol=config.strict_protocol,
    )
    policy = make_policy(config.policy, context)
    try:
        if policy.needs_privileged:
            raise VlaBenchError(f"policy {config.policy!r} reads simulator state, which the protocol does not carry")
        image_size = policy.image_size or protocol.model_image_size
        metadata = server_metadata(config, policy, preset, image_size)
        server = PolicyServer(policy, preset, metadata, config.max_batch, config.max_wait_ms / 1000)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        asyncio.run(_serve(server, config))
    finally:
        policy.close()
    return 0


async def _serve(server: Any, config: ServeConfig) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(config.host, config.port, ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        print(f"vla-bench: serving policy {config.policy!r} on ws://{config.host}:{server.port} "
              f"(GET /healthz; Ctrl-C stops)", file=sys.stderr, flush=True)
    else:
        waiter.cancel()
    await task


def _check_port(host: str, port: int) -> None:
    """Refuse a port already in use with one line (before loading the policy)."""
    if not 0 <= port < 65536:
        raise VlaBenchError(f"--port {port}: expected 0-65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise VlaBenchError(f"--host {host} --port {port} {reason}") from None
