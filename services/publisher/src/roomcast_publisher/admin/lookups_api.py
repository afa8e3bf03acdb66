"""The console's look-ups: rooms (searched, paged), a room's presence, recent messages.

Each is bounded: a room search runs a few SCAN steps per page and hands back a
cursor; a look-back reads at most LOOKBACK records per partition of the bus, two at a
time across operators.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_core.jsonutil import json_response
from roomcast_core.presence_store import room_key, users_key
from roomcast_core.wire import WireError, decode_value
from roomcast_publisher.admin.auth import audit, require_admin
from roomcast_publisher.admin.query import bounded_int, tail_filter
from roomcast_publisher.admin.state import CONSOLE_KEY
from roomcast_publisher.domain.tail import push_event
from roomcast_publisher.presence_api import read_presence

ROOM_PREFIX = room_key("")
MAX_PAGE = 200
# SCAN steps (of SCAN_COUNT keys each) one page of a room search takes at most.
SCAN_STEPS = 20
SCAN_COUNT = 1000
MAX_QUERY = 128
LOOKBACK = 2000
LOOKBACK_SECONDS = 5.0
MAX_MESSAGES = 200
_GLOB = re.compile(r"([*?\[\]\\])")


def _text(key: bytes | str) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else key


def _page_cursor(raw: str) -> tuple[int, int]:
    """A page cursor: SCAN's cursor, and how many matches of that step were listed."""
    scan, _, skip = raw.partition(".")
    if not (
        scan.isdigit() and len(scan) <= 20 and (not skip or (skip.isdigit() and len(skip) <= 6))
    ):
        raise ApiError(400, "invalid_request", "cursor: the value a previous page returned")
    cursor = int(scan)
    if cursor >= 1 << 64:  # SCAN's cursor is an unsigned 64-bit number
        raise ApiError(400, "invalid_request", "cursor: the value a previous page returned")
    return cursor, int(skip or 0)


async def rooms(request: web.Request) -> web.Response:
    """Rooms with members (from presence) whose name contains `q`: a page and a cursor.

    A page ends at `limit` rooms or after SCAN_STEPS steps. When it ends inside a
    step, the cursor names that step and how much of it was listed: the next page runs
    the step again and goes on after those (a step's matches are listed in name order).
    """
    require_admin(request)
    search = request.query.get("q", "")
    if len(search) > MAX_QUERY:
        raise ApiError(400, "invalid_request", f"q: at most {MAX_QUERY} characters")
    limit = bounded_int(request, "limit", 50, MAX_PAGE)
    cursor, skip = _page_cursor(request.query.get("cursor", "0"))
    client = request.app[CONSOLE_KEY].redis
    escaped = _GLOB.sub(r"\\\1", search)  # the search is text, never a pattern
    match = ROOM_PREFIX + (f"*{escaped}*" if search else "*")
    found: list[str] = []
    after: str | None = None
    try:
        for _ in range(SCAN_STEPS):
            following, keys = await client.scan(cursor, match=match, count=SCAN_COUNT)
            names = sorted({_text(k)[len(ROOM_PREFIX) :] for k in keys})[skip:]
            space = limit - len(found)
            found.extend(names[:space])
            if len(names) > space:
                after = f"{cursor}.{skip + space}"
                break
            cursor, skip = int(following), 0
            after = str(cursor) if cursor else None
            if cursor == 0 or len(found) >= limit:
                break
        pipe = client.pipeline(transaction=False)
        for name in found:
            pipe.hlen(room_key(name))
            pipe.hlen(users_key(name))
        counts: list[Any] = await pipe.execute()
    except Exception as exc:
        raise ApiError(
            503, "presence_unavailable", f"rooms cannot be read: {exc}", {"Retry-After": "1"}
        ) from None
    listed = [
        {"room": name, "connections": int(counts[2 * i]), "users": int(counts[2 * i + 1])}
        for i, name in enumerate(found)
    ]
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
