"""`GET /sse`: a stream admitted like a WebSocket (`handlers.admit`), then its socket
is taken over and it is a session of the node like any other; and the streams' pings.

Its requests arrive as POSTs (see sse_requests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from roomcast_core.edge_link import new_connection_id
from roomcast_edge.cors import cors_headers
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.handlers import Admitted, admit, open_then_take_over, refuse, still_draining
from roomcast_edge.keys import (
    FORWARDS_KEY,
    LINK_HANDLERS_KEY,
    METRICS_KEY,
    NODE_KEY,
    SETTINGS_KEY,
)
from roomcast_edge.node import Node
from roomcast_edge.sse_requests import LINK_OP, MAX_FORWARDS, link_handler
from roomcast_edge.transport.sse import HEAD, PING, SseConnection, start_vector
from roomcast_edge.transport.takeover import TakenOver

# Seconds between `: ping` comments on every stream (the contract: at most 15).
PING_SECONDS = 10.0


# ---- GET /sse ------------------------------------------------------------------


async def sse_handler(request: web.Request) -> web.StreamResponse:
    # EventSource sends the last event's id by itself on a reconnect: it wins over
    # the `since` (and `rewind`) of the URL it reconnects to.
    resume = request.headers.get("Last-Event-ID", "").strip() or None
    response = await admit(request, _open_stream, resume)
    if not isinstance(response, TakenOver):
        response.headers.update(cors_headers(request))
    return response


async def _open_stream(request: web.Request, node: Node, admitted: Admitted) -> web.StreamResponse:
    metrics = request.app[METRICS_KEY]
    if still_draining(node):  # it may have begun while the token was checked
        return refuse(metrics, 503, "draining", "this edge is shutting down, reconnect")
    transport = request.transport
    if transport is None or transport.is_closing():
        return TakenOver()  # the client is gone already
    rate = request.app[SETTINGS_KEY].edge.request_rate
    loop = node.loop
    conn = SseConnection(
        node,
        transport,
        admitted.claims,
        admitted.token,
        TokenBucket(rate, 2 * rate, loop.time()),
        start_vector(node.history.positions(), admitted.connect.since),
        new_connection_id(node.edge_id),
    )
    head = HEAD
    cors = cors_headers(request)
    if cors:
        lines = "".join(f"{name}: {value}\r\n" for name, value in cors.items())
        head = HEAD[:-2] + lines.encode() + b"\r\n"
    # Bytes behind a GET are not ours to read: the tail is dropped.
    opened = open_then_take_over(request, transport, node, conn, admitted.connect)
    if isinstance(opened, web.Response):
        return opened
    node.fanout.flush_now(conn, first=head)  # the head and `connected` in one write
    return TakenOver()


# ---- lifecycle ----------------------------------------------------------------


async def sse_ctx(app: web.Application) -> AsyncIterator[None]:
    """Answer requests for this edge's streams on the link; ping every stream."""
    app[FORWARDS_KEY] = asyncio.Semaphore(MAX_FORWARDS)
    app[LINK_HANDLERS_KEY][LINK_OP] = link_handler(app)
    task = asyncio.create_task(_ping(app[NODE_KEY]), name="sse-ping")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _ping(node: Node) -> None:
    """A comment on every stream: proxies see traffic, and a dead client a failed write."""
    while True:
        await asyncio.sleep(PING_SECONDS)
        for conn in list(node.sse_connections):
            node.fanout.send(conn, PING)
