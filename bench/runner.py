"""The benchmark driver: starts infrastructure and servers, runs the scenarios, collects.

One server at a time gets the machine: it is started fresh for every connection count
(so idle memory is measured from a clean process), pinned to its own core, and torn down
before the next one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import scenarios, ticks
from bench.feeds import (
    CentrifugoApiFeed,
    Feed,
    KafkaFeed,
    PeerFeed,
    PublisherFeed,
    RedisStreamFeed,
)
from bench.loadgen import LoadGenerator
from bench.peers.centrifugo import KafkaSource
from bench.plan import Plan, max_connections
from bench.servers import (
    AIOHTTP_NAIVE,
    BENCH_ROOM,
    BURST_ONLY,
    CENTRIFUGO_LOWMEM,
    CENTRIFUGOS,
    KAFKA_FED,
    NODE_WS,
    ROOM_HANDSHAKES,
    ROOMCAST,
    ROOMCAST_NOPRESENCE,
    ROOMCAST_REDIS,
    ROOMCAST_STAGGERED,
    ROOMCASTS,
    ServerProcess,
    start_centrifugo,
    start_edge,
    start_naive_peer,
    start_node_peer,
)
from bench.system import Placement, cores, pin_process, placement, raise_nofile_limit, rss_bytes
from roomcast_core.tokens import TokenIssuer
from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuv"
CENTRIFUGO_API_KEY = "bench-api-key"
# Measured for handshakes and idle memory only: its settings are about memory.
MEMORY_ONLY = (CENTRIFUGO_LOWMEM,)
SETTLE_SECONDS = 1.5
# Token lifetimes: every token of a run expires at the same second (the uniform case),
# or token i one second after token i - 1 (staggered); both hours past the end of a run,
# so nothing expires while it is measured, yet each staggered connection waits in the
# edge's expiry wheel at a second of its own.
TOKEN_TTL = 4 * 3600
# roomcast on Kafka, fed by the publisher (or straight to Kafka with --feed kafka)
ON_KAFKA = (ROOMCAST, ROOMCAST_NOPRESENCE, ROOMCAST_STAGGERED)
Log = Callable[[str], None]


@dataclass
class Infra:
    """Kafka, Redis and the publisher roomcast needs, shared by every edge of the run.

    `producer` writes wire records straight to Kafka: roomcast's `ticks` feed, and every
    Kafka feed of Centrifugo (each Centrifugo gets a fresh topic of its own).
    """

    env: dict[str, str]
    topic: str
    bootstrap: str
    producer: AIOKafkaProducer
    feed: Feed | None = None
    publisher: ServiceProcess | None = None
    # the Redis Streams bus (its own Redis, append-only file on) for `roomcast_redis`:
    # its streams' prefix, a client appending straight to them (the `ticks` feed), and
    # what feeds the other scenarios (a publisher on that bus, like `feed` on Kafka)
    bus_redis_url: str | None = None
    bus_client: aioredis.Redis | None = None
    bus_prefix: str = ""
    bus_feed: Feed | None = None
    notes: list[str] = field(default_factory=list)

    def bus_env(self) -> dict[str, str]:
        """Settings of a service on the Redis Streams bus."""
        assert self.bus_redis_url is not None
        return {
            **self.env,
            "ROOMCAST_BUS__KIND": "redis",
            "ROOMCAST_BUS__STREAM": self.bus_prefix,
            "ROOMCAST_REDIS__URL": self.bus_redis_url,
        }

    def bus_direct(self) -> Feed:
        assert self.bus_client is not None
        return RedisStreamFeed(self.bus_client, self.bus_prefix)


@dataclass
class Outcome:
    """Everything one run measured, keyed scenario -> connections -> server."""

    scenarios: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    publisher: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    feeds: dict[str, str] = field(default_factory=dict)

    def put(self, scenario: str, connections: int, server: str, value: Any) -> None:
        self.scenarios.setdefault(scenario, {}).setdefault(str(connections), {})[server] = value


def mint_urls(server: ServerProcess, tokens: Sequence[str]) -> list[str]:
    return [server.ws_url(token) for token in tokens]


def mint_tokens(count: int, staggered: bool = False, now: float | None = None) -> list[str]:
    """One token per client; `staggered`: each expires one second after the one before."""
    issuer = TokenIssuer("HS256", SECRET)
    issued = int(time.time() if now is None else now)
    return [
        issuer.issue(
            f"bench-{i}", f"bench-device-{i}", TOKEN_TTL + (i if staggered else 0), now=issued
        ).token
        for i in range(count)
    ]


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def roomcast_infra(
    workdir: Path,
    place: Placement,
    session: aiohttp.ClientSession,
    feed_kind: str,
    log: Log,
    with_publisher: bool = True,
    with_bus_redis: bool = False,
) -> AsyncIterator[Infra]:
    """Redis, Kafka, a topic, a direct producer and the publisher (unless fed directly);
    with_bus_redis: a second Redis with its append-only file on, for the Redis bus."""
    async with AsyncExitStack() as stack:
        redis = stack.enter_context(RedisServer(workdir / "redis"))
        log("starting Kafka")
        kafka = KafkaBroker(workdir / "kafka")
        await asyncio.to_thread(kafka.start)
        stack.callback(kafka.stop)
        # Kafka and Redis inherit the driver's affinity: the load cores, away from the server.
        topic = f"bench.{uuid.uuid4().hex[:10]}"
        await _create_topic(kafka.bootstrap_servers, topic)
        # The feeds build their own batches: nothing to gain from lingering.
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks="all",
            linger_ms=0,
            max_batch_size=256 * 1024,
        )
        await producer.start()
        stack.push_async_callback(producer.stop)
        infra = Infra(
            bootstrap=kafka.bootstrap_servers,
            producer=producer,
            env={
                "ROOMCAST_REDIS__URL": redis.url,
                "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "ROOMCAST_KAFKA__TOPIC": topic,
                "ROOMCAST_JWT__SECRET": SECRET,
                "ROOMCAST_LOG__LEVEL": "WARNING",
                "OTEL_SDK_DISABLED": "true",
            },
            topic=topic,
        )
        if with_bus_redis:
            # The bus's Redis as the Redis Streams bus wants it (docs/redis-streams.md),
            # apart from the one roomcast on Kafka uses, so neither run pays the other's
            # append-only file.
            bus = stack.enter_context(RedisServer(workdir / "redis-bus", appendonly=True))
            infra.bus_redis_url = bus.url
            infra.bus_client = aioredis.Redis.from_url(bus.url)
            stack.push_async_callback(infra.bus_client.aclose)
            infra.bus_prefix = f"bench:{uuid.uuid4().hex[:10]}"
            infra.bus_feed = infra.bus_direct()
        if feed_kind == "publisher" and with_publisher:
            publisher = ServiceProcess("publisher", infra.env, workdir / "logs")
            try:
                await asyncio.to_thread(publisher.start, 90.0)
            except RuntimeError as exc:
                infra.notes.append(
                    "publisher did not start, messages went straight to Kafka: "
                    + str(exc).splitlines()[0]
                )
            else:
                stack.callback(publisher.stop)
                pin_process(publisher.pid, place.load)
                infra.publisher = publisher
                infra.feed = PublisherFeed(session, publisher.url)
        if feed_kind == "publisher" and with_bus_redis:
            # the same route on the Redis bus: a publisher appending to its streams
            bus_publisher = ServiceProcess(
                "publisher", infra.bus_env(), workdir / "logs", name="publisher-redis"
            )
            try:
                await asyncio.to_thread(bus_publisher.start, 90.0)
            except RuntimeError as exc:
                infra.notes.append(
                    "publisher on the Redis bus did not start, messages went straight to its"
                    " streams: " + str(exc).splitlines()[0]
                )
            else:
                stack.callback(bus_publisher.stop)
                pin_process(bus_publisher.pid, place.load)
                infra.bus_feed = PublisherFeed(session, bus_publisher.url)
        if infra.feed is None:
            infra.feed = KafkaFeed(producer, topic)
        yield infra


async def _start_server(
    name: str,
    workdir: Path,
    place: Placement,
    infra: Infra | None,
    session: aiohttp.ClientSession,
) -> tuple[ServerProcess, Feed]:
    """A fresh server of that name, and the feed that reaches it."""
    cpus = place.server if place.pinned else None
    if name in ON_KAFKA:
        assert infra is not None
        assert infra.feed is not None
        env = dict(infra.env)
        if name == ROOMCAST_NOPRESENCE:
            env["ROOMCAST_EDGE__PRESENCE"] = "false"
        edge = await asyncio.to_thread(start_edge, workdir, cpus, env, name)
        return edge, infra.feed
    if name == ROOMCAST_REDIS:
        assert infra is not None
        assert infra.bus_feed is not None
        edge = await asyncio.to_thread(start_edge, workdir, cpus, infra.bus_env(), name)
        return edge, infra.bus_feed
    if name in CENTRIFUGOS:
        kafka: KafkaSource | None = None
        if name in KAFKA_FED and name not in MEMORY_ONLY:
            assert infra is not None
            topic = f"bench-centrifugo.{uuid.uuid4().hex[:10]}"
            await _create_topic(infra.bootstrap, topic)
            kafka = KafkaSource(infra.bootstrap, topic, f"centrifugo-{topic}")
        centrifugo = await asyncio.to_thread(
            start_centrifugo,
            name,
            workdir,
            cpus,
            SECRET,
            CENTRIFUGO_API_KEY,
            kafka,
            name == CENTRIFUGO_LOWMEM,
        )
        if kafka is not None:
            assert infra is not None
            return centrifugo, KafkaFeed(infra.producer, kafka.topic, centrifugo_channels=True)
        return centrifugo, CentrifugoApiFeed(session, centrifugo.base_url, CENTRIFUGO_API_KEY)
    server: ServerProcess
    if name == NODE_WS:
        server = await asyncio.to_thread(start_node_peer, workdir, cpus, SECRET)
    elif name == AIOHTTP_NAIVE:
        server = await asyncio.to_thread(start_naive_peer, workdir, cpus, SECRET)
    else:
        raise ValueError(f"unknown server {name!r}")
    return server, PeerFeed(session, server.base_url)


async def measure_server(
    name: str,
    connections: int,
    plan: Plan,
    tokens: Sequence[str],
    load: LoadGenerator,
    outcome: Outcome,
    workdir: Path,
    place: Placement,
    session: aiohttp.ClientSession,
    infra: Infra | None,
    log: Log,
) -> None:
    run_id = f"{name}-{connections}-{uuid.uuid4().hex[:6]}"
    server, feed = await _start_server(name, workdir, place, infra, session)
    try:
        outcome.feeds[name] = feed.name
        target = scenarios.Target(
            name=name,
            pid=server.pid,
            feed=feed,
            metrics_url=server.base_url + "/metrics" if name in ROOMCASTS else None,
            session=session,
        )
        await asyncio.sleep(SETTLE_SECONDS)
        rss_before = rss_bytes(server.pid)
        log(f"{name} C={connections}: handshakes")
        hs = await scenarios.handshakes(
            load, target, server.dials(tokens[:connections]), server.protocol
        )
        outcome.put("handshake", connections, name, hs)
        opened = hs["opened"]
        if opened == 0:
            raise RuntimeError(f"no connection opened: {hs['errors']}\n{server.logs()}")
        await asyncio.sleep(SETTLE_SECONDS)
        outcome.put(
            "idle",
            connections,
            name,
            scenarios.idle_memory(rss_before, rss_bytes(server.pid), opened),
        )
        if name in MEMORY_ONLY:
            return
        messages = plan.burst_messages[connections]
        log(f"{name} C={connections}: burst of {messages} messages")
        outcome.put(
            "burst",
            connections,
            name,
            await scenarios.burst(load, target, connections, messages, run_id),
        )
        if connections == plan.sustained_connections and name not in BURST_ONLY:
            points = []
            for messages_per_s in plan.sustained_rates:
                log(f"{name} C={connections}: sustained {messages_per_s:g} msg/s")
                points.append(
                    await scenarios.sustained(
                        load,
                        target,
                        connections,
                        messages_per_s,
                        plan.sustained_seconds,
                        f"{run_id}-r{messages_per_s:g}",
                    )
                )
            outcome.put("sustained", connections, name, points)
        if name in ROOM_HANDSHAKES:
            await load.close()
            await asyncio.sleep(SETTLE_SECONDS)
            log(f"{name} C={connections}: handshakes into one room")
            dials = server.room_dials(tokens[:connections], BENCH_ROOM)
            hs = await scenarios.handshakes(load, target, dials, server.protocol)
            outcome.put("handshake_room", connections, name, hs)
        if not server.running:
            raise RuntimeError(f"{name} exited during the run:\n{server.logs()}")
    finally:
        await load.close()
        await asyncio.to_thread(server.stop)


def ticks_servers(plan: Plan, servers: Sequence[str]) -> list[str]:
    """The servers of this run the plan's `ticks` scenario is for."""
    if plan.ticks is None:
        return []
    wanted = plan.ticks_servers
    return [
        s
        for s in servers
        if s not in MEMORY_ONLY and s not in BURST_ONLY and (wanted is None or s in wanted)
    ]


