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
import zlib
from typing import Protocol

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.frames import (
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    close_code,
    close_frame,
    read_frames,
)
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.session import Session

_FIN = 0x80
_RSV1 = 0x40
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


class FrameHandler(Protocol):
    """What a connection reports to (the edge node)."""

    loop: asyncio.AbstractEventLoop

    def handle_text(self, conn: Connection, data: str | bytes) -> None: ...

    def pong(self, conn: Connection, payload: bytes) -> None: ...

    def refuse(self, conn: Connection, code: int, reason: str) -> None: ...

    def lost(self, conn: Connection) -> None: ...


class Connection(Session, asyncio.Protocol):
    """Hashable by identity: the hub indexes these objects directly."""

    __slots__ = (
        "_buffer",
        "_fragments",
        "_handler",
        "_inflater",
        "closed",
        "closing",
        "deflate",
        "last_life",
        "max_message",
        "pending",
        "pending_bytes",
        "transport",
    )
    # Outbound state, set and changed only by transport.fanout.Fanout (attach first).
    pending: list[bytes]
    pending_bytes: int

    def __init__(
        self,
        handler: FrameHandler,
        transport: asyncio.Transport,
        claims: TokenClaims,
        bucket: TokenBucket,
        now: float,
        max_message: int = 65536,
        deflate: int = 0,
    ) -> None:
        Session.__init__(self, claims, bucket)
        self._handler = handler
        self.transport = transport
        self.last_life = now
        # No longer in the hub: nothing more is queued to it.
        self.closed = False
        # Our close frame is out; waiting for the client's (or the close timeout).
        self.closing: asyncio.TimerHandle | None = None
        # Negotiated permessage-deflate window bits; 0 when the client sends plain frames.
        self.deflate = deflate
        self.max_message = max_message
        self._buffer = b""  # an incomplete client frame
        self._fragments: list[bytes] | None = None  # [first header byte as bytes, parts...]
        self._inflater: zlib._Decompress | None = None  # only once a client compresses

    @property
    def gone(self) -> bool:
        """The socket is closed or closing: nothing more can be written to it."""
        return self.transport.is_closing()

    def abort(self) -> None:
        self.transport.abort()

    # ---- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._buffer:
            data = self._buffer + data
        try:
            frames, self._buffer = read_frames(data, self.max_message)
            for first, payload in frames:
                self._frame(first, payload)
                if self.transport.is_closing():
                    return
        except FrameError as exc:
            self._buffer = b""
            self._handler.refuse(self, exc.code, exc.reason)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing is not None:
            self.closing.cancel()
        self._handler.lost(self)

    def pause_writing(self) -> None:
        pass  # the fan-out watches the write buffer size itself

    def resume_writing(self) -> None:
        pass

    # ---- frames -------------------------------------------------------------

    def _frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if opcode == OP_PONG:
            return  # answers to pings prove the path, not the client
        handler = self._handler
        self.last_life = handler.loop.time()
        if opcode == OP_PING:
            if self.closing is None:
                handler.pong(self, payload)
            return
        if opcode == OP_CLOSE:
            self._close_received(payload)
            return
        compressed = bool(first & _RSV1)
        if opcode == OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None or compressed:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            fragments.append(payload)
            if sum(len(part) for part in fragments) - 1 > self.max_message:
                raise FrameError(CLOSE_TOO_BIG, "message too big")
            if not first & _FIN:
                return
            self._fragments = None
            first = fragments[0][0]
            payload = b"".join(fragments[1:])
            opcode = first & 0x0F
            compressed = bool(first & _RSV1)
        elif self._fragments is not None:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
        elif compressed and not self.deflate:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "compressed frame without the extension")
        elif not first & _FIN:
            self._fragments = [bytes((first,)), payload]
            return
        if self.closing is not None:
            return  # after our close frame, data frames are read and dropped
        if compressed:
            payload = self._inflate(payload)
        if opcode == OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "text frame is not UTF-8") from None
            handler.handle_text(self, text)
        else:
            handler.handle_text(self, payload)

    def _inflate(self, payload: bytes) -> bytes:
        inflater = self._inflater
        if inflater is None:
            # Window 15 accepts whatever window the client compresses with.
            inflater = self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(payload + _DEFLATE_TAIL, self.max_message + 1)
        except zlib.error:
            raise FrameError(CLOSE_INVALID_DATA, "compressed frame does not inflate") from None
        if len(data) > self.max_message or inflater.unconsumed_tail:
            raise FrameError(CLOSE_TOO_BIG, "message too big")
        return data

    def _close_received(self, payload: bytes) -> None:
        code = close_code(payload)  # FrameError on a malformed close frame
        transport = self.transport
        if self.closing is None:
            # The client closes: answer with its code, then end the TCP connection.
            self._handler.lost(self)
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
