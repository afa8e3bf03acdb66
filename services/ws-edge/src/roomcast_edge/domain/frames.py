"""Unmasked server-to-client WebSocket frames (RFC 6455), built once per message.

The same bytes go to every recipient's transport: framing costs nothing per
delivery. Only the server side is needed, so frames are never masked and never
fragmented.
"""

from __future__ import annotations

import struct
import zlib

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
