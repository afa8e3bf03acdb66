"""A bounded soak: publishes, client churn, stalled clients and one Kafka restart.

    SOAK_SECONDS=120 uv run python -m tests.robustness.soak      (what `make soak` runs)

Everything runs as its own process on a private Redis and Kafka: a publisher and two
edges. Clients join and leave for good, drop and reconnect with `since` (to either
edge), a few never read; half way through the broker is stopped and started again.
At the end the ledger is printed and the exit status is 1 on any loss, duplicate or
unentitled delivery. `run_soak` is also what the short test in test_soak.py runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import websockets

from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import WAIT, connect, token
from tests.robustness.ledger import Ledger, LedgerReport
from tests.robustness.support import Watcher, metrics, publish_http, rewatch, watch

ROOMS = ("s1", "s2", "s3")
HEAVY_ROOM = "heavy"
# (rooms, subscriptions) a client may have; every delivery rule gets traffic.
SHAPES: list[tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = [
    (("s1",), ()),
    (("s1", "s2"), ()),
    ((), (("quotes", "*"),)),
    (("s3",), (("quotes", "tick"),)),
    ((), ()),
]
# What publishers send, in turn: rooms, topics with and without type, both, broadcast.
KINDS: list[dict[str, str]] = [
    {"room": "s1"},
    {"room": "s2"},
    {"topic": "quotes", "type_": "tick"},
    {"room": "s3", "topic": "quotes", "type_": "tick"},
    {"topic": "quotes"},
    {"room": "s3"},
    {},
]


@dataclass(frozen=True)
class SoakConfig:
    seconds: float
    clients: int = 30
    stalled: int = 3
    publishers: int = 3
    churn_interval: float = 0.5


@dataclass
class Live:
    """A ledger client and the token it reconnects with."""

    watcher: Watcher
    token: str
    query: dict[str, str]


@dataclass
class SoakStats:
    publishes: Counter[int] = field(default_factory=Counter)
    departed: int = 0
    joined: int = 0
    reconnects: int = 0
    refused_reconnects: int = 0
    kafka_restarts: int = 0
    slow_cuts: float = 0.0

    def text(self) -> str:
        statuses = ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(self.publishes.items()))
        return (
            f"soak: publishes by status {{{statuses}}}; clients joined {self.joined}, "
            f"left for good {self.departed}, reconnected with since {self.reconnects} "
            f"({self.refused_reconnects} handshakes refused and retried); "
            f"Kafka restarts {self.kafka_restarts}; stalled clients cut (4008) {self.slow_cuts:.0f}"
        )


def _query(shape: tuple[tuple[str, ...], tuple[tuple[str, str], ...]]) -> dict[str, str]:
    rooms, subscriptions = shape
    query = {}
    if rooms:
        query["roomIds"] = ",".join(rooms)
    if subscriptions:
        query["topics"] = ",".join(f"{t}:{k}" for t, k in subscriptions)
    return query


class Soak:
    def __init__(self, config: SoakConfig, edges: list[ServiceProcess], publisher_url: str) -> None:
        self.config = config
        self.edges = edges
        self.publisher_url = publisher_url
        self.ledger = Ledger()
        self.stats = SoakStats()
        self.live: list[Live] = []
        self.broken: list[Live] = []  # lost their socket, waiting to reconnect
        self.stop = asyncio.Event()
        self.rng = random.Random(7)
        self._names = 0

    def _edge(self) -> ServiceProcess:
        return self.rng.choice(self.edges)

    async def join(self) -> None:
        self._names += 1
        shape = self.rng.choice(SHAPES)
        tok = token()
        query = _query(shape)
        subscriptions = shape[1]
        watcher = await watch(
            self.ledger,
            f"client-{self._names}",
            self._edge(),
            tok,
            subscriptions,
            **{k: v for k, v in query.items() if k != "topics"},
        )
        self.live.append(Live(watcher, tok, query))
        self.stats.joined += 1

    async def _reconnect(self, live: Live) -> bool:
        try:
            watcher = await rewatch(live.watcher.record, self._edge(), live.token, **live.query)
        except (websockets.InvalidStatus, OSError, TimeoutError):
            self.stats.refused_reconnects += 1
            return False
        self.live.append(Live(watcher, live.token, live.query))
        self.stats.reconnects += 1
        return True

    async def churn(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.config.churn_interval)
            # Connections the edge closed (or that broke) go back to the reconnect queue.
            for live in [x for x in self.live if x.watcher.close_code is not None]:
                self.live.remove(live)
                self.broken.append(live)
            for live in list(self.broken):
                if await self._reconnect(live):
                    self.broken.remove(live)
            if not self.live:
                continue
            live = self.rng.choice(self.live)
            self.live.remove(live)
            await live.watcher.close()
            if self.rng.random() < 0.3:
                live.watcher.record.departed = True  # gone for good
                self.stats.departed += 1
                with contextlib.suppress(websockets.InvalidStatus, OSError, TimeoutError):
                    await self.join()
            elif not await self._reconnect(live):
                self.broken.append(live)

    async def publish(self, worker: int, session: aiohttp.ClientSession) -> None:
        sent = worker
        while not self.stop.is_set():
            kind = KINDS[sent % len(KINDS)]
            status, _ = await publish_http(session, self.publisher_url, self.ledger, **kind)
            self.stats.publishes[status] += 1
            sent += 1
            await asyncio.sleep(0.02 if status == 202 else 0.2)

    async def heavy(self, session: aiohttp.ClientSession) -> None:
        """Large messages for the stalled clients' room, so their buffers overflow."""
        body = {"room": HEAVY_ROOM, "payload": "h" * 32768}
        while not self.stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.post(self.publisher_url + "/v1/messages", json=body):
                    pass
            await asyncio.sleep(0.05)

    async def finish(self) -> None:
        """Bring every client back, then wait until each has what it is entitled to."""
        deadline = time.monotonic() + WAIT * 6
        while self.broken and time.monotonic() < deadline:
            for live in list(self.broken):
                if await self._reconnect(live):
                    self.broken.remove(live)
            await asyncio.sleep(0.5)
        for live in self.broken:  # never came back: held to what it reached
            live.watcher.record.departed = True
        for live in self.live:
            with contextlib.suppress(TimeoutError, AssertionError):
                await live.watcher.wait_for(
                    self.ledger.expected(live.watcher.record), timeout=WAIT * 3
                )
            await live.watcher.close()


