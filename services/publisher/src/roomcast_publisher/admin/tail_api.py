"""GET /v1/admin/tail: the messages passing on the bus, as server-sent events.

The stream opens with `event: ready` once the reader is at the bus's end (what is
published after it shows), then one unnamed event per message (the push JSON), a
`: ping` comment every PING_SECONDS, and `event: end` when the tail's time is up or
the publisher stops. A closed client is noticed within a second: its tail is let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_publisher.admin.auth import audit, require_admin
from roomcast_publisher.admin.query import tail_filter, tail_rate
from roomcast_publisher.admin.state import CONSOLE_KEY
from roomcast_publisher.admin.tail_hub import Watch
from roomcast_publisher.domain.tail import Tail

PING_SECONDS = 15.0
# A tail holds a share of the bus reader: it ends after this, and the page opens another.
MAX_TAIL_SECONDS = 30 * 60
# Seconds a new tail waits for the reader to reach the bus's end.
READY_TIMEOUT = 30.0


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def tail(request: web.Request) -> web.StreamResponse:
    key = require_admin(request)
    tail_filter_ = tail_filter(request)
    rate = tail_rate(request)
    hub = request.app[CONSOLE_KEY].tails
    watch = hub.open(Tail(tail_filter_, rate, time.monotonic()))
    if watch is None:
        raise ApiError(
            429, "too_many_tails", f"{hub.max_tails} tails are open already", {"Retry-After": "5"}
        )
    audit(key, "tail", room=tail_filter_.room, topic=tail_filter_.topic, type=tail_filter_.type)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await _stream(request, response, watch, rate)
        return response
    finally:
        await hub.close(watch)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _stream(
    request: web.Request, response: web.StreamResponse, watch: Watch, rate: int
) -> None:
    hub = request.app[CONSOLE_KEY].tails
    loop = asyncio.get_running_loop()
    ends = loop.time() + MAX_TAIL_SECONDS
    ready_by = loop.time() + READY_TIMEOUT
    while not hub.ready.is_set():
        if _gone(request) or watch.ended or loop.time() > ready_by:
            if not _gone(request):
                await response.write(_sse({"reason": "the bus cannot be read now"}, "end"))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.ready.wait(), 1.0)
    await response.write(_sse({"rate": rate}, "ready"))
    next_ping = loop.time() + PING_SECONDS
    while not watch.ended and loop.time() < ends:
        try:
            event = await asyncio.wait_for(watch.events.get(), 1.0)
        except TimeoutError:
            if _gone(request):
                return
            if loop.time() >= next_ping:
                await response.write(b": ping\n\n")
                next_ping = loop.time() + PING_SECONDS
            continue
        await response.write(_sse(event))
    await response.write(_sse({"reason": "tail ended, open another"}, "end"))
