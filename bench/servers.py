"""The servers under test as processes: roomcast's edge and the two peers.

Every server listens on loopback with the same shape: ``/ws?token=T&topics=bench:tick``
upgrades after checking the JWT and answers with a ``connected`` message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.messages import TOPIC, TYPE
from bench.system import pin_process
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for
from roomcast_harness.services import ServiceProcess, http_status

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "peers" / "node"

ROOMCAST = "roomcast"
NODE_WS = "node_ws"
AIOHTTP_NAIVE = "aiohttp_naive"
ALL = (ROOMCAST, NODE_WS, AIOHTTP_NAIVE)


class ServerProcess:
    """One server under test: start, pid, URLs, stop."""

    def __init__(self, name: str, workdir: Path, cpus: frozenset[int] | None) -> None:
        self.name = name
        self.workdir = workdir
        self.cpus = cpus
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._service: ServiceProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?token={token}&topics={TOPIC}:{TYPE}"

    @property
    def pid(self) -> int:
        if self._service is not None:
            return self._service.pid
        assert self._proc is not None, f"{self.name} is not running"
        return self._proc.pid

    @property
    def running(self) -> bool:
        if self._service is not None:
            return not self._service.exited
        return self._proc is not None and self._proc.poll() is None

    def start_process(self, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        log = self.workdir / f"{self.name}-{self.port}.log"
        self._proc = spawn(argv, log, env={**os.environ, **env}, cwd=cwd)

        def up() -> bool:
            return not self.running or http_status(self.base_url + "/health") == 200

        wait_for(up, 60, f"{self.name} to listen", interval=0.1)
        if not self.running:
            raise RuntimeError(f"{self.name} exited at start:\n{tail(log)}")
        self._pin()

    def start_service(self, env: Mapping[str, str]) -> None:
        self._service = ServiceProcess("edge", env, self.workdir, port=self.port)
        self._service.start(timeout=90)
        self._pin()

    def _pin(self) -> None:
        if self.cpus:
            pin_process(self.pid, self.cpus)

    def logs(self) -> str:
        if self._service is not None:
            return self._service.logs()
        return tail(self.workdir / f"{self.name}-{self.port}.log")

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
            self._service = None
        if self._proc is not None:
            stop(self._proc, timeout=15)
            self._proc = None


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "ws").is_dir()


def start_node_peer(workdir: Path, cpus: frozenset[int] | None, secret: str) -> ServerProcess:
    node = shutil.which("node")
    if node is None or not node_available():
        raise RuntimeError("node and bench/peers/node/node_modules are needed (npm ci there)")
    server = ServerProcess(NODE_WS, workdir, cpus)
    argv = [node, str(NODE_DIR / "server.js"), "--port", str(server.port)]
    server.start_process(argv, {"BENCH_JWT_SECRET": secret}, NODE_DIR)
    return server


def start_naive_peer(workdir: Path, cpus: frozenset[int] | None, secret: str) -> ServerProcess:
    server = ServerProcess(AIOHTTP_NAIVE, workdir, cpus)
    argv = [sys.executable, "-m", "bench.peers.naive_aiohttp", "--port", str(server.port)]
    env = {"BENCH_JWT_SECRET": secret, "PYTHONPATH": str(ROOT)}
    server.start_process(argv, env, ROOT)
    return server


def edge_env(base: Mapping[str, str]) -> dict[str, str]:
    """Edge settings for a benchmark: room for every connection, no heartbeat closes."""
    return {
        **base,
        "ROOMCAST_LOG__LEVEL": "WARNING",
        "ROOMCAST_EDGE__MAX_CONNECTIONS": "20000",
        "ROOMCAST_EDGE__MAX_OUTBOUND_BYTES": str(16 * 1024 * 1024),
        "ROOMCAST_EDGE__HEARTBEAT_TIMEOUT": "86400",
        "ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL": "3600",
        "OTEL_SDK_DISABLED": "true",
    }


def start_edge(workdir: Path, cpus: frozenset[int] | None, env: Mapping[str, str]) -> ServerProcess:
    server = ServerProcess(ROOMCAST, workdir, cpus)
    server.start_service(edge_env(env))
    return server
