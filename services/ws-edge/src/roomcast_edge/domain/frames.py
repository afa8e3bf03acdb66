"""Unmasked server-to-client WebSocket frames (RFC 6455), built once per message.

The same bytes go to every recipient's transport: framing costs nothing per
delivery. Only the server side is needed, so frames are never masked and never
fragmented.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_PONG = 0xA
_FIN = 0x80
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def _frame(opcode: int, payload: bytes) -> bytes:
    first = _FIN | opcode
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
