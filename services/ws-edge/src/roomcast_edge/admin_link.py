"""What the operator console asks an edge over the edge link.

`user_connections` is answered by every edge for its own connections of a user;
`close_connection` only by the edge holding the connection (any other stays silent),
which closes it with 4003 `closed by operator`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from roomcast_edge.keys import LINK_HANDLERS_KEY, NODE_KEY
from roomcast_edge.node import CLOSE_OPERATOR
from roomcast_edge.transport.connection import Connection

log = logging.getLogger(__name__)

# Connections of one user one edge lists at most (an answer must fit on the link).
MAX_LISTED = 100
# User and connection ids are short; anything longer names nothing here.
MAX_ID_LENGTH = 256


def describe(
    conn: Connection, rooms: frozenset[str], subs: frozenset[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "connection_id": conn.id,
        "device_id": conn.claims.did,
        "rooms": sorted(rooms),
        "subscriptions": sorted(f"{topic}:{type_}" for topic, type_ in subs),
        "connected_at": conn.connected_at,
    }


def add_admin_handlers(app: web.Application) -> None:
    """Registered before the link starts; the node is looked up when a request comes."""

    async def user_connections(body: dict[str, Any]) -> dict[str, Any]:
        user_id = body.get("user_id")
        if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_ID_LENGTH:
            return {"connections": [], "truncated": False}
        node = app[NODE_KEY]
        hub = node.hub
        found = [c for c in node.connections.values() if c.claims.sub == user_id]
        listed = [describe(c, hub.rooms_of(c), hub.subscriptions_of(c)) for c in found[:MAX_LISTED]]
        return {"connections": listed, "truncated": len(found) > MAX_LISTED}

    async def close_connection(body: dict[str, Any]) -> dict[str, Any] | None:
        connection_id = body.get("connection_id")
        if not isinstance(connection_id, str) or len(connection_id) > MAX_ID_LENGTH:
            return None
        node = app[NODE_KEY]
        conn = node.connections.get(connection_id)
        if conn is None:
            return {"closed": False}
        node.close(conn, *CLOSE_OPERATOR)
        log.info(
            "connection closed by operator",
            extra={"connection_id": connection_id, "by": body.get("key_id")},
        )
        return {"closed": True}

    handlers = app[LINK_HANDLERS_KEY]
    handlers["user_connections"] = user_connections
    handlers["close_connection"] = close_connection
