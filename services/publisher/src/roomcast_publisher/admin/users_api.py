"""A user's connections on every edge, and closing one (4003), over the edge link."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_core.edge_link import edge_of
from roomcast_core.jsonutil import json_response
from roomcast_publisher.admin.auth import audit, require_admin
from roomcast_publisher.admin.state import CONSOLE_KEY

# Seconds the edges have to answer: they answer from memory, at once.
LINK_TIMEOUT = 2.0
MAX_ID_LENGTH = 256


def _link_down(exc: Exception) -> ApiError:
    return ApiError(503, "edges_unreachable", f"the edge link failed: {exc}", {"Retry-After": "1"})


async def user_connections(request: web.Request) -> web.Response:
    key = require_admin(request)
    user_id = request.match_info["user_id"]
    if not 0 < len(user_id) <= MAX_ID_LENGTH:
        raise ApiError(400, "invalid_user", f"user_id must be 1 to {MAX_ID_LENGTH} characters")
    console = request.app[CONSOLE_KEY]
    audit(key, "user_connections", user_id=user_id)
    try:
        expected = len(await console.reports.live())
        replies = await console.link.broadcast(
            "user_connections", {"user_id": user_id}, LINK_TIMEOUT, expect=expected or None
        )
    except Exception as exc:
        raise _link_down(exc) from None
    connections: list[dict[str, Any]] = []
    truncated = False
    for reply in sorted(replies, key=lambda r: str(r.get("edge_id"))):
        listed = reply.get("connections")
        truncated |= bool(reply.get("truncated"))
        for conn in listed if isinstance(listed, list) else ():
            if isinstance(conn, dict):
                connections.append({"edge_id": reply["edge_id"], **conn})
    return json_response(
        {
            "connections": connections,
            # How many edges answered of those reporting: fewer means some may be missing.
            "answered": len(replies),
            "expected": expected,
            "truncated": truncated,
        }
    )


async def close_connection(request: web.Request) -> web.Response:
    key = require_admin(request)
    connection_id = request.match_info["connection_id"]
    edge_id = edge_of(connection_id)
    if edge_id is None:
        raise ApiError(404, "unknown_connection", "no edge holds a connection of that id")
    audit(key, "close_connection", connection_id=connection_id, edge_id=edge_id)
    try:
        reply = await request.app[CONSOLE_KEY].link.call(
            edge_id,
            "close_connection",
            {"connection_id": connection_id, "key_id": key},
            LINK_TIMEOUT,
        )
    except Exception as exc:
        raise _link_down(exc) from None
    if reply is None or not reply.get("closed"):
        raise ApiError(
            404, "unknown_connection", f"edge {edge_id} holds no connection {connection_id}"
        )
    return json_response({"closed": True, "edge_id": edge_id, "connection_id": connection_id})
