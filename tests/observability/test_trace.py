"""One publish is one trace: HTTP span → producer span → edge consumer span → fan-out span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets

from roomcast_core.tokens import TokenIssuer
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, ServiceFactory
from tests.observability.otlp_receiver import GrpcOtlpReceiver, OtlpReceiver, ReceivedSpan

SERVER, PRODUCER, CONSUMER, INTERNAL = 2, 4, 5, 1  # OTLP SpanKind numbers
SECRET = "test-secret-0123456789abcdefghijklmnop"


@pytest.fixture(params=["http/protobuf", "grpc"])
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[OtlpReceiver]:
    running = OtlpReceiver() if request.param == "http/protobuf" else GrpcOtlpReceiver()
    await running.start()
    yield running
    await running.stop()


def _traced_env(infra: Infra, topic: str, receiver: OtlpReceiver) -> dict[str, str]:
    grpc = isinstance(receiver, GrpcOtlpReceiver)
    return {
        **infra.env(topic),
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if grpc else "http/protobuf",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # One variant also asks the edge to put the trace id into each push's meta.
        "ROOMCAST_EDGE__TRACE_ID_IN_META": "false" if grpc else "true",
    }


def _one(spans: list[ReceivedSpan], **match: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span matching {match}, got {found}"
    return found[0]


async def _publish_and_receive(
    publisher: ServiceProcess, edge: ServiceProcess, topic_name: str
) -> dict[str, Any]:
    token = TokenIssuer("HS256", SECRET).issue("u", "d", 300).token
    url = edge.url.replace("http://", "ws://") + f"/ws?token={token}&topics={topic_name}:event"
    async with websockets.connect(url) as ws:
        connected = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert connected["action"] == "connected"
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{publisher.url}/v1/messages",
                json={"topic": topic_name, "type": "event", "payload": {"traced": True}},
            ) as response,
        ):
            assert response.status == 202
            message_id = str((await response.json())["message_id"])
        push: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert push["meta"]["message_id"] == message_id
    return push


async def test_one_trace_links_publish_to_fanout(
    infra: Infra, topic: str, receiver: OtlpReceiver, start_service: ServiceFactory
) -> None:
    env = _traced_env(infra, topic, receiver)
    publisher = start_service("publisher", env)
    edge = start_service("edge", env)
    push = await _publish_and_receive(publisher, edge, "order")
    message_id = push["meta"]["message_id"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(s.name == "roomcast.fanout" for s in spans) and any(
            s.kind == PRODUCER for s in spans
        )

    spans = await receiver.wait_for(complete, timeout=30)
    producer = _one(spans, kind=PRODUCER)
    http = [s for s in spans if s.kind == SERVER and s.trace_id == producer.trace_id]
    assert len(http) == 1
    server = http[0]
    consumer = _one(spans, kind=CONSUMER)
    fanout = _one(spans, name="roomcast.fanout")

    assert server.service == producer.service == "roomcast-publisher"
    assert consumer.service == fanout.service == "roomcast-edge"
    assert server.name == "POST /v1/messages"
    assert server.parent_span_id == ""
    assert {s.trace_id for s in (server, producer, consumer, fanout)} == {server.trace_id}
    assert producer.parent_span_id == server.span_id
    assert consumer.parent_span_id == producer.span_id
    assert fanout.parent_span_id == consumer.span_id

    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == topic
    assert producer.attributes["messaging.message.id"] == message_id
    assert consumer.attributes["messaging.destination.name"] == topic
    assert consumer.attributes["messaging.message.id"] == message_id
    assert fanout.attributes["roomcast.recipients"] == 1
    assert fanout.attributes["messaging.destination.name"] == topic
    assert fanout.attributes["roomcast.topic"] == "order"
    assert fanout.attributes["roomcast.room"] == ""
    if env["ROOMCAST_EDGE__TRACE_ID_IN_META"] == "true":
        assert push["meta"]["trace_id"] == server.trace_id
    else:
        assert "trace_id" not in push["meta"]
    # Deliveries are counted on the fan-out span, never one span each.
    assert not [s for s in spans if s.service == "roomcast-edge" and s.kind == PRODUCER]
