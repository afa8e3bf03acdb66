"""Requests POSTed for an SSE stream (`POST /v1/connections/{id}/requests`).

Any edge takes them: the one holding the stream answers (one request at a time, its
reply is the next one the node gives), the others pass the request on over the edge
link (op `connection_request`) and return that edge's answer.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import orjson
from aiohttp import web

from roomcast_core.edge_link import Handler, edge_of
from roomcast_core.tokens import TokenError, TokenVerifier, bearer_credentials
from roomcast_edge.cors import cors_headers
from roomcast_edge.domain import lifetime
from roomcast_edge.keys import (
    EDGE_ID_KEY,
    FORWARDS_KEY,
    LINK_CLIENT_KEY,
    METRICS_KEY,
    NODE_KEY,
    SETTINGS_KEY,
    VERIFIER_KEY,
)
from roomcast_edge.node import Node
from roomcast_edge.transport.sse import SseConnection

LINK_OP = "connection_request"
# How long a POST may take to arrive whole, to be answered, and to cross the link.
BODY_SECONDS = 10.0
REPLY_SECONDS = 10.0
FORWARD_SECONDS = 10.0
# Requests of one stream waiting for the one being answered; more are 429.
MAX_QUEUED = 16
# Requests this edge passes to other edges at once; more are 503 (each holds a
# Redis round trip and a task).
MAX_FORWARDS = 128

Result = tuple[int, bytes]


def _error(status: int, code: str, message: str) -> Result:
    return status, orjson.dumps({"error": {"code": code, "message": message}})


async def requests_handler(request: web.Request) -> web.Response:
    app = request.app
    metrics = app[METRICS_KEY]
    status, body, where = await _post(request)
    metrics.sse_posts.labels(str(status), where).inc()
    headers = cors_headers(request)
    if status in (429, 503):
        headers["Retry-After"] = "1"
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


async def preflight_handler(request: web.Request) -> web.Response:
    """A browser's CORS preflight of a POST with Authorization and a JSON body."""
    headers = cors_headers(request)
    if headers:
        headers["Access-Control-Allow-Methods"] = "POST"
        headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        headers["Access-Control-Max-Age"] = "600"
    return web.Response(status=204, headers=headers)


async def _post(request: web.Request) -> tuple[int, bytes, str]:
    """(status, body, where it was answered: here, forwarded or refused)."""
    app = request.app
    connection_id = request.match_info["connection_id"]
    edge = edge_of(connection_id)
    if edge is None:
        return (*_error(404, "unknown_connection", "no such connection"), "refused")
    token = bearer_credentials(request.headers.get("Authorization", ""))
    if token is None:
        return (
            *_error(401, lifetime.TOKEN_INVALID, "Authorization: Bearer <token> is required"),
            "refused",
        )
    limit = app[SETTINGS_KEY].edge.max_frame_bytes
    read = await _read_body(request, limit)
    if isinstance(read, tuple):
        return (*read, "refused")
    parsed = _parse(read)
    if parsed is not None:
        return (*parsed, "refused")
    if edge == app[EDGE_ID_KEY]:
        return (*await answer(app[NODE_KEY], app[VERIFIER_KEY], connection_id, token, read), "here")
    # Only a token this deployment signed crosses the link (expired is fine: a
    # stream in its refresh grace still needs its requests); anything else stops here.
    try:
        app[VERIFIER_KEY].verify(token)
    except TokenError as exc:
        if exc.reason != "expired":
            return (*_token_refused(exc), "refused")
    return (*await _forward(app, edge, connection_id, token, read), "forwarded")


