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


# ---- client frames ----------------------------------------------------------

OP_CONTINUATION = 0x0
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
_MASKED = 0x80
_RSV23 = 0x30
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


def read_frames(data: bytes, max_size: int) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete client frames at the start of `data` and the bytes left over.

    Each frame is (first header byte, unmasked payload): FIN, RSV1 and the opcode
    are read from that byte by the caller. A frame declaring more than `max_size`
    payload bytes is refused from its header, before it is buffered.
    """
    frames: list[tuple[int, bytes]] = []
    pos = 0
    end_of_data = len(data)
    while end_of_data - pos >= 2:
        first, second = data[pos], data[pos + 1]
        if first & _RSV23:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & _MASKED:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        size = second & _LEN_MASK
        head = pos + 2
        if size == 126:
            if end_of_data - head < 2:
                break
            size = int.from_bytes(data[head : head + 2], "big")
            head += 2
        elif size == 127:
            if end_of_data - head < 8:
                break
            size = int.from_bytes(data[head : head + 8], "big")
            head += 8
        opcode = first & 0x0F
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if size > 125 or not first & _FIN:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
        elif opcode > OP_BINARY:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if size > max_size:
            raise FrameError(CLOSE_TOO_BIG, "message too big")
        end = head + 4 + size
        if end > end_of_data:
            break
        frames.append((first, unmask(data[head + 4 : end], data[head : head + 4])))
        pos = end
    return frames, data[pos:] if pos else data


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
