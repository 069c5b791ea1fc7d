"""A real local Ray cluster for tests and benchmarks: a head and more node processes, on 127.0.0.1 only.

Every node is a `ray start --block` process in its own session (process group) with its own free
ports and a private temp dir, so tests never touch another Ray cluster on the machine (`ray stop`
would kill every Ray process of the user, other test runs' included). `stop` kills exactly the
process groups it started and then any process still naming the cluster's temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import psutil

# Ray rewrites a node address of 127.0.0.1 to the machine's outward IP (`resolve_ip_for_localhost`,
# so that other machines could reach it). Every node process and the test driver keep the loopback
# address as given instead.
KEEP_LOOPBACK = "import ray._private.services as s; s.resolve_ip_for_localhost = lambda host: host"
RAY_START = [sys.executable, "-c", f"{KEEP_LOOPBACK}; from ray.scripts.scripts import main; main()", "start"]
LOOPBACK = "127.0.0.1"
WORKER_PORTS = 32  # one per live worker process of a node (actors, idle workers)
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB; the default (30% of RAM) per node is far too much here


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on the loopback interface right now."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def cluster_env(python_path: Sequence[str] = ()) -> dict[str, str]:
    """The environment of every node: no usage stats; `python_path` importable by the workers."""
    env = dict(os.environ)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*python_path, env.get("PYTHONPATH")) if p)
    return env


class LocalCluster:
    """`nodes` Ray nodes of `cpus` CPUs each on loopback; `address` is the head's HOST:PORT."""

    def __init__(self, nodes: int = 2, cpus: int = 1, python_path: Sequence[str] = ()) -> None:
        self.nodes, self.cpus = nodes, cpus
        self.env = cluster_env(python_path)
        self.temp_dir = tempfile.mkdtemp(prefix="vr", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.processes: list[subprocess.Popen] = []
        self.address = ""

    def _node_args(self) -> list[str]:
        node, objects, agent, agent_grpc, metrics, runtime_env, *workers = free_ports(6 + WORKER_PORTS)
        return [
            f"--node-ip-address={LOOPBACK}", f"--num-cpus={self.cpus}", "--num-gpus=0",
            f"--object-store-memory={OBJECT_STORE_BYTES}", f"--node-manager-port={node}",
            f"--object-manager-port={objects}", f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}", f"--worker-port-list={','.join(map(str, workers))}",
            "--disable-usage-stats", "--block",
        ]

    def _spawn(self, args: list[str], name: str) -> None:
        log = open(Path(self.temp_dir) / f"{name}.log", "wb")
        self.processes.append(
            subprocess.Popen([*RAY_START, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        )

    def start(self, timeout_s: float = 90.0) -> "LocalCluster":
        (port,) = free_ports(1)
        self.address = f"{LOOPBACK}:{port}"
        self._spawn(["--head", f"--port={port}", "--include-dashboard=false",
                     f"--temp-dir={self.temp_dir}", *self._node_args()], "head")
        self._wait_nodes(1, timeout_s)
        for i in range(1, self.nodes):
            self._spawn([f"--address={self.address}", *self._node_args()], f"node{i}")
        self._wait_nodes(self.nodes, timeout_s)
        return self

    def _wait_nodes(self, count: int, timeout_s: float) -> None:
        """Until `count` nodes are alive (asked from a short-lived driver process)."""
        probe = (
            f"{KEEP_LOOPBACK}; import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(f"ray start exited with {p.returncode}: {self.logs()}")
            try:
                out = subprocess.run([sys.executable, "-c", probe, self.address], env=self.env,
                                     capture_output=True, text=True, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster did not reach {count} nodes in {timeout_s:g} s: {self.logs()}")

    def logs(self) -> str:
        """The tail of every node's `ray start` output (for errors)."""
        return " | ".join(p.read_text(errors="replace")[-800:] for p in Path(self.temp_dir).glob("*.log"))

    def processes_rss_mb(self) -> dict[str, float]:
        """Resident memory (MB) of every process of the cluster, by "name pid"."""
        found = {}
        for p in self.processes:
            with contextlib.suppress(psutil.Error):
                for proc in [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        found[f"{_role(proc)} {proc.pid}"] = round(proc.memory_info().rss / 1e6, 1)
        return found

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this cluster still running (they name its temp dir or descend from its nodes)."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(self.temp_dir in part for part in proc.info["cmdline"] or []):
                    found.append(proc)
        return found

    def stop(self) -> None:
        """Stop every process this cluster started; always returns with none left."""
        members = set()
        for p in self.processes:
            with contextlib.suppress(psutil.Error):
                members.update(psutil.Process(p.pid).children(recursive=True))
        for p in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)  # the node's own session: ray start and what it spawned
        for p in self.processes:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        members.update(self.leftovers())
        alive = [m for m in members if m.is_running()]
        for m in alive:
            with contextlib.suppress(psutil.Error):
                m.kill()
        psutil.wait_procs(alive, timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _role(proc: psutil.Process) -> str:
    """A readable name: the process name, or for Python processes the script or `ray start`."""
    name = proc.name()
    if not name.startswith("python"):
        return name
    args = proc.cmdline()
    if "start" in args and any("ray.scripts" in a for a in args):
        return "ray start --block"
    scripts = [Path(a).name for a in args[1:] if a.endswith(".py")]
    return scripts[0] if scripts else name


def keep_loopback() -> None:
    """Make this process's Ray driver connect to 127.0.0.1 as given (see KEEP_LOOPBACK)."""
    exec(KEEP_LOOPBACK, {})


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1, python_path: Sequence[str] = ()) -> Iterator[LocalCluster]:
    """A started `LocalCluster`, always stopped on exit."""
    cluster = LocalCluster(nodes, cpus, python_path)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
