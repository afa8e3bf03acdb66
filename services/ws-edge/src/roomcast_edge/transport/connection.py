"""One client WebSocket after the upgrade: the socket, the client frames read from it,
its liveness and the close handshake.

Once the handshake is answered the edge takes the transport over from aiohttp
(`transport.set_protocol`): the connection is this one object, which reads client
frames straight from the socket. No request, response, reader or task is kept per
connection, which is most of what an idle client costs. The session state the
protocol needs (claims, request budget) comes from the domain's `Session`; the
outbound buffer slots are declared here but owned by the fan-out alone.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameError,
    MessageReader,
    close_code,
    close_frame,
    deflate_text_frame,
    frame_payload,
    text_frame,
)
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.replay import Replay
from roomcast_edge.domain.session import Session


class Outbound(Protocol):
    """The fan-out, told when a paused socket can take more (see transport.fanout)."""

    def writable(self, conn: Connection) -> None: ...


class FrameHandler(Protocol):
    """What a connection reports to (the edge node)."""

    loop: asyncio.AbstractEventLoop

    def handle_text(self, conn: Connection, data: str | bytes) -> None: ...

    def pong(self, conn: Connection, payload: bytes) -> None: ...

    def refuse(self, conn: Connection, code: int, reason: str) -> None: ...

    def lost(self, conn: Connection) -> None: ...


class Connection(Session, asyncio.Protocol):
    """Hashable by identity: the hub indexes these objects directly."""

    transport_name = "websocket"  # the `transport` label of its metrics

    __slots__ = (
        "_handler",
        "_peer_closed",
        "_reader",
        "closed",
        "closing",
        "deflate",
        "last_life",
        "outbound",
        "paused",
        "pending",
        "pending_bytes",
        "recode",
        "replay",
        "transport",
    )
    # Outbound state, set and changed only by transport.fanout.Fanout (attach first).
    pending: list[bytes]
    pending_bytes: int
    replay: Replay | None  # what the client missed, sent as its socket drains
    outbound: Outbound | None

    def __init__(
        self,
        handler: FrameHandler,
        transport: asyncio.Transport,
        claims: TokenClaims,
        bucket: TokenBucket,
        now: float,
        max_message: int = 65536,
        deflate: int = 0,
        max_fragments: int = 1024,
        connection_id: str | None = None,
    ) -> None:
        Session.__init__(self, claims, bucket, connection_id)
        self._handler = handler
        self.transport = transport
        self.last_life = now
        # No longer in the hub: nothing more is queued to it.
        self.closed = False
        # Our close frame is out; waiting for the client's (or the close timeout).
        self.closing: asyncio.TimerHandle | None = None
        # Negotiated permessage-deflate window bits; 0 when the client sends plain frames.
        self.deflate = deflate
        # Pushes are not sent as the shared plain frame but as `encode_push` makes them.
        self.recode = bool(deflate)
        # The transport's buffer is over its high-water mark (asyncio flow control).
        self.paused = False
        self._reader = MessageReader(max_message, max_fragments, bool(deflate))
        # The client's close frame arrived: nothing after it is read.
        self._peer_closed = False

    @property
    def gone(self) -> bool:
        """The socket is closed or closing: nothing more can be written to it."""
        return self.transport.is_closing()

    def abort(self) -> None:
        self.transport.abort()

    # ---- what the fan-out and the node write (a stream transport overrides these) --

    def encode_push(
        self, frame: bytes, partition: int, offset: int, shared: dict[int, bytes]
    ) -> bytes:
        """This client's bytes for a push (only asked when `recode`); `shared` keeps
        what one message's recipients can share, here its compressed frame."""
        data = shared.get(self.deflate)
        if data is None:
            data = shared[self.deflate] = deflate_text_frame(frame_payload(frame), self.deflate)
        return data

    def encode_replayed(self, data: bytes) -> bytes:
        """Replayed push frames, joined (sent uncompressed, which RFC 7692 allows)."""
        return data

    def message(self, body: bytes) -> bytes:
        """A JSON message that is not a push of the stream (a presence notice)."""
        return text_frame(body)

    def greeting(self, body: bytes) -> bytes:
        """The `connected` message."""
        return text_frame(body)

    def reply_frame(self, body: bytes) -> bytes | None:
        """A request's reply as queued on the socket (None: it goes elsewhere)."""
        return text_frame(body)

    # ---- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._peer_closed or self.transport.is_closing():
            return
        try:
            for opcode, payload in self._reader.feed(data):
                self._event(opcode, payload)
                if self._peer_closed or self.transport.is_closing():
                    return
        except FrameError as exc:
            self._reader.reset()
            self._handler.refuse(self, exc.code, exc.reason)

    def eof_received(self) -> bool | None:
        # A client that half-closes right after its close frame still gets our answer,
        # which ends the connection; otherwise close our side too.
        return True if self._peer_closed else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing is not None:
            self.closing.cancel()
        self._handler.lost(self)

    def pause_writing(self) -> None:
        # Replays wait for this to end; live pushes are bounded by the fan-out itself.
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.outbound is not None:
            self.outbound.writable(self)

    # ---- frames -------------------------------------------------------------

    def _event(self, opcode: int, payload: bytes | str) -> None:
        """One whole message or control frame from the client."""
        if opcode == OP_PONG:
            return  # answers to pings prove the path, not the client
        handler = self._handler
        self.last_life = handler.loop.time()
        if opcode == OP_PING:
            if self.closing is None:
                handler.pong(self, cast(bytes, payload))
            return
        if opcode == OP_CLOSE:
            self._close_received(cast(bytes, payload))
            return
        if self.closing is None:  # after our close frame, messages are read and dropped
            handler.handle_text(self, payload)

    def _close_received(self, payload: bytes) -> None:
        code = close_code(payload)  # FrameError on a malformed close frame
        if self.closing is not None:
            self.transport.close()  # the answer to our close: the handshake is done
            return
        # The client closes. Our answer goes on the next loop turn: replies to its
        # earlier messages, queued this turn, are flushed first and come before it.
        self._peer_closed = True
        self._handler.loop.call_soon(self._answer_close, code)

    def _answer_close(self, code: int | None) -> None:
        transport = self.transport
        self._handler.lost(self)
        if not transport.is_closing():
            transport.write(close_frame(code) if code is not None else bytes((0x88, 0)))
            transport.close()

    # ---- closing from our side ----------------------------------------------

    def send_close(self, code: int, reason: str, timeout: float, abort_after: float) -> None:
        """Write our close frame, then wait up to `timeout` for the client's answer."""
        if self.closing is not None or self.transport.is_closing():
            return
        self.transport.write(close_frame(code, reason))
        self.closing = self._handler.loop.call_later(timeout, self._close_timeout, abort_after)

    def _close_timeout(self, abort_after: float) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        transport.close()
        if buffered:
            # A client that stopped reading would hold the buffer forever.
            self._handler.loop.call_later(abort_after, transport.abort)