async def measure_ticks(
    name: str,
    spec: ticks.TicksSpec,
    tokens: Sequence[str],
    load: LoadGenerator,
    outcome: Outcome,
    workdir: Path,
    place: Placement,
    session: aiohttp.ClientSession,
    infra: Infra | None,
    log: Log,
) -> None:
    """The `ticks` ladder on a fresh server: steps until it falls behind or the top."""
    run_id = f"{name}-ticks-{uuid.uuid4().hex[:6]}"
    if name == ROOMCAST:
        # Straight to Kafka in the wire format, whatever feeds the other scenarios:
        # the question is how fast the edge reads and routes the stream.
        assert infra is not None
        server, _ = await _start_server(name, workdir, place, infra, session)
        feed: Feed = KafkaFeed(infra.producer, infra.topic)
    elif name == ROOMCAST_REDIS:
        # likewise straight to the Redis bus's streams
        assert infra is not None
        server, _ = await _start_server(name, workdir, place, infra, session)
        feed = infra.bus_direct()
    else:
        server, feed = await _start_server(name, workdir, place, infra, session)
    try:
        target = scenarios.Target(
            name=name,
            pid=server.pid,
            feed=feed,
            metrics_url=server.base_url + "/metrics" if name in ROOMCASTS else None,
            session=session,
        )
        await asyncio.sleep(SETTLE_SECONDS)
        subs = ticks.subscriptions(spec)
        dials = [
            server.dial(i, tokens[i], [ticks.pair_of(spec, p) for p in pairs])
            for i, pairs in enumerate(subs)
        ]
        log(f"{name} ticks: {len(dials)} clients x {spec.per_client} of {spec.pairs} pairs")
        connected = await scenarios.handshakes(load, target, dials, server.protocol)
        if connected["opened"] == 0:
            raise RuntimeError(f"no connection opened: {connected['errors']}\n{server.logs()}")
        warmup = await scenarios.ticks_warmup(load, target, spec, subs, f"{run_id}-warmup")
        if warmup is not None:
            log(f"{name} ticks: warm-up (not measured) {warmup}")
        steps: list[dict[str, Any]] = []
        for index, messages_per_s in enumerate(spec.rates):
            log(f"{name} ticks: {messages_per_s:g} msg/s")
            step = await scenarios.ticks_step(
                load, target, spec, subs, index, messages_per_s, f"{run_id}-s{index}"
            )
            steps.append(step)
            latency = step.get("latency_ms") or {}
            log(
                f"{name} ticks: {messages_per_s:g} msg/s offered {step['offered_per_s']}, "
                f"p99 {latency.get('p99')} ms, lost {step['lost']}, "
                f"{step['cpu_us_per_message']} us/message"
            )
            if ticks.is_behind(step) or ticks.feed_limited(step):
                break
        outcome.put(
            "ticks",
            spec.clients,
            name,
            {
                "feed": feed.name,
                "opened": connected["opened"],
                "failed": connected["failed"],
                "steps": steps,
                "ceiling": ticks.ingest_ceiling(steps),
            },
        )
        if not server.running:
            raise RuntimeError(f"{name} exited during the run:\n{server.logs()}")
    finally:
        await load.close()
        await asyncio.to_thread(server.stop)


