"""GET /ws: authenticate, upgrade, then feed client frames to the node."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from roomcast_core.errors import error_response
from roomcast_core.tokens import TokenClaims, TokenError, authenticate
from roomcast_edge.connection import Connection
from roomcast_edge.domain import protocol
from roomcast_edge.domain.positions import PositionError, parse_vector
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.keys import METRICS_KEY, NODE_KEY, PRESENCE_KEY, SETTINGS_KEY, VERIFIER_KEY
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import ConnectRequest

log = logging.getLogger(__name__)

# Seconds the server waits for the client's answer to its close frame.
CLOSE_TIMEOUT = 5.0


class _FailOpenRevocations:
    """Revocation lookups at connect that tolerate a Redis outage.

    Fail open: while Redis is unreachable a revoked but otherwise valid token can
    connect (counted in roomcast_edge_redis_errors_total); it is closed by the sweep
    once Redis is back. Refusing every client during an outage would be worse for
    a push service whose tokens are short-lived and signed.
    """

    def __init__(self, request: web.Request, metrics: EdgeMetrics) -> None:
        self._presence = request.app[PRESENCE_KEY]
        self._metrics = metrics

    async def is_revoked(self, jti: str) -> bool:
        try:
            return await self._presence.is_revoked(jti)
        except Exception as exc:
            self._metrics.redis_errors.labels("is_revoked").inc()
            log.warning("revocation unreadable, connecting anyway", extra={"error": repr(exc)})
            return False


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


async def ws_handler(request: web.Request) -> web.StreamResponse:
    app = request.app
    node = app[NODE_KEY]
    metrics = app[METRICS_KEY]
    settings = app[SETTINGS_KEY].edge
    if node.draining:
        return _refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    if not node.caught_up:
        return _refuse(metrics, 503, "not_ready", "this edge is still reading the stream")
    if len(node.connections) >= settings.max_connections:
        return _refuse(metrics, 503, "too_many_connections", "this edge is full, reconnect")
    token = _token(request)
    if not token:
        return _refuse(metrics, 401, "unauthorized", "a token is required")
    try:
        claims: TokenClaims = await authenticate(
            token, app[VERIFIER_KEY], _FailOpenRevocations(request, metrics)
        )
    except TokenError as exc:
        return _refuse(metrics, 401, "unauthorized", f"token refused: {exc}")
    since_text = request.query.get("since")
    try:
        since = parse_vector(since_text) if since_text is not None else None
    except PositionError as exc:
        return _refuse(metrics, 400, "invalid_since", f"invalid since: {exc}")
    topics, bad_topics = protocol.parse_topic_specs(request.query.get("topics"))
    connect = ConnectRequest(
        rooms=protocol.parse_room_ids(request.query.get("roomIds"), settings.max_rooms),
        topics=topics,
        bad_topics=bad_topics,
        since=since,
    )

    ws = web.WebSocketResponse(
        autoping=False,  # pings are life: we answer them ourselves
        # Off by default: aiohttp's own per-connection deflate context costs ~200 KB
        # per client. When on, pushes are compressed once per message (fanout).
        compress=settings.compression,
        max_msg_size=settings.max_frame_bytes,
        timeout=CLOSE_TIMEOUT,
    )
    if not ws.can_prepare(request).ok:
        return _refuse(
            metrics, 400, "websocket_required", "this endpoint needs a WebSocket upgrade"
        )
    await ws.prepare(request)
    transport = request.transport
    if transport is None or node.draining:
        await ws.close(code=1012, message=b"service restart")
        return ws
    loop = node.loop
    rate = settings.request_rate
    conn = Connection(ws, transport, claims, TokenBucket(rate, 2 * rate, loop.time()), loop.time())
    conn.deflate = int(ws.compress or 0)
    try:
        node.open(conn, connect)
        async for message in ws:
            kind = message.type
            if kind is WSMsgType.PONG:
                continue  # answers to our pings prove the path, not the client
            conn.last_life = loop.time()
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                node.handle_text(conn, message.data)
            elif kind is WSMsgType.PING:
                node.pong(conn, message.data)
            elif kind is WSMsgType.ERROR:
                break
    finally:
        if conn.close_task is not None:
            # The handler lives until its close handshake is over; shielded so a
            # cancelled handler does not cut the close frame short.
            await asyncio.shield(conn.close_task)
        else:
            node.forget(conn)
            if ws.close_code == 1009:
                metrics.drops.labels("frame_too_large").inc()
            await ws.close()
    return ws
