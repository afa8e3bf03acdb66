"""Spans reach an OTLP/HTTP endpoint: token issue, heartbeat and the Redis calls under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import ServiceFactory
from tests.integration.auth.conftest import DEFAULT_TTL, Http, auth_env


class Spans:
    """What an OTLP/HTTP receiver was sent: (name, span_id, parent_span_id, attributes)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes, bytes, dict[str, object]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {
                        a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                        for a in span.attributes
                    }
                    self.received.append((span.name, span.span_id, span.parent_span_id, attributes))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def names(self) -> set[str]:
        return {name for name, *_ in self.received}


@pytest.fixture
async def otlp() -> AsyncIterator[tuple[Spans, str]]:
    spans = Spans()
    app = web.Application()
    app.router.add_post("/v1/traces", spans.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield spans, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_issue_and_heartbeat_are_traced_with_redis_child_spans(
    http: Http, redis_url: str, start_service: ServiceFactory, otlp: tuple[Spans, str]
) -> None:
    spans, endpoint = otlp
    env = auth_env(redis_url, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
    del env["OTEL_SDK_DISABLED"]
    auth = start_service("auth", env)
    token = await http.v1_token(auth.url)
    reply = await http.post(
        auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status == 200
    wanted = {"auth.issue_token", "auth.heartbeat", "EXISTS", "SET"}
    async with asyncio.timeout(60):
        while not wanted <= spans.names():
            await asyncio.sleep(0.1)
    by_name = {name: (span_id, parent, attrs) for name, span_id, parent, attrs in spans.received}
    heartbeat_id = by_name["auth.heartbeat"][0]
    for command in ("EXISTS", "SET"):
        _, parent, attributes = by_name[command]
        assert parent == heartbeat_id, command
        assert attributes["db.system.name"] == "redis"
        assert attributes["db.operation.name"] == command
    assert by_name["auth.issue_token"][2]["roomcast.api"] == "v1"
    assert by_name["auth.issue_token"][2]["roomcast.token.ttl"] == DEFAULT_TTL
