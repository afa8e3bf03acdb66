"""One client of `GET /sse` (Server-Sent Events) after the response head is written.

The socket is taken over from aiohttp as a WebSocket's is, so the fan-out writes to it
the same way; what differs is the encoding (an event per push, whose `id:` is the
client's position vector after it), that client bytes are never read as requests
(those come as HTTP POSTs, answered through `reply_frame`), and that the server ends
the stream with an `event: close` instead of a close frame.
"""

from __future__ import annotations

import asyncio
import math
import random

import orjson

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.frames import frame_payload
from roomcast_edge.domain.positions import format_vector
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.transport.connection import Connection, FrameHandler

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"  # always UTF-8, by the format's definition
    b"Cache-Control: no-cache, no-transform\r\n"
    b"X-Accel-Buffering: no\r\n"
    # The stream ends when the connection does: no length, no chunking to undo.
    b"Connection: close\r\n"
    b"\r\n"
)
PING = b": ping\n\n"
# Where the position sits in a push built by domain.publication.push_body: `meta` is
# its last key, and `position` the first string key after it that is not escaped.
_META = b'"meta":{'
_POSITION = b'"position":"'
# Milliseconds after a drain's close (1012) that a browser waits before reconnecting,
# drawn per stream: EventSource reconnects by itself, and all at once otherwise.
DRAIN_RETRY_MS = (1000, 5000)
# A vector's entries for partitions this edge does not read, kept at most (new ones).
MAX_UNKNOWN_ENTRIES = 16
# Bytes a client may send on its stream after the request (it has nothing to send):
# beyond, the stream ends (1002) instead of the edge reading on for nothing.
MAX_IGNORED_BYTES = 64 * 1024


def push_position(payload: bytes) -> tuple[int, int] | None:
    """(partition, offset) of a push's JSON, found from its end: no full parse."""
    meta = payload.rfind(_META)
    if meta < 0:
        return None
    start = payload.find(_POSITION, meta)
    if start < 0:
        return None
    start += len(_POSITION)
    end = payload.find(b'"', start)
    partition, sep, offset = payload[start:end].partition(b":")
    if not sep or not partition.isdigit() or not offset.lstrip(b"-").isdigit():
        return None
    return int(partition), int(offset)


def start_vector(positions: dict[int, int], since: dict[int, int] | None) -> dict[int, int]:
    """The vector a new stream starts from: the stream's end, or the client's `since`."""
    if since is None:
        return dict(positions)
    vector = {p: since.get(p, -1) for p in positions}
    unknown = sorted(p for p in since if p not in positions)[:MAX_UNKNOWN_ENTRIES]
    vector.update((p, since[p]) for p in unknown)
    return vector


def _frames(data: bytes) -> list[bytes]:
    """The payloads of the unmasked, unfragmented server frames joined in `data`."""
    payloads: list[bytes] = []
    at, size = 0, len(data)
    while at < size:
        length = data[at + 1] & 0x7F
        head = 2
        if length == 126:
            length, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
        payloads.append(data[at + head : at + head + length])
        at += head + length
    return payloads


class SseConnection(Connection):
    """A stream's session and outbound side; `vector` is the client's position vector."""

    __slots__ = ("ignored", "lock", "queued", "token", "vector", "waiter")
    transport_name = "sse"

    def __init__(
        self,
        handler: FrameHandler,
        transport: asyncio.Transport,
        claims: TokenClaims,
        token: str,
        bucket: TokenBucket,
        vector: dict[int, int],
        connection_id: str,
    ) -> None:
        # A stream sends nothing the edge reads as life: it never goes stale (a failed
        # write ends it instead), so the heartbeat check passes it over.
        super().__init__(handler, transport, claims, bucket, math.inf, connection_id=connection_id)
        self.recode = True
        # The connection's current token: what a POSTed request must carry.
        self.token = token
        self.vector = vector
        # The HTTP request waiting for the reply to the request it passed in, the
        # lock that lets one request in at a time, and how many wait for it.
        self.waiter: asyncio.Future[bytes] | None = None
        self.lock = asyncio.Lock()
        self.queued = 0
        self.ignored = 0

    # ---- encoding -----------------------------------------------------------

    def _push_event(self, payload: bytes, partition: int, offset: int) -> bytes:
        # The entry is replaced, as a WebSocket client does: pushes come in offset order
        # per partition, and a partition read again from its start (reset) goes back.
        vector = self.vector
        vector[partition] = offset
        return b"id: %s\ndata: %s\n\n" % (format_vector(vector).encode(), payload)

    def encode_push(
        self, frame: bytes, partition: int, offset: int, shared: dict[int, bytes]
    ) -> bytes:
        payload = shared.get(0)
        if payload is None:
            payload = shared[0] = frame_payload(frame)
        return self._push_event(payload, partition, offset)

    def encode_replayed(self, data: bytes) -> bytes:
        events: list[bytes] = []
        for payload in _frames(data):
            position = push_position(payload)
            if position is None:  # not a push of the stream: no id to give it
                events.append(b"data: %s\n\n" % payload)
            else:
                events.append(self._push_event(payload, *position))
        return b"".join(events)

    def message(self, body: bytes) -> bytes:
        return b"data: %s\n\n" % body

    def greeting(self, body: bytes) -> bytes:
        # With an id, a browser reconnecting before any push still resumes from here.
        vector = format_vector(self.vector).encode()
        return b"event: connected\nid: %s\ndata: %s\n\n" % (vector, body)

    def reply_frame(self, body: bytes) -> bytes | None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(body)
        self.waiter = None
        return None  # never on the stream: the reply is the POST's answer

    # ---- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # Requests come as POSTs: what a client sends here is dropped, up to a bound.
        self.ignored += len(data)
        if self.ignored > MAX_IGNORED_BYTES and self.closing is None:
            self._handler.refuse(self, 1002, "a stream takes no data from the client")

    def eof_received(self) -> bool | None:
        return None  # the client is gone: close our side too

    # ---- closing from our side ----------------------------------------------

    def send_close(self, code: int, reason: str, timeout: float, abort_after: float) -> None:
        """`event: close` with the code, then end the stream (no answer to wait for)."""
        transport = self.transport
        if self.closing is not None or transport.is_closing():
            return
        head = b""
        if code == 1012:
            head = b"retry: %d\n" % random.randint(*DRAIN_RETRY_MS)
        body = orjson.dumps({"code": code, "reason": reason})
        transport.write(b"%sevent: close\ndata: %s\n\n" % (head, body))
        self._fail_waiter()
        transport.close()  # flushes what is buffered first
        if transport.get_write_buffer_size():
            # A client that stopped reading would hold the buffer forever.
            self.closing = self._handler.loop.call_later(timeout + abort_after, transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_waiter()
        super().connection_lost(exc)

    def _fail_waiter(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()
