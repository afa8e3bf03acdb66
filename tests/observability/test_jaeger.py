"""Traces read back from a real Jaeger, exported by the real services.

The services export OTLP/HTTP to a Jaeger v2 all-in-one (memory storage) of the
harness; every check goes through Jaeger's own query API, the way its UI reads them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core.tokens import TokenIssuer
from roomcast_harness.jaeger import JaegerServer
from roomcast_harness.procs import free_port
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, ServiceFactory

SECRET = "test-secret-0123456789abcdefghijklmnop"


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str
    name: str
    service: str
    tags: dict[str, Any]
    # span events (Jaeger calls them logs), each as its fields
    logs: list[dict[str, Any]]

    @property
    def kind(self) -> str:
        return str(self.tags.get("span.kind", "internal"))


def spans_of(trace: dict[str, Any]) -> list[Span]:
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    found = []
    for raw in trace["spans"]:
        parents = [r["spanID"] for r in raw.get("references", []) if r["refType"] == "CHILD_OF"]
        found.append(
            Span(
                span_id=raw["spanID"],
                parent_id=parents[0] if parents else "",
                name=raw["operationName"],
                service=services[raw["processID"]],
                tags={t["key"]: t["value"] for t in raw["tags"]},
                logs=[
                    {f["key"]: f["value"] for f in log["fields"]} for log in raw.get("logs") or []
                ],
            )
        )
    return found


async def read_trace(
    jaeger: JaegerServer,
    trace_id: str,
    complete: Callable[[list[Span]], bool],
    timeout: float = 30.0,
) -> list[Span]:
    """Poll Jaeger's query API until the trace holds what `complete` wants."""
    url = f"{jaeger.ui_url}/api/traces/{trace_id}"
    spans: list[Span] = []
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                if response.status == 200:
                    data = (await response.json())["data"]
                    assert len(data) == 1, "one trace id is one trace"
                    assert data[0]["traceID"].zfill(32) == trace_id
                    spans = spans_of(data[0])
                    if complete(spans):
                        return spans
                else:
                    assert response.status == 404, await response.text()
            await asyncio.sleep(0.3)
    pytest.fail(f"trace {trace_id} still incomplete after {timeout:.0f}s: {spans}")


def one(spans: list[Span], **match: object) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span matching {match}, got {found}"
    return found[0]


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    with JaegerServer(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


def traced_env(infra: Infra, topic: str, jaeger: JaegerServer) -> dict[str, str]:
    return {
        **infra.env(topic),
        **jaeger.otel_env(),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "ROOMCAST_EDGE__TRACE_ID_IN_META": "true",
    }


@pytest.fixture
async def traced(
    infra: Infra, topic: str, jaeger: JaegerServer, start_service: ServiceFactory
) -> tuple[ServiceProcess, ServiceProcess]:
    env = traced_env(infra, topic, jaeger)
    publisher = start_service("publisher", env)
    edge = start_service("edge", env)
    return publisher, edge


async def listen(edge: ServiceProcess, topic_name: str) -> ClientConnection:
    token = TokenIssuer("HS256", SECRET).issue("u", "d", 300).token
    url = edge.url.replace("http://", "ws://") + f"/ws?token={token}&topics={topic_name}:event"
    ws = await websockets.connect(url)
    connected = json.loads(await asyncio.wait_for(ws.recv(), 20))
    assert connected["action"] == "connected"
    return ws


async def next_push(ws: ClientConnection) -> dict[str, Any]:
    push: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
    return push


async def test_one_publish_is_one_trace_in_jaeger(
    traced: tuple[ServiceProcess, ServiceProcess], jaeger: JaegerServer, topic: str
) -> None:
    publisher, edge = traced
    ws = await listen(edge, "order")
    async with ws, aiohttp.ClientSession() as session:
        async with session.post(
            f"{publisher.url}/v1/messages",
            json={"topic": "order", "type": "event", "payload": {"traced": True}},
        ) as response:
            assert response.status == 202
            message_id = (await response.json())["message_id"]
        push = await next_push(ws)
    assert push["meta"]["message_id"] == message_id
    trace_id = push["meta"]["trace_id"]

    # Each service exports on its own schedule: wait until both have delivered.
    spans = await read_trace(jaeger, trace_id, lambda spans: len(spans) >= 4)
    assert len(spans) == 4, spans
    server = one(spans, kind="server")
    producer = one(spans, kind="producer")
    consumer = one(spans, kind="consumer")
    fanout = one(spans, name="roomcast.fanout")

    assert server.service == producer.service == "roomcast-publisher"
    assert consumer.service == fanout.service == "roomcast-edge"
    assert server.name == "POST /v1/messages"
    assert producer.name == f"send {topic}"
    assert server.parent_id == ""
    assert producer.parent_id == server.span_id
    assert consumer.parent_id == producer.span_id
    assert fanout.parent_id == consumer.span_id
    assert server.tags["http.response.status_code"] == 202
    assert producer.tags["messaging.message.id"] == message_id
    assert consumer.tags["messaging.message.id"] == message_id
    assert fanout.tags["roomcast.recipients"] == 1
    assert fanout.tags["roomcast.topic"] == "order"
    assert not any(s.tags.get("error") for s in spans)


async def test_a_batch_is_one_trace_with_a_branch_per_message(
    traced: tuple[ServiceProcess, ServiceProcess], jaeger: JaegerServer, topic: str
) -> None:
    publisher, edge = traced
    ws = await listen(edge, "order")
    count = 3
    async with ws, aiohttp.ClientSession() as session:
        async with session.post(
            f"{publisher.url}/v1/messages/batch",
            json={
                "messages": [
                    {"topic": "order", "type": "event", "payload": {"n": n}} for n in range(count)
                ]
            },
        ) as response:
            assert response.status == 202
            ids = [r["message_id"] for r in (await response.json())["results"]]
        pushes = [await next_push(ws) for _ in range(count)]
    assert sorted(p["meta"]["message_id"] for p in pushes) == sorted(ids)
    # The batch request is the root: every message of it carries the same trace id.
    [trace_id] = {p["meta"]["trace_id"] for p in pushes}

    # HTTP span, one producer span for the batch, a consumer and a fan-out span per message.
    spans = await read_trace(jaeger, trace_id, lambda spans: len(spans) >= 2 + 2 * count)
    assert len(spans) == 2 + 2 * count, spans
    server = one(spans, kind="server")
    assert server.name == "POST /v1/messages/batch"
    assert server.service == "roomcast-publisher"
    assert server.parent_id == ""
    producer = one(spans, kind="producer")
    assert producer.service == "roomcast-publisher"
    assert producer.parent_id == server.span_id
    assert producer.tags["messaging.batch.message_count"] == count
    consumers = [s for s in spans if s.kind == "consumer"]
    assert sorted(s.tags["messaging.message.id"] for s in consumers) == sorted(ids)
    for consumer in consumers:
        assert consumer.service == "roomcast-edge"
        assert consumer.parent_id == producer.span_id
        fanout = one(spans, name="roomcast.fanout", parent_id=consumer.span_id)
        assert fanout.tags["roomcast.recipients"] == 1


async def test_a_refused_publish_records_the_error_on_its_span(
    infra: Infra, topic: str, jaeger: JaegerServer, start_service: ServiceFactory
) -> None:
    # Nothing listens on this port: the publisher can never reach Kafka.
    env = {
        **traced_env(infra, topic, jaeger),
        "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    publisher = start_service("publisher", env, wait_ready=False)
    # The caller starts the trace, so its id is known before anything is published.
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{publisher.url}/v1/messages",
            json={"topic": "order", "type": "event", "payload": "lost"},
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        ) as response,
    ):
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "kafka_unavailable"

    spans = await read_trace(jaeger, trace_id, lambda spans: len(spans) >= 1)
    server = one(spans, kind="server")
    assert server.service == "roomcast-publisher"
    assert server.name == "POST /v1/messages"
    assert server.parent_id == parent_id
    assert server.tags["http.response.status_code"] == 503
    assert server.tags["otel.status_code"] == "ERROR"
    assert server.tags["error"] is True
    assert server.tags["error.type"] == "kafka_unavailable"
    [event] = server.logs
    assert event["event"] == "exception"
    assert "kafka is unreachable" in event["exception.message"]
    # Nothing reached Kafka, so nothing follows the refused request.
    await asyncio.sleep(1.0)
    later = await read_trace(jaeger, trace_id, lambda spans: len(spans) >= 1)
    assert [s.span_id for s in later] == [server.span_id]