def machine_facts(place: Placement, nofile: int, available: Sequence[int]) -> dict[str, Any]:
    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else None
    )
    return {
        "cpus": len(available),
        "server_cores": sorted(place.server),
        "load_cores": sorted(place.load),
        "pinned": place.pinned,
        "nofile_limit": nofile,
        "python": platform.python_version(),
        "node": node_version,
        "kernel": platform.release(),
        # Other work on the machine shares the cores: a load far above the core count
        # means every figure of the run is noisy.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


async def run(
    plan: Plan,
    servers: Sequence[str],
    workdir: Path,
    feed_kind: str = "publisher",
    log: Log = print,
    pin_driver: bool = True,
) -> tuple[Plan, Outcome, dict[str, Any]]:
    """Measure every server at every connection count of the plan.

    pin_driver moves this process (and so Kafka, Redis and the publisher it starts) to the
    load cores; a caller that lives on after the run (a test) may keep its own affinity.
    """
    nofile = raise_nofile_limit()
    plan = plan.within(max_connections(nofile))
    available = cores()
    place = placement(available)
    if place.pinned and pin_driver:
        os.sched_setaffinity(0, place.load)
    outcome = Outcome()
    with_ticks = ticks_servers(plan, servers)
    ticks_clients = plan.ticks.clients if plan.ticks is not None and with_ticks else 0
    count = max(*plan.connections, *plan.expiry_connections, ticks_clients)
    issued = time.time()
    tokens = await asyncio.to_thread(mint_tokens, count, False, issued)
    staggered = (
        await asyncio.to_thread(mint_tokens, count, True, issued)
        if ROOMCAST_STAGGERED in servers
        else tokens
    )
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=256)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        AsyncExitStack() as stack,
    ):
        infra: Infra | None = None
        if any(s in KAFKA_FED and s not in MEMORY_ONLY for s in servers):
            infra = await stack.enter_async_context(
                roomcast_infra(
                    workdir,
                    place,
                    session,
                    feed_kind,
                    log,
                    with_publisher=any(s in ON_KAFKA for s in servers),
                    with_bus_redis=ROOMCAST_REDIS in servers,
                )
            )
            outcome.notes.extend(infra.notes)
        load = stack.enter_context(
            LoadGenerator(plan.workers, place.load if place.pinned else None)
        )
        # the main ladder, then the expiry step (uniform against staggered expiries only)
        steps = [(c, list(servers)) for c in plan.connections] + [
            (c, [s for s in servers if s in (ROOMCAST, ROOMCAST_STAGGERED)])
            for c in plan.expiry_connections
        ]
        for connections, names in steps:
            for name in names:
                started = time.monotonic()
                try:
                    await measure_server(
                        name, connections, plan,
                        staggered if name == ROOMCAST_STAGGERED else tokens,
                        load, outcome, workdir, place, session, infra, log,
                    )  # fmt: skip
                except Exception as exc:
                    key = f"{name} C={connections}"
                    outcome.errors[key] = f"{type(exc).__name__}: {exc}"[:2000]
                    log(f"{key} failed: {outcome.errors[key]}")
                log(f"{name} C={connections}: done in {time.monotonic() - started:.0f} s")
        if plan.ticks is not None:
            for name in with_ticks:
                started = time.monotonic()
                try:
                    await measure_ticks(
                        name, plan.ticks, tokens, load, outcome, workdir, place, session,
                        infra, log,
                    )  # fmt: skip
                except Exception as exc:
                    key = f"{name} ticks"
                    outcome.errors[key] = f"{type(exc).__name__}: {exc}"[:2000]
                    log(f"{key} failed: {outcome.errors[key]}")
                log(f"{name} ticks: done in {time.monotonic() - started:.0f} s")
        if infra is not None and infra.publisher is not None:
            log("publisher: acked messages/s")
            try:
                outcome.publisher = await scenarios.publisher_throughput(
                    session,
                    infra.publisher.url,
                    infra.publisher.pid,
                    f"pub-{uuid.uuid4().hex[:6]}",
                    plan.publisher_singles,
                    32,
                    plan.publisher_batches,
                    plan.publisher_batch_size,
                )
            except Exception as exc:
                outcome.errors["publisher"] = f"{type(exc).__name__}: {exc}"
    return plan, outcome, machine_facts(place, nofile, available)