async def _read_body(request: web.Request, limit: int) -> bytes | Result:
    """The whole body, however it arrives, or the error answering it (413, 408)."""
    if request.content_length is not None and request.content_length > limit:
        return _error(413, "body_too_large", f"a request is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    return _error(413, "body_too_large", f"a request is at most {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        return _error(408, "body_timeout", f"the body did not arrive within {BODY_SECONDS:g} s")
    return b"".join(chunks)


def _parse(body: bytes) -> Result | None:
    """400 for a body that is not a JSON object; None when it is one."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _error(400, "invalid_json", "the body must be a JSON request object")
    if not isinstance(request, dict):
        return _error(400, "invalid_request", "the body must be a JSON object")
    return None


def _token_refused(exc: TokenError) -> Result:
    return _error(401, lifetime.refusal_code(exc.reason), f"token refused: {exc}")


async def answer(
    node: Node, verifier: TokenVerifier, connection_id: str, token: str, body: bytes
) -> Result:
    """The reply of the stream `connection_id` held here to one request, as (status, body)."""
    conn = node.connections.get(connection_id)
    if not isinstance(conn, SseConnection) or conn.closed:
        return _error(404, "unknown_connection", "no such connection")
    if not _same(token, conn.token):
        # Not the stream's current token: another token of the same user and device
        # will do (it could open a stream of its own); anyone else's will not.
        try:
            claims = verifier.verify(token)
        except TokenError as exc:
            return _token_refused(exc)
        if (claims.sub, claims.did) != (conn.claims.sub, conn.claims.did):
            return _error(403, "forbidden", "this connection belongs to another user or device")
    if conn.queued >= MAX_QUEUED:
        return _error(429, "too_many_requests", "too many requests of this connection at once")
    conn.queued += 1
    try:
        await conn.lock.acquire()  # one request at a time: its reply is the next one
    finally:
        conn.queued -= 1
    return await _ask(node, conn, body)


async def _ask(node: Node, conn: SseConnection, body: bytes) -> Result:
    """Pass one request to the node and wait for its reply; releases `conn.lock`."""
    if conn.closed:
        conn.lock.release()
        return _error(404, "unknown_connection", "the connection has closed")
    waiter: asyncio.Future[bytes] = node.loop.create_future()
    conn.waiter = waiter
    claims = conn.claims
    node.handle_text(conn, body)
    done: set[asyncio.Future[bytes]] = set()
    try:
        done, _ = await asyncio.wait({waiter}, timeout=REPLY_SECONDS)
    finally:
        if not done:  # timed out, or this POST was cancelled
            # Its reply may still come (a Redis check running late): the next request
            # waits for it, so that replies never cross. The connection's end cancels it.
            waiter.add_done_callback(lambda _: conn.lock.release())
    if not done:
        return _error(504, "reply_timeout", "the request was not answered in time, retry")
    conn.lock.release()
    if waiter.cancelled():
        return _error(404, "unknown_connection", "the connection has closed")
    if conn.claims is not claims:  # a refresh was put in force: its token is current now
        params = orjson.loads(body).get("params")
        if isinstance(params, dict) and isinstance(params.get("token"), str):
            conn.token = params["token"]
    # The rate limit refused it (an accepted request clears the strikes).
    return (429 if conn.strikes else 200), waiter.result()


def _same(token: str, current: str) -> bool:
    encode = "utf-8", "surrogateescape"
    return hmac.compare_digest(token.encode(*encode), current.encode(*encode))


async def _forward(
    app: web.Application, edge: str, connection_id: str, token: str, body: bytes
) -> Result:
    """The holding edge's answer over the edge link; 404 when no edge answers."""
    forwards = app[FORWARDS_KEY]
    if forwards.locked():
        return _error(503, "busy", "too many requests in flight on this edge, retry")
    async with forwards:
        message = {"connection_id": connection_id, "token": token, "request": body.decode()}
        try:
            reply = await app[LINK_CLIENT_KEY].call(edge, LINK_OP, message, FORWARD_SECONDS)
        except Exception:  # Redis away: the request may be retried
            return _error(503, "link_unavailable", "the edge holding it cannot be reached, retry")
    if reply is None:
        return _error(404, "unknown_connection", "no such connection")
    status, text = reply.get("status"), reply.get("body")
    if not isinstance(status, int) or not 200 <= status <= 599 or not isinstance(text, str):
        return _error(502, "bad_gateway", "the edge holding the connection failed to answer")
    return status, text.encode()


def link_handler(app: web.Application) -> Handler:
    """What this edge answers on the link for requests of the streams it holds."""
    node, verifier = app[NODE_KEY], app[VERIFIER_KEY]

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        connection_id, token, body = (
            message.get("connection_id"),
            message.get("token"),
            message.get("request"),
        )
        if isinstance(connection_id, str) and isinstance(token, str) and isinstance(body, str):
            raw = body.encode("utf-8", "surrogatepass")  # a lone surrogate: not JSON, a 400
            status, reply = _parse(raw) or await answer(node, verifier, connection_id, token, raw)
        else:
            status, reply = _error(400, "invalid_request", "malformed link request")
        app[METRICS_KEY].sse_posts.labels(str(status), "for_another_edge").inc()
        return {"status": status, "body": reply.decode()}

    return handle