async def _round_trips(
    session: aiohttp.ClientSession, publisher: ServiceProcess, ws: ClientConnection, n: int
) -> list[float]:
    """Seconds from each publish to its push on the socket."""
    took = []
    for i in range(n):
        started = time.perf_counter()
        async with session.post(
            f"{publisher.url}/v1/messages",
            json={"topic": "order", "type": "event", "payload": {"i": i}},
        ) as response:
            assert response.status == 202
        push = await next_push(ws)
        took.append(time.perf_counter() - started)
        assert push["payload"] == {"i": i}
    return took


async def test_killing_jaeger_mid_run_delays_no_publish_or_push(
    infra: Infra, topic: str, start_service: ServiceFactory, tmp_path: Path
) -> None:
    own = JaegerServer(tmp_path / "jaeger")
    own.start()
    try:
        env = traced_env(infra, topic, own)
        publisher = start_service("publisher", env)
        edge = start_service("edge", env)
        ws = await listen(edge, "order")
        async with ws, aiohttp.ClientSession() as session:
            await _round_trips(session, publisher, ws, 5)  # warm-up: connections, first-use costs
            baseline = await _round_trips(session, publisher, ws, 40)
            # Spans really were arriving before the collector went away.
            async with session.post(
                f"{publisher.url}/v1/messages",
                json={"topic": "order", "type": "event", "payload": "seen"},
            ) as response:
                assert response.status == 202
            push = await next_push(ws)
            await read_trace(own, push["meta"]["trace_id"], lambda spans: len(spans) == 4)

            own.kill()
            # Long enough for several export rounds to fail against the dead port.
            dead = await _round_trips(session, publisher, ws, 40)
            await asyncio.sleep(1.0)
            dead += await _round_trips(session, publisher, ws, 20)

            # Jaeger back on the same ports: a second baseline, so a machine that got
            # busier meanwhile does not pass for a slowdown, and traces flow again.
            own.start()
            recovered = await _round_trips(session, publisher, ws, 40)
            async with session.post(
                f"{publisher.url}/v1/messages",
                json={"topic": "order", "type": "event", "payload": "seen again"},
            ) as response:
                assert response.status == 202
            push = await next_push(ws)
            await read_trace(own, push["meta"]["trace_id"], lambda spans: len(spans) == 4)
        up = max(statistics.median(baseline), statistics.median(recovered))
        ratio = statistics.median(dead) / up
        assert ratio < 3.0, (
            f"median publish-to-push {statistics.median(dead) * 1000:.1f} ms with Jaeger dead "
            f"vs {up * 1000:.1f} ms with it up"
        )
        # Both still stop cleanly within their flush bound (exit 0, not the 20 s kill).
        assert publisher.stop(timeout=20) == 0
        assert edge.stop(timeout=20) == 0
    finally:
        own.stop()
