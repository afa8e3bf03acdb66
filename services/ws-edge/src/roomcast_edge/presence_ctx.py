"""cleanup_ctx entries of shared presence (its own Redis pool, heartbeat and sweep
task) and of the webhook sender.

Appended before the node's entry, so at shutdown the node closes its connections
first and the leaves they cause are written before this edge retires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from roomcast_core.health import HEALTH_KEY
from roomcast_core.health import METRICS_KEY as REGISTRY_KEY
from roomcast_core.presence_store import NOTICE_CHANNEL, Outlets, PresenceStore
from roomcast_core.redis_link import redis_client
from roomcast_edge.adapters.webhook_sender import BLOCK_MS, WebhookMetrics, WebhookSender
from roomcast_edge.domain.frames import text_frame
from roomcast_edge.keys import EDGE_ID_KEY, ROOM_PRESENCE_KEY, SETTINGS_KEY
from roomcast_edge.node import Node
from roomcast_edge.presence import BatchedPresence, PresenceMetrics

# Seconds the last leaves may take to reach Redis at shutdown.
FINAL_FLUSH_SECONDS = 3.0


async def presence_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    client = redis_client(
        settings.redis,
        socket_timeout=settings.redis.timeout,
        socket_connect_timeout=settings.redis.timeout,
        health_check_interval=15,
    )
    outlets = Outlets(
        outbox=settings.webhooks.stream if settings.webhooks.urls else "",
        channel=NOTICE_CHANNEL if settings.edge.presence_events else "",
    )
    presence = BatchedPresence(
        PresenceStore(client),
        ttl=settings.edge.presence_ttl,
        max_members=settings.edge.presence_max_members,
        outlets=outlets,
        metrics=PresenceMetrics(app[REGISTRY_KEY]),
        edge_id=app[EDGE_ID_KEY],
    )
    app[ROOM_PRESENCE_KEY] = presence
    app[HEALTH_KEY].add_check("presence", presence.readiness)
    if not settings.edge.presence:
        yield
        await client.aclose()
        return
    with contextlib.suppress(Exception):  # Redis away: loaded when it answers NOSCRIPT
        await presence.store.load()
    task = asyncio.create_task(presence.run(), name="presence-heartbeat")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await presence.close(FINAL_FLUSH_SECONDS)
    await client.aclose()


def deliver_notices(node: Node) -> Callable[[str, str, bytes], None]:
    """Join/leave pushes to this edge's connections in the room, one frame for all;
    the connection whose join or leave it announces is not told of it."""

    def deliver(room: str, connection_id: str, push: bytes) -> None:
        frame = text_frame(push)
        for conn in node.hub.recipients(None, None, room):
            if conn.id != connection_id and not conn.closed:
                node.fanout.send(conn, conn.message(push) if conn.recode else frame)

    return deliver


async def webhook_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbox sender, in every edge when webhook URLs are set (see webhook_sender)."""
    settings = app[SETTINGS_KEY]
    if not settings.webhooks.urls:
        yield
        return
    # XREADGROUP blocks up to BLOCK_MS: the socket must wait longer than that.
    wait = settings.redis.timeout + BLOCK_MS / 1000
    client = redis_client(
        settings.redis, socket_timeout=wait, socket_connect_timeout=settings.redis.timeout
    )
    sender = WebhookSender(
        client,
        settings.webhooks,
        app[EDGE_ID_KEY],
        WebhookMetrics(app[REGISTRY_KEY]),
    )
    task = asyncio.create_task(sender.run(), name="webhook-sender")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.aclose()
