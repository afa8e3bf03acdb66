"""GET /ws: authenticate, answer the upgrade, then hand the socket to a Connection.

`admit` holds the checks every transport makes before its first byte (`/sse` too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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


def refuse(metrics: EdgeMetrics, status: int, code: str, message: str) -> web.Response:
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


@dataclass(frozen=True, slots=True)
class Admitted:
    """A connect that passed every check: who, with which token, asking for what."""

    claims: TokenClaims
    token: str
    connect: ConnectRequest


Opener = Callable[[web.Request, Node, Admitted], Awaitable[web.StreamResponse]]


async def ws_handler(request: web.Request) -> web.StreamResponse:
    return await admit(request, _open_websocket)


async def admit(
    request: web.Request, opener: Opener, resume: str | None = None
) -> web.StreamResponse:
    """The refusals before any byte of a connection (503, 401, 400), then `opener`.

    `resume`: a position vector that replaces `since` (and `rewind`) of the query,
    as SSE's Last-Event-ID does on a reconnect.
    """
    app = request.app
    node = app[NODE_KEY]
    metrics = app[METRICS_KEY]
    settings = app[SETTINGS_KEY].edge
    if node.draining:
        return refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    if not node.caught_up:
        return refuse(metrics, 503, "not_ready", "this edge is still reading the stream")
    # Linear and cut to their limits before any other work, however long the URL.
    rooms, cut = protocol.parse_room_ids(request.query.get("roomIds"), settings.max_rooms)
    topics, bad_topics = protocol.parse_topic_specs(
        request.query.get("topics"), settings.max_subscriptions
    )
    # The slot is held from before the first await, so concurrent handshakes
    # can never open more than MAX_CONNECTIONS.
    if not node.reserve():
        return refuse(metrics, 503, "too_many_connections", "this edge is full, reconnect")
    try:
        return await _connect(request, node, rooms, topics, [*cut, *bad_topics], opener, resume)
    finally:
        node.release()


async def _connect(
    request: web.Request,
    node: Node,
    rooms: list[str],
    topics: list[tuple[str, str, str]],
    refused: list[protocol.Refusal],
    opener: Opener,
    resume: str | None,
) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS_KEY]
    token = _token(request)
    if not token:
        return _refuse_token(metrics, lifetime.TOKEN_INVALID, "a token is required")
    try:
        claims: TokenClaims = await authenticate(token, app[VERIFIER_KEY], app[REVOCATIONS_KEY])
    except TokenError as exc:
        return _refuse_token(metrics, lifetime.refusal_code(exc.reason), f"token refused: {exc}")
    since_text = resume if resume is not None else request.query.get("since")
    try:
        since = parse_vector(since_text) if since_text is not None else None
    except PositionError as exc:
        return refuse(metrics, 400, "invalid_since", f"invalid since: {exc}")
    rewind_text = request.query.get("rewind") if resume is None else None
    try:
        rewind = protocol.parse_rewind(rewind_text) if rewind_text is not None else 0
    except ValueError as exc:
        return refuse(metrics, 400, "invalid_rewind", f"invalid rewind: {exc}")
    if rewind and since is not None:
        return refuse(metrics, 400, "invalid_rewind", "since and rewind cannot be combined")
    log_start = None
    # With shared ingest the history may reach back far enough but miss the messages of
    # a channel taken up late, which only the bus can give: ask it every time.
    shared = node.dispatcher.coverage is not None
    beyond_memory = since is not None and not node.history.covers(since)
    if since is not None and (shared or beyond_memory):
        archive = app[ARCHIVE_KEY]
        log_start = await _log_start(archive, node)
        if log_start is None and archive is not None and beyond_memory:
            # The bus most likely still holds what the client missed: answering
            # recovered: false for an outage would be a lie. It retries in a moment.
            return refuse(
                metrics, 503, "bus_unavailable", "the bus cannot be read right now, retry"
            )
    connect = ConnectRequest(
        rooms=rooms,
        topics=topics,
        refused=refused,
        since=since,
        rewind=rewind,
        log_start=log_start,
    )
    return await opener(request, node, Admitted(claims, token, connect))


async def _open_websocket(
    request: web.Request, node: Node, admitted: Admitted
) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    settings = request.app[SETTINGS_KEY].edge
    upgrade = handshake.upgrade(request.headers, settings.compression)
    if upgrade is None:
        return refuse(metrics, 400, "websocket_required", "this endpoint needs a WebSocket upgrade")
    if still_draining(node):  # it may have begun while the token was checked
        return refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    transport = request.transport
    if transport is None or transport.is_closing():
        return TakenOver()  # the client is gone already
    loop = node.loop
    rate = settings.request_rate
    conn = Connection(
        node,
        transport,
        admitted.claims,
        TokenBucket(rate, 2 * rate, loop.time()),
        loop.time(),
        settings.max_frame_bytes,
        upgrade.deflate,
        settings.max_fragments,
        new_connection_id(node.edge_id),
    )
    tail = open_then_take_over(request, transport, node, conn, admitted.connect)
    if isinstance(tail, web.Response):
        return tail
    # The 101 and the `connected` message in one write: one send instead of two per
    # handshake. The 101 is still first on the socket: `Node.open` only queues (nothing
    # it does writes to the transport), and frames in `tail` are answered after this.
    node.fanout.flush_now(conn, first=upgrade.response)
    if tail:
        try:
            conn.data_received(tail)
        except Exception:
            # What asyncio does when a protocol's data_received raises: the socket
            # goes, and with it (connection_lost) every trace of the connection.
            log.exception("frames sent with the upgrade could not be handled")
            node.forget(conn)
            transport.abort()
    return TakenOver()


def open_then_take_over(
    request: web.Request,
    transport: asyncio.Transport,
    node: Node,
    conn: Connection,
    connect: ConnectRequest,
) -> bytes | web.Response:
    """Register conn, then take its socket from aiohttp; the bytes behind the request.

    Registered while aiohttp still owns the socket: if anything fails, `Node.open` has
    undone the registration and the client gets an HTTP answer (500), never a socket
    or stream that is counted and pushed to but never told `connected`.
    """
    try:
        node.open(conn, connect)
    except Exception:
        log.exception("connect failed after its checks passed")
        metrics = request.app[METRICS_KEY]
        return refuse(metrics, 500, "internal_error", "the connection could not be opened")
    try:
        return take_over(request, transport, conn)
    except BaseException:
        node.forget(conn)
        raise


async def _log_start(archive: StreamArchive | None, node: Node) -> dict[int, int] | None:
    """Where the bus's log starts, for a `since` older than the history (None: unknown)."""
    if archive is None:
        return None
    try:
        return await asyncio.wait_for(archive.log_start(node.history.partitions), LOG_START_WAIT)
    except Exception as exc:  # the connect goes on, answered recovered: false
        log.info("log start unknown, no recovery from the bus", extra={"error": repr(exc)})
        return None


def still_draining(node: Node) -> bool:
    # A function, so the check after an await is not taken for the one before it.
    return node.draining