async def _stalled(edge: ServiceProcess) -> websockets.ClientConnection:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", edge.port))
    # close_timeout: at the end a stalled client is dropped, not politely closed.
    options = {"sock": sock, "max_queue": 1, "close_timeout": 0.5}
    ws, _ = await connect(edge, options, token=token(), roomIds=HEAVY_ROOM)
    return ws


async def run_soak(
    config: SoakConfig,
    infra: Infra,
    workdir: Path,
    broker: KafkaBroker | None = None,
    log: bool = True,
) -> tuple[LedgerReport, SoakStats]:
    """Run the soak against `infra`; restart `broker` half way when one is given."""
    env = infra.env(
        f"roomcast.soak.{uuid.uuid4().hex[:10]}",
        ROOMCAST_KAFKA__REQUEST_TIMEOUT="4",
        ROOMCAST_EDGE__DRAIN_SECONDS="1",
    )
    procs = [
        ServiceProcess("publisher", env, workdir, name="publisher"),
        ServiceProcess("edge", env, workdir, name="edge-1"),
        ServiceProcess("edge", env, workdir, name="edge-2"),
    ]
    try:
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_ready(timeout=90)
        soak = Soak(config, procs[1:], procs[0].url)
        for _ in range(config.clients):
            await soak.join()
        stalled = [await _stalled(edge) for edge in procs[1:] for _ in range(config.stalled)]
        timeout = aiohttp.ClientTimeout(total=WAIT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = [
                asyncio.create_task(soak.publish(i, session)) for i in range(config.publishers)
            ]
            tasks += [asyncio.create_task(soak.churn()), asyncio.create_task(soak.heavy(session))]
            started = time.monotonic()
            if broker is not None:
                await asyncio.sleep(config.seconds / 2)
                if log:
                    print("soak: stopping Kafka", file=sys.stderr, flush=True)
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(min(10.0, config.seconds / 10))
                await asyncio.to_thread(broker.start)
                soak.stats.kafka_restarts += 1
                if log:
                    print("soak: Kafka is back", file=sys.stderr, flush=True)
            await asyncio.sleep(max(0.0, config.seconds - (time.monotonic() - started)))
            soak.stop.set()
            for task in tasks:
                await task
        await soak.finish()
        soak.stats.slow_cuts = sum(
            metrics(edge)['roomcast_edge_drops_total{reason="slow_consumer"}'] for edge in procs[1:]
        )
        for ws in stalled:
            await ws.close()
        return soak.ledger.check(), soak.stats
    finally:
        for proc in procs:
            proc.stop()


async def _main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "120"))
    with tempfile.TemporaryDirectory(prefix="roomcast-soak-") as tmp:
        workdir = Path(tmp)
        print(f"soak: {seconds:.0f} s; starting Redis and Kafka", file=sys.stderr, flush=True)
        with RedisServer(workdir / "redis") as redis, KafkaBroker(workdir / "kafka") as kafka:
            infra = Infra(redis.url, kafka.bootstrap_servers)
            report, stats = await run_soak(SoakConfig(seconds), infra, workdir, kafka)
    print(stats.text())
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
