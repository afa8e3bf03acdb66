"""HTTP/1.1 over a plain socket: the bytes exactly as given, split and paced as told.

Client libraries send a request the tidy way (one write, valid headers); these helpers
send it the way networks and odd clients do: in pieces with pauses between them,
with ``Transfer-Encoding: chunked``, or with header bytes that are not ASCII.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

WAIT = 30.0  # generous: the test machine is small and shared


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> str:
        """The v1 error code of the answer."""
        error = self.json()["error"]
        return str(error["code"]) if isinstance(error, dict) else str(error)


def head(
    method: str, path: str, headers: Mapping[str, str | bytes] | None = None, **options: str
) -> bytes:
    """The request line and headers, ending with the blank line; `Connection: close`."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in {**(headers or {}), **options}.items():
        raw = value if isinstance(value, bytes) else value.encode()
        lines.append(name.encode() + b": " + raw)
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def post(path: str, body: bytes, headers: Mapping[str, str | bytes] | None = None) -> bytes:
    """A whole POST with Content-Length."""
    fields = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return head("POST", path, {**fields, **(headers or {})}) + body


def chunked_post(
    path: str, body: bytes, size: int, headers: Mapping[str, str | bytes] | None = None
) -> list[bytes]:
    """A POST with `Transfer-Encoding: chunked`: the head, then one part per chunk."""
    fields = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    parts = [head("POST", path, {**fields, **(headers or {})})]
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
    parts.append(b"0\r\n\r\n")
    return parts


def split(data: bytes, *at: int) -> list[bytes]:
    """data cut at the given offsets."""
    bounds = [0, *at, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


async def exchange(
    port: int, parts: Sequence[bytes], gap: float = 0.0, timeout: float = WAIT
) -> RawReply:
    """Send the parts as separate writes, gap seconds apart, and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(timeout):
            for index, part in enumerate(parts):
                if index and gap:
                    await asyncio.sleep(gap)
                try:
                    writer.write(part)
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    break  # the server answered early (a 413) and stopped reading
            return await read_reply(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_reply(reader: asyncio.StreamReader) -> RawReply:
    raw_head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if status == 101:
        body = b""  # the socket now speaks WebSocket; nothing more belongs to HTTP
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        pieces = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(pieces)
    else:
        body = await reader.read()
    return RawReply(status, headers, body)
