"""create_app(settings): the edge service's application, resources in cleanup_ctx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from roomcast_core.edge_link import EdgeLinkClient, EdgeLinkServer, Handler, new_edge_id
from roomcast_core.health import HEALTH_KEY, Health, mount_health
from roomcast_core.heap import settled_heap
from roomcast_core.redis_link import redis_client
from roomcast_core.settings import Settings
from roomcast_core.telemetry import telemetry_ctx
from roomcast_core.tokens import verifier_from_settings
from roomcast_edge.adapters.kafka_archive import KafkaArchive
from roomcast_edge.adapters.kafka_source import KafkaSource
from roomcast_edge.adapters.redis_archive import RedisArchive
from roomcast_edge.adapters.redis_presence import RedisPresence
from roomcast_edge.adapters.redis_stream_source import RedisStreamSource
from roomcast_edge.admin_link import add_admin_handlers
from roomcast_edge.deep_recovery import DeepRecoveries
from roomcast_edge.domain.in_flight import InFlight
from roomcast_edge.history_api import HISTORY_PER_TOKEN
from roomcast_edge.housekeeping import (
    check_heartbeats,
    close_revoked,
    expire_history,
    sweep_revocations,
)
from roomcast_edge.keys import (
    ARCHIVE_KEY,
    EDGE_ID_KEY,
    HISTORY_REQUESTS_KEY,
    LINK_CLIENT_KEY,
    LINK_HANDLERS_KEY,
    METRICS_KEY,
    NODE_KEY,
    PRESENCE_KEY,
    REVOCATIONS_KEY,
    ROOM_PRESENCE_KEY,
    SETTINGS_KEY,
    VERIFIER_KEY,
)
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.presence import BatchedPresence
from roomcast_edge.presence_ctx import deliver_notices, presence_ctx, webhook_ctx
from roomcast_edge.reporter import reporter_ctx
from roomcast_edge.revocations import BatchedRevocations
from roomcast_edge.routes import add_routes
from roomcast_edge.shared_ingest import shared_ingest_ctx
from roomcast_edge.sse_api import sse_ctx
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.takeover import check_aiohttp

log = logging.getLogger(__name__)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY].redis
    client = redis_client(
        settings,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        health_check_interval=15,
    )
    presence = RedisPresence(client)
    app[PRESENCE_KEY] = presence
    app[REVOCATIONS_KEY] = BatchedRevocations(presence, app[METRICS_KEY])
    app[HEALTH_KEY].add_check("redis", presence.readiness)
    yield
    await client.aclose()


async def _node_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    app[NODE_KEY] = Node(
        settings.edge,
        app[METRICS_KEY],
        asyncio.get_running_loop(),
        verifier=app[VERIFIER_KEY],
        revocations=app[REVOCATIONS_KEY].strict,  # a refresh fails closed
        leeway=settings.jwt.leeway,
        presence=app[ROOM_PRESENCE_KEY] if settings.edge.presence else None,
        edge_id=app[EDGE_ID_KEY],
    )
    if settings.edge.presence:
        _watch_rooms(app[NODE_KEY], app[ROOM_PRESENCE_KEY])
    archive = app[ARCHIVE_KEY]
    watching: asyncio.Task[None] | None = None
    if archive is not None:
        node = app[NODE_KEY]
        deep = node.deep = DeepRecoveries(archive, node.fanout)
        node.dispatcher.known_log_start = archive.known_log_start
        history = node.history
        watching = asyncio.create_task(deep.watch_log_start(lambda: history.partitions))
    yield
    node = app[NODE_KEY]
    if watching is not None:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    if node.deep is not None:
        await node.deep.close()
    for conn in list(node.connections.values()):
        node.close(conn, 1001, "going away")
    await node.wait_closed(2.0)
    node.abort_all()


async def _archive_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bus's log read back, for history reads and recoveries older than the history."""
    settings = app[SETTINGS_KEY]
    readers, metrics = settings.edge.archive_readers, app[METRICS_KEY]
    archive: KafkaArchive | RedisArchive
    if settings.bus.kind == "redis":
        archive = RedisArchive(settings, readers, metrics)
    else:
        archive = KafkaArchive(settings.kafka, readers, metrics)
    app[ARCHIVE_KEY] = archive
    yield
    await archive.close()


