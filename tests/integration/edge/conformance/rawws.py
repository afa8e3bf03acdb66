"""A WebSocket client on a raw TCP socket: it sends exactly the bytes a case names.

No library sits between a case and the edge, so frames the `websockets` client would
refuse to build (reserved bits, unknown opcodes, fragmented pings, bad close codes)
reach the edge as written, and every frame the edge answers is read and checked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any

from roomcast_harness.services import ServiceProcess
from tests.integration.edge.conftest import WAIT, token

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8
PING = 0x9
PONG = 0xA
RSV1 = 0x4  # reserved bits as one 3-bit number, the way the Autobahn case list names them
DEFLATE_TAIL = b"\x00\x00\xff\xff"


def mask_bytes(payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One client frame; `rsv` is the 3-bit RSV1|RSV2|RSV3 value (4 = RSV1 alone)."""
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0x0F
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + mask_bytes(payload, mask)


def request(request_id: str, pad_to: int = 0) -> bytes:
    """A `ping` request whose reply echoes `request_id`; padded to exactly `pad_to` bytes."""
    body = json.dumps({"action": "ping", "request_id": request_id}, ensure_ascii=False).encode()
    if pad_to:
        # Spaces after the object are JSON whitespace: the request stays the same.
        assert len(body) <= pad_to, (len(body), pad_to)
        body += b" " * (pad_to - len(body))
    return body


def wrapped(inner: bytes, request_id_prefix: str = "") -> bytes:
    """A `ping` request whose request_id is the given raw bytes (valid UTF-8 or not)."""
    return b'{"action":"ping","request_id":"' + request_id_prefix.encode() + inner + b'"}'


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def deflate(payload: bytes, compressor: Any | None = None, window_bits: int = 15) -> bytes:
    """A permessage-deflate message body (RFC 7692 7.2.1): sync-flushed, tail removed."""
    engine = compressor or zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = engine.compress(payload) + engine.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(DEFLATE_TAIL)
    return data[:-4]


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    compressed: bool = False  # arrived with RSV1 and was inflated

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE, self
        if not self.payload:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    def json(self) -> dict[str, Any]:
        assert self.opcode == TEXT, self
        body = json.loads(self.payload)
        assert isinstance(body, dict)
        return body


class RawClient:
    """One upgraded connection; every frame the edge sends is checked as it is read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions = ""  # the Sec-WebSocket-Extensions the edge answered
        self.hello: dict[str, Any] = {}
        self._inflater: Any | None = None

    @classmethod
    async def open(
        cls, edge: ServiceProcess, extensions: str | None = None, **query: str
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        client = cls(reader, writer)
        query.setdefault("token", token())
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET /ws?{urllib.parse.urlencode(query)} HTTP/1.1",
            f"Host: 127.0.0.1:{edge.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).decode()
        assert head.startswith("HTTP/1.1 101 "), head
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                client.extensions = value.strip()
        client.hello = (await client.next_frame()).json()
        assert client.hello["action"] == "connected", client.hello
        return client

    @property
    def window_bits(self) -> int:
        """The server_max_window_bits the edge compresses with (15 unless it said less)."""
        for param in self.extensions.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "server_max_window_bits":
                return int(value)
        return 15

    # ---- sending ------------------------------------------------------------

    async def send(self, *frames: bytes) -> None:
        """The frames in one write (they may arrive in one TCP segment)."""
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def send_framewise(self, *frames: bytes) -> None:
        """Each frame in its own write, with a loop turn between them."""
        for data in frames:
            self.writer.write(data)
            await self.writer.drain()
            await asyncio.sleep(0.001)

    async def send_chopped(self, data: bytes, chop: int = 1) -> None:
        """The bytes in writes of `chop` bytes each, so the edge reads partial frames."""
        for start in range(0, len(data), chop):
            self.writer.write(data[start : start + chop])
            await self.writer.drain()
            await asyncio.sleep(0.0005)

    async def ping_request(self, request_id: str) -> None:
        await self.send(frame(TEXT, request(request_id)))

    # ---- receiving ----------------------------------------------------------

    async def next_frame(self, timeout: float = WAIT) -> Frame:
        """The next whole frame from the edge; it must be well-formed and unmasked."""
        return await asyncio.wait_for(self._read_frame(), timeout)

    async def _read_frame(self) -> Frame:
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "server frames are never masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            assert size >= 126, "length not in its shortest form"
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert size >= 65536, "length not in its shortest form"
        payload = await self.reader.readexactly(size)
        result = Frame(bool(first & 0x80), (first >> 4) & 0x7, first & 0x0F, payload)
        assert result.fin, "the edge never fragments"
        if result.rsv:
            assert result.rsv == RSV1, result
            assert result.opcode == TEXT, result
            assert "permessage-deflate" in self.extensions, "RSV1 without the extension"
            if self._inflater is None:
                self._inflater = zlib.decompressobj(-self.window_bits)
            inflated = self._inflater.decompress(payload + DEFLATE_TAIL)
            result = Frame(True, 0, TEXT, inflated, compressed=True)
        if result.opcode in (CLOSE, PING, PONG):
            assert len(payload) <= 125, result
        else:
            assert result.opcode == TEXT, result
        return result

    async def reply(self, request_id: str | None = None) -> dict[str, Any]:
        """The next frame is a reply (to `request_id` when given): the edge took a message."""
        got = await self.next_frame()
        assert got.opcode == TEXT, f"expected a reply, got {got}"
        body = got.json()
        assert body.get("action") is not None, body
        assert "status" in body, body
        if request_id is not None:
            assert body["request_id"] == request_id, body
            assert body["status"] == "ok", body
        return body

    async def pong(self, payload: bytes) -> None:
        got = await self.next_frame()
        assert got.opcode == PONG, f"expected a pong, got {got}"
        assert got.payload == payload

    async def in_sync(self, marker: str = "sync") -> None:
        """Nothing unexpected came before: the next frame answers a fresh request."""
        await self.ping_request(marker)
        await self.reply(marker)

    async def closed_with(self, code: int | None, answer: bool = True) -> Frame:
        """The next frame is the edge's close with `code`; then the TCP connection ends.

        `answer` sends our close frame back, as a client finishing the handshake does;
        the edge must end the connection either way.
        """
        got = await self.next_frame()
        assert got.opcode == CLOSE, f"expected close {code}, got {got}"
        assert got.close_code == code, f"expected close {code}, got {got.close_code} {got}"
        if got.payload[2:]:
            got.payload[2:].decode()  # the reason is UTF-8
        if answer and code is not None:
            with contextlib.suppress(ConnectionError):  # the edge may have closed already
                await self.send(frame(CLOSE, close_payload(code)))
        await self.eof()
        return got

    async def eof(self) -> None:
        """The edge ended the TCP connection with nothing more sent."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), WAIT)
        except ConnectionError:
            return
        assert rest == b"", f"bytes after the close: {rest[:64]!r}"

    def abort(self) -> None:
        self.writer.transport.abort()
