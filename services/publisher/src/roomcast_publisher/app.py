"""create_app(settings): the publisher service's application, resources in cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from roomcast_core.api import cors_middleware, error_middleware
from roomcast_core.health import HEALTH_KEY, Health, mount_health
from roomcast_core.heap import settled_heap
from roomcast_core.redis_link import redis_client
from roomcast_core.settings import Settings
from roomcast_core.telemetry import telemetry_ctx, tracing_disabled, tracing_middleware
from roomcast_publisher.adapters.aiokafka_internals import check_aiokafka
from roomcast_publisher.adapters.kafka_sink import KafkaSink
from roomcast_publisher.adapters.redis_idempotency import RedisIdempotencyStore
from roomcast_publisher.adapters.redis_stream_sink import RedisStreamSink
from roomcast_publisher.admin.routes import add_admin_routes
from roomcast_publisher.admin.state import console_ctx
from roomcast_publisher.domain.publishing import Publisher, PublishPolicy
from roomcast_publisher.keys import PUBLISHER_KEY, PUBLISHER_METRICS_KEY, SETTINGS_KEY
from roomcast_publisher.metrics import PublisherMetrics
from roomcast_publisher.models import ENVELOPE_BYTES
from roomcast_publisher.observe import SpanlessTrace, request_counter, tracing_exported
from roomcast_publisher.presence_api import presence_ctx
from roomcast_publisher.routes import add_routes

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]
Middleware = Callable[..., Awaitable[web.StreamResponse]]
# Allocations (net of frees) between young collections; Python's default is 700.
GC_YOUNG_THRESHOLD = 20_000


def policy_for(settings: Settings) -> PublishPolicy:
    bound = settings.kafka.request_timeout  # the longest one publish can take
    return PublishPolicy(
        idempotency_window=settings.publisher.idempotency_window,
        hold_seconds=2 * bound + 5,
        wait_seconds=bound + 1,
    )


def _links_ctx(settings: Settings, *, traced: bool) -> CleanupCtx:
    """Redis and Kafka, and the Publisher on top of them; Kafka reconnects in the background."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = settings.redis.timeout
        client = redis_client(
            settings.redis, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        store = RedisIdempotencyStore(client)
        sink: KafkaSink | RedisStreamSink = (
            RedisStreamSink(client, settings.bus, timeout=timeout, traced=traced)
            if settings.bus.kind == "redis"
            else KafkaSink(
                settings.kafka,
                max_record_bytes=settings.publisher.max_payload_bytes + ENVELOPE_BYTES,
                on_fence=app[PUBLISHER_METRICS_KEY].fenced,
                traced=traced,
            )
        )
        health = app[HEALTH_KEY]
        health.add_check("redis", store.readiness)
        # Not "redis": that is the idempotency store's check, on the same server or not.
        health.add_check(
            "redis-streams" if settings.bus.kind == "redis" else "kafka", sink.readiness
        )
        app[PUBLISHER_KEY] = Publisher(
            sink, store, app[PUBLISHER_METRICS_KEY], policy_for(settings)
        )
        # Never block startup on Kafka: the service starts, /readyz says why not.
        connector = asyncio.create_task(sink.run(), name=f"{settings.bus.kind}-connector")
        yield
        connector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connector
        await sink.close()
        await app[PUBLISHER_KEY].close()
        await client.aclose()

    return ctx


def create_app(settings: Settings) -> web.Application:
    if settings.bus.kind == "kafka":
        check_aiokafka()  # the producer's fast path relies on aiokafka internals: fail at start
    # Spans nobody exports are not made at all: a third of a small request's CPU.
    exported = tracing_exported(os.environ)
    registry = CollectorRegistry()
    metrics = PublisherMetrics(registry)
    middlewares: list[Middleware] = []
    spanless: SpanlessTrace | None = None
    if exported:
        middlewares.append(tracing_middleware)
    else:
        spanless = SpanlessTrace(fresh_roots=not tracing_disabled(os.environ))
    middlewares.append(request_counter(metrics, spanless))
    if settings.publisher.cors_origins:  # without origins it never adds a header
        middlewares.append(cors_middleware(settings.publisher.cors_origins))
    middlewares.append(error_middleware)
    app = web.Application(middlewares=middlewares)
    app[SETTINGS_KEY] = settings
    app[PUBLISHER_METRICS_KEY] = metrics
    mount_health(app, Health(), registry)
    app.cleanup_ctx.append(telemetry_ctx("roomcast-publisher"))
    app.cleanup_ctx.append(_links_ctx(settings, traced=exported))
    app.cleanup_ctx.append(presence_ctx)
    app.cleanup_ctx.append(console_ctx)
    app.cleanup_ctx.append(settled_heap(GC_YOUNG_THRESHOLD))
    add_routes(app)
    add_admin_routes(app)
    return app
