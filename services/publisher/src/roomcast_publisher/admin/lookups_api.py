"""The console's look-ups: rooms (searched, paged), a room's presence, recent messages.

Each is bounded: a room search runs at most a few SCAN steps per page and hands
back a cursor (adapters.redis_rooms); a look-back reads at most LOOKBACK records per
partition of the bus, two at a time across operators.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_core.jsonutil import json_response
from roomcast_core.wire import WireError, decode_value
from roomcast_publisher.adapters.redis_rooms import PageCursor, search_rooms
from roomcast_publisher.admin.auth import audit, require_admin
from roomcast_publisher.admin.query import bounded_int, tail_filter
from roomcast_publisher.admin.state import CONSOLE_KEY
from roomcast_publisher.domain.tail import push_event
from roomcast_publisher.presence_api import read_presence

MAX_PAGE = 200
MAX_QUERY = 128
LOOKBACK = 2000
LOOKBACK_SECONDS = 5.0
MAX_MESSAGES = 200


async def rooms(request: web.Request) -> web.Response:
    """Rooms with members (from presence) whose name contains `q`: a page and a cursor."""
    require_admin(request)
    search = request.query.get("q", "")
    if len(search) > MAX_QUERY:
        raise ApiError(400, "invalid_request", f"q: at most {MAX_QUERY} characters")
    limit = bounded_int(request, "limit", 50, MAX_PAGE)
    cursor = PageCursor.parse(request.query.get("cursor", "0"))
    if cursor is None:
        raise ApiError(400, "invalid_request", "cursor: the value a previous page returned")
    try:
        listed, after = await search_rooms(request.app[CONSOLE_KEY].redis, search, limit, cursor)
    except Exception as exc:
        raise ApiError(
            503, "presence_unavailable", f"rooms cannot be read: {exc}", {"Retry-After": "1"}
        ) from None
    return json_response({"rooms": listed, "cursor": after})


async def presence(request: web.Request) -> web.Response:
    key = require_admin(request)
    audit(key, "presence", room=request.match_info["room"])
    return json_response({"presence": await read_presence(request)})


async def history(request: web.Request) -> web.Response:
    """The last `limit` messages matching the filters among the bus's latest records."""
    key = require_admin(request)
    wanted = tail_filter(request)
    limit = bounded_int(request, "limit", 50, MAX_MESSAGES)
    console = request.app[CONSOLE_KEY]
    if console.lookbacks.locked():
        raise ApiError(429, "busy", "other look-backs are running, retry", {"Retry-After": "1"})
    audit(key, "history", room=wanted.room, topic=wanted.topic, type=wanted.type)
    async with console.lookbacks:
        try:
            records = await console.reader.recent(LOOKBACK, LOOKBACK_SECONDS)
        except Exception as exc:
            raise ApiError(
                503, "bus_unavailable", f"the bus cannot be read: {exc}", {"Retry-After": "1"}
            ) from None
    found: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        if not wanted.may_match(record.key):
            continue
        try:
            message = decode_value(record.value)
        except WireError:
            continue
        if wanted.matches(message):
            found.append(
                (message.receive_time, push_event(message, record.partition, record.offset))
            )
    found.sort(key=lambda item: item[0])
    return json_response(
        {"messages": [event for _, event in found[-limit:]], "scanned": len(records)}
    )
