"""GET /v1/rooms/{room}/presence: who is in a room, on every edge, read from Redis.

The same `presence` object as the edges' `presence` action (roomcast_core.presence_store),
behind the same API keys as publishing. Its Redis pool is its own, so a slow presence
read never holds a connection the publish path needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from roomcast_core.api import ApiError, error_responses, json_content, require_api_key, schema_of
from roomcast_core.jsonutil import json_response
from roomcast_core.presence_store import PresenceStore
from roomcast_core.redis_link import redis_client
from roomcast_publisher.keys import SETTINGS_KEY

PRESENCE_STORE_KEY = web.AppKey("presence_store", PresenceStore)
# Room names are short identifiers (the edge refuses longer ones).
MAX_ROOM_LENGTH = 256


class MemberOut(BaseModel):
    connection_id: str
    user_id: str
    device_id: str
    joined_at: int


class PresenceBody(BaseModel):
    room: str
    connections: int
    users: int
    members: list[MemberOut]


class PresenceOut(BaseModel):
    presence: PresenceBody


def presence_path(security: list[dict[str, list[str]]], components: dict[str, Any]) -> Any:
    """The endpoint's OpenAPI path item."""
    return {
        "get": {
            "summary": "Who is in a room, on every edge",
            "description": (
                "Every connection in the room, on any edge, within about 2 s of its join or "
                "leave; an edge that died drops out within ROOMCAST_EDGE__PRESENCE_TTL. "
                "`connections` and `users` are whole counts; `members` lists at most "
                "ROOMCAST_EDGE__PRESENCE_MAX_MEMBERS of them."
            ),
            "security": security,
            "parameters": [
                {"name": "room", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "the room's presence",
                    **json_content(schema_of(PresenceOut, components)),
                },
                **error_responses(400, 401, 503),
            },
        }
    }


async def presence_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY].redis
    client = redis_client(
        settings, socket_timeout=settings.timeout, socket_connect_timeout=settings.timeout
    )
    app[PRESENCE_STORE_KEY] = PresenceStore(client)
    yield
    await client.aclose()


async def room_presence(request: web.Request) -> web.Response:
    require_api_key(request, request.app[SETTINGS_KEY].publisher.api_keys)
    return json_response({"presence": await read_presence(request)})


async def read_presence(request: web.Request) -> dict[str, Any]:
    """The `presence` object of the request's {room}; 400 for a bad name, 503 without Redis."""
    settings = request.app[SETTINGS_KEY]
    room = request.match_info["room"].strip()
    if not room or len(room) > MAX_ROOM_LENGTH:
        raise ApiError(400, "invalid_room", f"room must be 1 to {MAX_ROOM_LENGTH} characters")
    try:
        return await request.app[PRESENCE_STORE_KEY].read(room, settings.edge.presence_max_members)
    except Exception as exc:
        raise ApiError(
            503, "presence_unavailable", f"presence cannot be read: {exc}", {"Retry-After": "1"}
        ) from None
