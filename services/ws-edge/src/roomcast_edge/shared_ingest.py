"""cleanup_ctx entry of shared ingest (`ROOMCAST_EDGE__INGEST=shared`, Kafka bus).

In place of the stream source: this edge's share of the partitions routed to every
edge (KafkaRouter), and what the hub wants of everyone's routing received into the
history (RouteListener and the domain's Inbox), gaps filled from the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from roomcast_core.health import HEALTH_KEY
from roomcast_core.redis_link import redis_client
from roomcast_edge.adapters.kafka_archive import KafkaArchive
from roomcast_edge.adapters.kafka_router import KafkaRouter
from roomcast_edge.adapters.route_listener import RouteListener
from roomcast_edge.domain.inbox import Inbox
from roomcast_edge.domain.routing import channel_prefix
from roomcast_edge.keys import METRICS_KEY, NODE_KEY, SETTINGS_KEY
from roomcast_edge.metrics import EdgeMetrics

# Seconds a channel is kept after its last connection here left (at least 1 s).
LINGER_SECONDS = 1.0


async def shared_ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    metrics, node = app[METRICS_KEY], app[NODE_KEY]
    redis = settings.redis
    publisher = redis_client(
        redis, socket_timeout=redis.timeout, socket_connect_timeout=redis.timeout
    )
    # No socket timeout: the pub/sub connection waits for messages.
    listening = redis_client(redis, socket_connect_timeout=redis.timeout)
    # A reader of its own: gaps in the live stream never wait behind client recoveries.
    # Its gauges stay out of /metrics (they would replace the recoveries' readers'); the
    # listener counts the records it reads back.
    archive = KafkaArchive(settings.kafka, 1, EdgeMetrics(CollectorRegistry()))
    prefix = channel_prefix(settings.kafka.topic)
    history = node.history
    inbox = Inbox(node, history.positions)
    listener = RouteListener(listening, prefix, inbox, archive, metrics, LINGER_SECONDS)
    node.hub.on_wanted = listener.want
    node.dispatcher.coverage = inbox.covered_after
    router = KafkaRouter(settings.kafka, settings.edge.group, publisher, prefix, metrics)
    app[HEALTH_KEY].add_check("routing", listener.readiness)
    tasks = [
        asyncio.create_task(listener.run(), name="routing-link"),
        asyncio.create_task(listener.fill_forever(), name="routing-gaps"),
        asyncio.create_task(router.run(), name="kafka-router"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await archive.close()
    await publisher.aclose()
    await listening.aclose()