async def _link_ctx(app: web.Application) -> AsyncIterator[None]:
    """The edge link: answers what other processes ask of this edge's connections."""
    settings = app[SETTINGS_KEY].redis
    # No socket timeout: its connections wait on subscriptions (publishes are bounded).
    client = redis_client(
        settings, socket_connect_timeout=settings.timeout, health_check_interval=15
    )
    handlers: dict[str, Handler] = app[LINK_HANDLERS_KEY]
    node = app[NODE_KEY]

    async def hello(body: dict[str, Any]) -> dict[str, Any]:
        return {"connections": len(node.connections)}

    handlers["hello"] = hello  # who is there: every edge answers
    server = EdgeLinkServer(client, app[EDGE_ID_KEY], handlers)
    asker = app[LINK_CLIENT_KEY] = EdgeLinkClient(client)
    tasks = [
        asyncio.create_task(server.run(), name="edge-link"),
        asyncio.create_task(asker.run(), name="edge-link-replies"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


def _watch_rooms(node: Node, presence: BatchedPresence) -> None:
    """Every change of a connection's rooms, whatever caused it, reaches presence."""
    hub = node.hub

    def changed(conn: Connection) -> None:
        presence.update(conn, hub.rooms_of(conn))

    hub.on_rooms = changed


def _task_ctx(
    name: str, start: Callable[[web.Application], Coroutine[Any, Any, None]]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """cleanup_ctx entry running one background task for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(start(app), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def _kafka(app: web.Application) -> Coroutine[Any, Any, None]:
    settings = app[SETTINGS_KEY]
    node = app[NODE_KEY]
    if settings.bus.kind == "redis":
        stream = RedisStreamSource.from_settings(settings, node, app[METRICS_KEY])
        app[METRICS_KEY].partitions_owned.set(settings.bus.partitions)
        app[HEALTH_KEY].add_check("redis-streams", stream.readiness)
        return stream.run_and_close()
    source = KafkaSource(
        settings.kafka,
        settings.edge.history_size,
        node,
        app[METRICS_KEY],
        trace_id_in_meta=settings.edge.trace_id_in_meta,
        history_age=settings.edge.history_age,
        check_interval=settings.edge.partition_check_interval,
    )

    app[HEALTH_KEY].add_check("kafka", source.readiness)
    return source.run()


def _history_expiry(app: web.Application) -> Coroutine[Any, Any, None]:
    return expire_history(app[NODE_KEY])


def _heartbeats(app: web.Application) -> Coroutine[Any, Any, None]:
    return check_heartbeats(app[NODE_KEY], app[PRESENCE_KEY])


def _revocations(app: web.Application) -> Coroutine[Any, Any, None]:
    node = app[NODE_KEY]
    return app[PRESENCE_KEY].listen_revocations(lambda jti: close_revoked(node, jti))


def _sweep(app: web.Application) -> Coroutine[Any, Any, None]:
    node = app[NODE_KEY]
    return sweep_revocations(node, app[PRESENCE_KEY], node.settings.heartbeat_check_interval)


def _presence_notices(app: web.Application) -> Coroutine[Any, Any, None]:
    return app[ROOM_PRESENCE_KEY].listen_notices(deliver_notices(app[NODE_KEY]))


def create_app(settings: Settings) -> web.Application:
    check_aiohttp()  # the socket takeover relies on aiohttp internals: fail at start
    app = web.Application()
    app[SETTINGS_KEY] = settings
    registry = CollectorRegistry()
    app[METRICS_KEY] = EdgeMetrics(registry)
    app[VERIFIER_KEY] = verifier_from_settings(settings.jwt)
    app[EDGE_ID_KEY] = new_edge_id()
    app[LINK_HANDLERS_KEY] = {}
    add_admin_handlers(app)
    app[HISTORY_REQUESTS_KEY] = InFlight(HISTORY_PER_TOKEN)
    mount_health(app, Health(), registry)
    app.cleanup_ctx.append(telemetry_ctx("roomcast-edge"))
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(presence_ctx)
    app.cleanup_ctx.append(webhook_ctx)
    app.cleanup_ctx.append(_archive_ctx)
    app.cleanup_ctx.append(_node_ctx)
    app.cleanup_ctx.append(sse_ctx)
    app.cleanup_ctx.append(_link_ctx)
    app.cleanup_ctx.append(reporter_ctx)
    if settings.edge.ingest == "shared" and settings.bus.kind == "kafka":
        app.cleanup_ctx.append(shared_ingest_ctx)
    else:
        if settings.edge.ingest == "shared":
            log.warning("shared ingest runs on the Kafka bus only yet: reading every stream")
        app.cleanup_ctx.append(_task_ctx("kafka-source", _kafka))
    app.cleanup_ctx.append(_task_ctx("history-expiry", _history_expiry))
    app.cleanup_ctx.append(_task_ctx("heartbeats", _heartbeats))
    app.cleanup_ctx.append(_task_ctx("revocations", _revocations))
    app.cleanup_ctx.append(_task_ctx("revocation-sweep", _sweep))
    if settings.edge.presence and settings.edge.presence_events:
        app.cleanup_ctx.append(_task_ctx("presence-notices", _presence_notices))
    # last, once everything above has started: the loop's pauses are every client's latency
    app.cleanup_ctx.append(settled_heap())
    add_routes(app)
    return app
