"""Unmasked server-to-client WebSocket frames (RFC 6455), built once per message.

The same bytes go to every recipient's transport: framing costs nothing per
delivery. Only the server side is needed, so frames are never masked and never
fragmented.
"""

from __future__ import annotations

import codecs
import struct
import zlib
from collections.abc import Iterator
from typing import cast

OP_TEXT = 0x1
OP_PONG = 0xA
_FIN = 0x80
_RSV1 = 0x40  # permessage-deflate: this message is compressed
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def _frame(opcode: int, payload: bytes, rsv: int = 0) -> bytes:
    first = _FIN | rsv | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _LEN16.pack(first, 126, size) + payload
    return _LEN64.pack(first, 127, size) + payload


def text_frame(payload: bytes) -> bytes:
    """A final text frame carrying UTF-8 `payload` (orjson output is UTF-8)."""
    return _frame(OP_TEXT, payload)


def pong_frame(payload: bytes) -> bytes:
    """The answer to a client ping; control payloads are at most 125 bytes."""
    return _frame(OP_PONG, payload[:125])


def frame_payload(frame: bytes) -> bytes:
    """The payload of an unmasked frame built here."""
    size = frame[1] & 0x7F
    return frame[2 + {126: 2, 127: 8}.get(size, 0) :]


def deflate_text_frame(payload: bytes, window_bits: int) -> bytes:
    """A compressed text frame (RFC 7692) that needs no earlier context to inflate.

    A fresh compressor per message means no context takeover: the one frame can be
    sent to every client that negotiated permessage-deflate with these window bits.
    """
    compressor = zlib.compressobj(zlib.Z_BEST_SPEED, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_DEFLATE_TAIL):
        data = data[:-4]
    return _frame(OP_TEXT, data, _RSV1)


# ---- client frames ----------------------------------------------------------

OP_CONTINUATION = 0x0
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
_MASKED = 0x80
_RSV23 = 0x30
_RSV_ALL = 0x70
_LEN_MASK = 0x7F

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009


