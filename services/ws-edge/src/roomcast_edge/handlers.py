"""GET /ws: authenticate, answer the upgrade, then hand the socket to a Connection."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from roomcast_core.edge_link import new_connection_id
from roomcast_core.errors import error_response
from roomcast_core.tokens import TokenClaims, TokenError, authenticate
from roomcast_edge.domain import lifetime, protocol
from roomcast_edge.domain.dispatch import ConnectRequest
from roomcast_edge.domain.ports import StreamArchive
from roomcast_edge.domain.positions import PositionError, parse_vector
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.keys import (
    ARCHIVE_KEY,
    METRICS_KEY,
    NODE_KEY,
    REVOCATIONS_KEY,
    SETTINGS_KEY,
    VERIFIER_KEY,
)
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.transport import handshake
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.takeover import TakenOver, take_over

log = logging.getLogger(__name__)

# A connect with a `since` older than the history waits this long at most to learn
# whether the bus still holds the gap.
LOG_START_WAIT = 5.0


def _token(request: web.Request) -> str:
    token = request.query.get("token", "")
    if token:
        return token
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return ""


def _refuse(metrics: EdgeMetrics, status: int, code: str, message: str) -> web.Response:
    metrics.rejected.labels(code).inc()
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(status, code, message, headers)


def _refuse_token(metrics: EdgeMetrics, code: str, message: str) -> web.Response:
    """401 with token_expired, token_invalid or token_revoked.

    The code is also in WWW-Authenticate (RFC 6750): a WebSocket library that hides
    a refused upgrade's body usually still shows its headers.
    """
    metrics.rejected.labels(code).inc()
    challenge = f'Bearer error="invalid_token", error_description="{code}"'
    return error_response(401, code, message, {"WWW-Authenticate": challenge})


async def ws_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    node = app[NODE_KEY]
    metrics = app[METRICS_KEY]
    settings = app[SETTINGS_KEY].edge
    if node.draining:
        return _refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    if not node.caught_up:
        return _refuse(metrics, 503, "not_ready", "this edge is still reading the stream")
    # Linear and cut to their limits before any other work, however long the URL.
    rooms = protocol.parse_room_ids(request.query.get("roomIds"), settings.max_rooms)
    topics, bad_topics = protocol.parse_topic_specs(
        request.query.get("topics"), settings.max_subscriptions
    )
    # The slot is held from before the first await, so concurrent handshakes
    # can never open more than MAX_CONNECTIONS.
    if not node.reserve():
        return _refuse(metrics, 503, "too_many_connections", "this edge is full, reconnect")
    try:
        return await _connect(request, node, rooms, topics, bad_topics)
    finally:
        node.release()


async def _connect(
    request: web.Request,
    node: Node,
    rooms: list[str],
    topics: list[tuple[str, str, str]],
    bad_topics: list[str],
) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS_KEY]
    settings = app[SETTINGS_KEY].edge
    token = _token(request)
    if not token:
        return _refuse_token(metrics, lifetime.TOKEN_INVALID, "a token is required")
    try:
        claims: TokenClaims = await authenticate(token, app[VERIFIER_KEY], app[REVOCATIONS_KEY])
    except TokenError as exc:
        return _refuse_token(metrics, lifetime.refusal_code(exc.reason), f"token refused: {exc}")
    since_text = request.query.get("since")
    try:
        since = parse_vector(since_text) if since_text is not None else None
    except PositionError as exc:
        return _refuse(metrics, 400, "invalid_since", f"invalid since: {exc}")
    rewind_text = request.query.get("rewind")
    try:
        rewind = protocol.parse_rewind(rewind_text) if rewind_text is not None else 0
    except ValueError as exc:
        return _refuse(metrics, 400, "invalid_rewind", f"invalid rewind: {exc}")
    if rewind and since is not None:
        return _refuse(metrics, 400, "invalid_rewind", "since and rewind cannot be combined")
    log_start = None
    # With shared ingest the history may reach back far enough but miss the messages of
    # a channel taken up late, which only the bus can give: ask it every time.
    shared = node.dispatcher.coverage is not None
    if since is not None and (shared or not node.history.covers(since)):
        log_start = await _log_start(app[ARCHIVE_KEY], node)
    connect = ConnectRequest(
        rooms=rooms,
        topics=topics,
        bad_topics=bad_topics,
        since=since,
        rewind=rewind,
        log_start=log_start,
    )

    upgrade = handshake.upgrade(request.headers, settings.compression)
    if upgrade is None:
        return _refuse(
            metrics, 400, "websocket_required", "this endpoint needs a WebSocket upgrade"
        )
    if _still_draining(node):  # it may have begun while the token was checked
        return _refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    transport = request.transport
    if transport is None or transport.is_closing():
        return TakenOver()  # the client is gone already
    loop = node.loop
    rate = settings.request_rate
    conn = Connection(
        node,
        transport,
        claims,
        TokenBucket(rate, 2 * rate, loop.time()),
        loop.time(),
        settings.max_frame_bytes,
        upgrade.deflate,
        settings.max_fragments,
        new_connection_id(node.edge_id),
    )
    tail = take_over(request, transport, conn)
    node.open(conn, connect)
    # The 101 and the `connected` message in one write: one send instead of two per
    # handshake. The 101 is still first on the socket: `Node.open` only queues (nothing
    # it does writes to the transport), and frames in `tail` are answered after this.
    node.fanout.flush_now(conn, first=upgrade.response)
    if tail:
        conn.data_received(tail)
    return TakenOver()


async def _log_start(archive: StreamArchive | None, node: Node) -> dict[int, int] | None:
    """Where the bus's log starts, for a `since` older than the history (None: unknown)."""
    if archive is None:
        return None
    try:
        return await asyncio.wait_for(archive.log_start(node.history.partitions), LOG_START_WAIT)
    except Exception as exc:  # the connect goes on, answered recovered: false
        log.info("log start unknown, no recovery from the bus", extra={"error": repr(exc)})
        return None


def _still_draining(node: Node) -> bool:
    # A function, so the check after an await is not taken for the one before it.
    return node.draining
