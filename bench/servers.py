"""The servers under test as processes: roomcast's edge and the peers.

roomcast and the Node and naive peers listen on loopback with the same shape:
``/ws?token=T&topics=bench:tick`` upgrades after checking the JWT and answers with a
``connected`` message. Centrifugo speaks its own protocol on ``/connection/websocket``
(token in a connect command, then a subscribe per channel): a ServerProcess says which
protocol its clients speak and how to dial it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.feeds import centrifugo_channel
from bench.loadgen import CENTRIFUGO_PROTOCOL, ROOMCAST_PROTOCOL, Dial
from bench.messages import TOPIC, TYPE
from bench.peers import centrifugo
from bench.system import pin_process
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for
from roomcast_harness.services import ServiceProcess, http_status

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "peers" / "node"

ROOMCAST = "roomcast"
NODE_WS = "node_ws"
AIOHTTP_NAIVE = "aiohttp_naive"
# Centrifugo fed by its Kafka consumer (the comparison the targets use), by its HTTP API,
# and with its low-memory WebSocket settings (measured for handshakes and idle memory).
CENTRIFUGO = "centrifugo"
CENTRIFUGO_HTTP = "centrifugo_http"
CENTRIFUGO_LOWMEM = "centrifugo_lowmem"
CENTRIFUGOS = (CENTRIFUGO, CENTRIFUGO_HTTP, CENTRIFUGO_LOWMEM)
# roomcast's own variants, each measured beside `roomcast` in the same run:
# presence off (what presence costs), clients whose tokens expire each at a second of
# their own (what the expiry wheel costs), and the Redis Streams bus instead of Kafka.
ROOMCAST_NOPRESENCE = "roomcast_nopresence"
ROOMCAST_STAGGERED = "roomcast_staggered"
ROOMCAST_REDIS = "roomcast_redis"
ROOMCASTS = (ROOMCAST, ROOMCAST_NOPRESENCE, ROOMCAST_STAGGERED, ROOMCAST_REDIS)
ALL = (*ROOMCASTS, NODE_WS, AIOHTTP_NAIVE, *CENTRIFUGOS)
# Servers that need the run's Kafka, Redis and (for roomcast on Kafka) the publisher.
KAFKA_FED = (
    ROOMCAST,
    ROOMCAST_NOPRESENCE,
    ROOMCAST_STAGGERED,
    ROOMCAST_REDIS,
    CENTRIFUGO,
    CENTRIFUGO_LOWMEM,
)
# Measured for handshakes, idle memory and bursts only (the sustained sweep and `ticks`
# would tell nothing their comparison needs).
BURST_ONLY = (ROOMCAST_NOPRESENCE, ROOMCAST_STAGGERED)
# Also measured for a connect storm into one room (`handshake_room`): what presence
# costs shows only where connections join rooms, which the peers' clients cannot.
ROOM_HANDSHAKES = (ROOMCAST, ROOMCAST_NOPRESENCE)
BENCH_ROOM = "bench-room"


class ServerProcess:
    """One server under test: start, pid, URLs, stop."""

    protocol = ROOMCAST_PROTOCOL

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

    def dial(self, key: int, token: str, pairs: Sequence[tuple[str, str]]) -> Dial:
        """A connection subscribed at connect to these (topic, type) pairs."""
        topics = ",".join(f"{topic}:{type_}" for topic, type_ in pairs)
        return Dial(f"ws://127.0.0.1:{self.port}/ws?token={token}&topics={topics}", key)

    def dials(self, tokens: Sequence[str]) -> list[Dial]:
        """One connection per token, each subscribed to the bench topic."""
        return [self.dial(i, t, [(TOPIC, TYPE)]) for i, t in enumerate(tokens)]

    def room_dials(self, tokens: Sequence[str], room: str) -> list[Dial]:
        """One connection per token, each subscribed to the bench topic and in `room`."""
        return [Dial(f"{dial.url}&roomIds={room}", dial.key) for dial in self.dials(tokens)]

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


class CentrifugoProcess(ServerProcess):
    protocol = CENTRIFUGO_PROTOCOL

    def ws_url(self, token: str) -> str:
        return f"ws://127.0.0.1:{self.port}{centrifugo.WS_PATH}"

    def dial(self, key: int, token: str, pairs: Sequence[tuple[str, str]]) -> Dial:
        channels = tuple(centrifugo_channel(topic, type_) for topic, type_ in pairs)
        return Dial(self.ws_url(token), key, token, channels)


def start_centrifugo(
    name: str,
    workdir: Path,
    cpus: frozenset[int] | None,
    secret: str,
    api_key: str,
    kafka: centrifugo.KafkaSource | None,
    low_memory: bool = False,
) -> CentrifugoProcess:
    executable = centrifugo.binary()
    server = CentrifugoProcess(name, workdir, cpus)
    document = centrifugo.config(server.port, secret, api_key, kafka, low_memory)
    path = centrifugo.write_config(workdir / f"{name}-{server.port}.json", document)
    # Go sizes its scheduler from the CPUs it may use at start: give it the server's.
    env = {"GOMAXPROCS": str(len(cpus))} if cpus else {}
    server.start_process([str(executable), "--config", str(path)], env, workdir)
    return server


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


def start_edge(
    workdir: Path, cpus: frozenset[int] | None, env: Mapping[str, str], name: str = ROOMCAST
) -> ServerProcess:
    server = ServerProcess(name, workdir, cpus)
    server.start_service(edge_env(env))
    return server
