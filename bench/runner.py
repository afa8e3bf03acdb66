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
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import scenarios
from bench.feeds import Feed, KafkaFeed, PeerFeed, PublisherFeed
from bench.loadgen import LoadGenerator
from bench.plan import Plan, max_connections
from bench.servers import (
    AIOHTTP_NAIVE,
    NODE_WS,
    ROOMCAST,
    ServerProcess,
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
SETTLE_SECONDS = 1.5
Log = Callable[[str], None]


@dataclass
class Infra:
    """Kafka, Redis and the publisher roomcast needs, shared by every edge of the run."""

    env: dict[str, str]
    topic: str
    feed: Feed | None = None
    publisher: ServiceProcess | None = None
    notes: list[str] = field(default_factory=list)


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


def mint_tokens(count: int) -> list[str]:
    issuer = TokenIssuer("HS256", SECRET)
    return [issuer.issue(f"bench-{i}", f"bench-device-{i}", 86400).token for i in range(count)]


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
) -> AsyncIterator[Infra]:
    """Redis, Kafka, a topic and the publisher (or a direct Kafka producer)."""
    async with AsyncExitStack() as stack:
        redis = stack.enter_context(RedisServer(workdir / "redis"))
        log("starting Kafka")
        kafka = KafkaBroker(workdir / "kafka")
        await asyncio.to_thread(kafka.start)
        stack.callback(kafka.stop)
        # Kafka and Redis inherit the driver's affinity: the load cores, away from the server.
        topic = f"bench.{uuid.uuid4().hex[:10]}"
        await _create_topic(kafka.bootstrap_servers, topic)
        infra = Infra(
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
        if feed_kind == "publisher":
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
        if infra.feed is None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
            await producer.start()
            stack.push_async_callback(producer.stop)
            infra.feed = KafkaFeed(producer, topic)
        yield infra


async def _start_server(
    name: str, workdir: Path, place: Placement, infra: Infra | None
) -> ServerProcess:
    cpus = place.server if place.pinned else None
    if name == ROOMCAST:
        assert infra is not None
        return await asyncio.to_thread(start_edge, workdir, cpus, infra.env)
    if name == NODE_WS:
        return await asyncio.to_thread(start_node_peer, workdir, cpus, SECRET)
    if name == AIOHTTP_NAIVE:
        return await asyncio.to_thread(start_naive_peer, workdir, cpus, SECRET)
    raise ValueError(f"unknown server {name!r}")


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
    server = await _start_server(name, workdir, place, infra)
    try:
        feed = infra.feed if name == ROOMCAST and infra else PeerFeed(session, server.base_url)
        assert feed is not None
        outcome.feeds[name] = feed.name
        target = scenarios.Target(
            name=name,
            pid=server.pid,
            feed=feed,
            metrics_url=server.base_url + "/metrics" if name == ROOMCAST else None,
            session=session,
        )
        await asyncio.sleep(SETTLE_SECONDS)
        rss_before = rss_bytes(server.pid)
        log(f"{name} C={connections}: handshakes")
        hs = await scenarios.handshakes(load, target, mint_urls(server, tokens[:connections]))
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
        messages = plan.burst_messages[connections]
        log(f"{name} C={connections}: burst of {messages} messages")
        outcome.put(
            "burst",
            connections,
            name,
            await scenarios.burst(load, target, connections, messages, run_id),
        )
        if connections == plan.sustained_connections:
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
    tokens = await asyncio.to_thread(mint_tokens, max(plan.connections))
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=256)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        AsyncExitStack() as stack,
    ):
        infra: Infra | None = None
        if ROOMCAST in servers:
            infra = await stack.enter_async_context(
                roomcast_infra(workdir, place, session, feed_kind, log)
            )
            outcome.notes.extend(infra.notes)
        load = stack.enter_context(
            LoadGenerator(plan.workers, place.load if place.pinned else None)
        )
        for connections in plan.connections:
            for name in servers:
                started = time.monotonic()
                try:
                    await measure_server(
                        name, connections, plan, tokens, load, outcome, workdir, place,
                        session, infra, log,
                    )  # fmt: skip
                except Exception as exc:
                    key = f"{name} C={connections}"
                    outcome.errors[key] = f"{type(exc).__name__}: {exc}"[:2000]
                    log(f"{key} failed: {outcome.errors[key]}")
                log(f"{name} C={connections}: done in {time.monotonic() - started:.0f} s")
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
