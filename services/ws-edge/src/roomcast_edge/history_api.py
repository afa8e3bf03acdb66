"""GET /v1/history: a page of past messages, from memory when it can, the bus when it must.

Partitions are read one after the other, each in offset order, from the request's
vector up to where the edge had read when the request came. What the in-memory
history still holds is read from its index, MEMORY_STEP records per event-loop turn;
what is older comes from the bus's own log through a borrowed reader, a chunk per
await, given back every READER_HOLD seconds so that pages and recoveries take
turns. A page ends at `limit` messages or after SCAN_BUDGET records examined; `next`
continues exactly after what it covered. A token has at most HISTORY_PER_TOKEN pages
in progress at once (429 beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import orjson
from aiohttp import web

from roomcast_core.errors import error_response
from roomcast_core.tokens import TokenError, authenticate
from roomcast_edge.domain import lifetime
from roomcast_edge.domain.dispatch import addresses
from roomcast_edge.domain.frames import frame_payload
from roomcast_edge.domain.history_query import HistoryQuery, QueryError, parse_query
from roomcast_edge.domain.history_view import oldest_kept
from roomcast_edge.domain.ports import ArchiveGone, ArchiveReader, StreamArchive
from roomcast_edge.domain.positions import format_vector
from roomcast_edge.domain.publication import Publication
from roomcast_edge.keys import (
    ARCHIVE_KEY,
    HISTORY_REQUESTS_KEY,
    NODE_KEY,
    REVOCATIONS_KEY,
    VERIFIER_KEY,
)
from roomcast_edge.node import Node

log = logging.getLogger(__name__)

# Records examined for one page at most (matching or not): a sparse selection over
# a long log answers in bounded time with `complete: false` and a `next` further on.
SCAN_BUDGET = 200_000
ARCHIVE_CHUNK = 500
# A page that needs the bus and cannot get it in this time is a 503, not a stall.
ARCHIVE_TIMEOUT = 30.0
# Seconds a page keeps a reader of the bus before it queues again behind the others.
READER_HOLD = 0.5
# Records of the in-memory history examined in one event-loop turn.
MEMORY_STEP = 256
# Pages one token may have in progress at once on an edge.
HISTORY_PER_TOKEN = 2


def _token(request: web.Request) -> str:
    token = request.query.get("token", "")
    if token:
        return token
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


async def history_handler(request: web.Request) -> web.Response:
    app = request.app
    token = _token(request)
    if not token:
        return error_response(401, lifetime.TOKEN_INVALID, "a token is required")
    try:
        claims = await authenticate(token, app[VERIFIER_KEY], app[REVOCATIONS_KEY])
    except TokenError as exc:
        return error_response(401, lifetime.refusal_code(exc.reason), f"token refused: {exc}")
    try:
        query = parse_query(request.query, claims, int(time.time() * 1000))
    except QueryError as exc:
        return error_response(exc.status, exc.code, str(exc))
    in_flight = app[HISTORY_REQUESTS_KEY]
    if not in_flight.enter(claims.jti):
        message = f"at most {HISTORY_PER_TOKEN} history requests at once per token"
        return error_response(429, "too_many_requests", message, {"Retry-After": "1"})
    node, archive = app[NODE_KEY], app[ARCHIVE_KEY]
    try:
        page = await asyncio.wait_for(read_page(node, archive, query, claims.jti), ARCHIVE_TIMEOUT)
    except Exception as exc:  # the bus's client errors are many; each is a 503
        log.info("history read failed", extra={"error": repr(exc)})
        return error_response(
            503, "history_unavailable", "the stream's log cannot be read now, retry"
        )
    finally:
        in_flight.leave(claims.jti)
    return web.Response(body=page, content_type="application/json")


async def read_page(
    node: Node, archive: StreamArchive | None, query: HistoryQuery, owner: str = ""
) -> bytes:
    history = node.history
    end = history.positions()
    since = query.since
    if since is None:
        assert query.from_ms is not None
        since = await _since_time(node, archive, query.from_ms, list(end))
    after = dict(since)
    found: list[bytes] = []
    scanned = 0
    matches = query.selector.matches

    def wanted(topic: str | None, type_: str | None, room: str | None) -> bool:
        return matches(Publication(0, 0, topic, type_, room, b"", 0.0))

    # Shared ingest: where memory holds every message of the query's channels.
    coverage = node.dispatcher.coverage
    covered = coverage(addresses(query.selector)) if coverage is not None else {}
    loop = asyncio.get_running_loop()
    borrowed = contextlib.AsyncExitStack()
    try:
        reader: ArchiveReader | None = None
        held_until = 0.0
        for partition in sorted(end):
            last = end[partition]
            seen = after.get(partition, -1)
            gap = covered.get(partition, -1)
            while seen < last and len(found) < query.limit and scanned < SCAN_BUDGET:
                if seen >= gap and history.covers({partition: seen}, [partition]):
                    seen, count = _from_memory(node, query, partition, seen, last, found)
                    scanned += count
                    # The live stream goes on between steps; the next one looks again
                    # whether the history still covers where this one stopped.
                    await asyncio.sleep(0)
                    continue
                oldest = oldest_kept(history, partition)
                upto = last if oldest is None else min(last, max(oldest - 1, gap))
                if archive is None:
                    seen = upto  # this bus keeps nothing older than the history
                    continue
                if reader is None:
                    borrowed = contextlib.AsyncExitStack()
                    reader = await borrowed.enter_async_context(archive.reader("history", owner))
                    held_until = loop.time() + READER_HOLD
                elif loop.time() > held_until:
                    # Taken in turns with recoveries and other pages: queue again.
                    reader = None
                    await borrowed.aclose()
                    continue
                try:
                    chunk = await reader.read(partition, seen, upto, ARCHIVE_CHUNK, wanted)
                except ArchiveGone as gone:
                    seen = min(gone.first - 1, upto)  # the bus no longer holds them
                    continue
                if chunk.last == seen:
                    raise OSError("no records came from the stream's log")
                scanned += chunk.last - seen
                seen = chunk.last
                for publication in _matching(query, chunk.publications):
                    found.append(frame_payload(publication.frame))
                    if len(found) >= query.limit:
                        seen = publication.offset
                        break
            after[partition] = max(seen, after.get(partition, -1))
    finally:
        await borrowed.aclose()
    complete = all(after.get(p, -1) >= last for p, last in end.items())
    return b"".join(
        [
            b'{"messages":[',
            b",".join(found),
            b'],"next":',
            orjson.dumps(format_vector(after)),
            b',"complete":',
            b"true" if complete else b"false",
            b"}",
        ]
    )


def _matching(query: HistoryQuery, publications: list[Publication]) -> Iterator[Publication]:
    matches = query.selector.matches
    return (p for p in publications if matches(p))


def _from_memory(
    node: Node, query: HistoryQuery, partition: int, seen: int, last: int, found: list[bytes]
) -> tuple[int, int]:
    """Read on in the partition's history after `seen`, up to `last`, at most
    MEMORY_STEP records: (new seen, records examined).

    Synchronous: nothing can change the index while it is read. The index holds each
    selection's messages in lists of their own, so what is examined mostly matches.
    """
    selector = query.selector
    scanned = 0
    for publication in node.index.read(partition, selector.keys(), seen):
        if publication.offset > last:
            break
        scanned += 1
        if selector.matches(publication):
            found.append(frame_payload(publication.frame))
            if len(found) >= query.limit:
                return publication.offset, scanned
        if scanned >= MEMORY_STEP:
            return publication.offset, scanned
    return last, scanned


async def _since_time(
    node: Node, archive: StreamArchive | None, from_ms: int, partitions: list[int]
) -> dict[int, int]:
    """The vector just before the first record at or after `from_ms` of each partition."""
    if archive is not None:
        offsets = await archive.offsets_at(from_ms, partitions)
        return {p: offset - 1 for p, offset in offsets.items()}
    # Memory only: the first kept publication young enough, else nothing to read.
    since = node.history.positions()
    first: set[int] = set()
    for publication in node.history.after({}):
        if publication.partition not in first and publication.timestamp * 1000 >= from_ms:
            first.add(publication.partition)
            since[publication.partition] = publication.offset - 1
    return since