class FrameError(Exception):
    """A client frame that breaks RFC 6455 or our limits: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR the payload with the 4-byte client mask, as one big integer (fast in CPython)."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


Event = tuple[int, bytes | str]


class MessageReader:
    """Client bytes in; whole messages and control frames out, each as (opcode, payload).

    A text message comes out as str (UTF-8 checked), a binary one as bytes; control
    frames come out as they arrive, also between the fragments of a message. The work
    per call is linear in the bytes received and bounded per frame: the input is one
    buffer consumed from the front, a fragmented message keeps a running byte total
    and fragment count (checked from each frame's header, before its payload is
    buffered), text is decoded fragment by fragment so invalid UTF-8 fails as soon as
    it arrives, and a compressed message is inflated fragment by fragment with its
    output bounded by `max_message`.
    """

    __slots__ = (
        "_buffer",
        "_compressed",
        "_count",
        "_decoder",
        "_deflate",
        "_inflated",
        "_inflater",
        "_max_fragments",
        "_max_message",
        "_opcode",
        "_parts",
        "_size",
    )

    def __init__(self, max_message: int, max_fragments: int, deflate: bool) -> None:
        self._max_message = max_message
        self._max_fragments = max_fragments
        self._deflate = deflate  # permessage-deflate was negotiated: RSV1 means compressed
        self._buffer = bytearray()
        self._inflater: zlib._Decompress | None = None  # only once a client compresses
        self._opcode = -1  # the fragmented message in progress; -1 when there is none
        self._compressed = False
        self._parts: list[bytes] | list[str] = []
        self._size = 0  # payload bytes of the message so far, as received
        self._inflated = 0  # bytes inflated so far when it is compressed
        self._count = 0  # frames of the message so far
        self._decoder: codecs.IncrementalDecoder | None = None

    def reset(self) -> None:
        """Forget a broken stream: after a FrameError only a close frame still matters."""
        self._buffer.clear()
        self._opcode = -1
        self._parts = []
        self._decoder = None

    def feed(self, data: bytes) -> Iterator[Event]:
        """The messages and control frames `data` completes, in order.

        A FrameError is raised at the first frame that breaks the protocol or a limit,
        after everything before it was yielded.
        """
        buffer = self._buffer
        buffer += data
        pos = 0
        end = len(buffer)
        try:
            while end - pos >= 2:
                first, second = buffer[pos], buffer[pos + 1]
                if not second & _MASKED:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
                size = second & _LEN_MASK
                head = pos + 2
                if size == 126:
                    if end - head < 2:
                        break
                    size = int.from_bytes(buffer[head : head + 2], "big")
                    head += 2
                elif size == 127:
                    if end - head < 8:
                        break
                    size = int.from_bytes(buffer[head : head + 8], "big")
                    head += 8
                self._check_header(first, size)
                stop = head + 4 + size
                if stop > end:
                    break
                payload = unmask(bytes(buffer[head + 4 : stop]), bytes(buffer[head : head + 4]))
                pos = stop
                event = self._frame(first, payload)
                if event is not None:
                    yield event
        finally:
            # bytearray drops a prefix without moving what is left: linear overall.
            del buffer[:pos]

    def _check_header(self, first: int, size: int) -> None:
        """Everything a frame header alone can break, before its payload is buffered."""
        opcode = first & 0x0F
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if first & _RSV_ALL:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set on a control frame")
            if size > 125 or not first & _FIN:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
            return
        if opcode > OP_BINARY:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if first & _RSV23:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if opcode == OP_CONTINUATION:
            if self._opcode < 0:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            if first & _RSV1:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bit set on a continuation")
            if self._count >= self._max_fragments:
                raise FrameError(CLOSE_TOO_BIG, "message in too many fragments")
            size += self._size
        elif self._opcode >= 0:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
        elif first & _RSV1 and not self._deflate:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "compressed frame without the extension")
        if size > self._max_message:
            raise FrameError(CLOSE_TOO_BIG, "message too big")

    def _frame(self, first: int, payload: bytes) -> Event | None:
        opcode = first & 0x0F
        if opcode >= OP_CLOSE:
            return opcode, payload
        fin = first & _FIN
        if opcode != OP_CONTINUATION:
            if fin and not first & _RSV1:  # one plain frame: the usual request
                if opcode == OP_TEXT:
                    try:
                        return opcode, payload.decode()
                    except UnicodeDecodeError:
                        raise FrameError(CLOSE_INVALID_DATA, "text is not UTF-8") from None
                return opcode, payload
            self._opcode = opcode
            self._compressed = bool(first & _RSV1)
            self._parts = []
            self._size = self._inflated = self._count = 0
            self._decoder = _utf8_decoder() if opcode == OP_TEXT else None
        self._size += len(payload)
        self._count += 1
        if payload:
            self._append(self._inflate(payload) if self._compressed else payload)
        if not fin:
            return None
        if self._compressed:
            self._append(self._inflate(_DEFLATE_TAIL))
        opcode = self._opcode
        parts = self._parts
        decoder = self._decoder
        self._opcode = -1
        self._parts = []
        self._decoder = None
        if decoder is None:
            return opcode, b"".join(cast(list[bytes], parts))
        try:
            rest = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "text is not UTF-8") from None
        return opcode, "".join(cast(list[str], parts)) + rest

    def _append(self, data: bytes) -> None:
        if not data:
            return
        decoder = self._decoder
        if decoder is None:
            cast(list[bytes], self._parts).append(data)
            return
        try:
            cast(list[str], self._parts).append(decoder.decode(data))
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "text is not UTF-8") from None

    def _inflate(self, data: bytes) -> bytes:
        inflater = self._inflater
        if inflater is None:
            # Window 15 accepts whatever window the client compresses with.
            inflater = self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        room = self._max_message - self._inflated
        try:
            out = inflater.decompress(data, room + 1)  # never 0, which means unbounded
        except zlib.error:
            raise FrameError(CLOSE_INVALID_DATA, "compressed frame does not inflate") from None
        self._inflated += len(out)
        if len(out) > room or inflater.unconsumed_tail:
            raise FrameError(CLOSE_TOO_BIG, "message too big")
        return out


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("strict")


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with a status code; the reason is cut to fit a control frame."""
    return _frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:123])


def close_code(payload: bytes) -> int | None:
    """The status code of a client's close frame: None when it has none, or FrameError."""
    if not payload:
        return None
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid close frame")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and not (3000 <= code <= 4999):
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
    return code
