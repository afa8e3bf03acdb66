"""The socket after the upgrade belongs to the edge's own protocol: checked on raw TCP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.integration.edge.conftest import WAIT, SharedEdge, token


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


def _upgrade(port: int, query: str, key: str | None = None) -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)

    async def frame(self) -> tuple[int, bytes]:
        first, size = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        assert not size & 0x80, "server frames are never masked"
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        return first & 0x0F, await self.reader.readexactly(size)


@pytest_asyncio.fixture
async def raw(shared_edge: SharedEdge) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", shared_edge.edge.port)
    yield Raw(reader, writer)
    writer.close()


async def test_frames_sent_with_the_upgrade_request_are_not_lost(
    shared_edge: SharedEdge, raw: Raw
) -> None:
    ping = _masked(0x1, json.dumps({"request_id": "early", "action": "ping"}).encode())
    raw.writer.write(_upgrade(shared_edge.edge.port, f"token={token()}") + ping)
    assert (await raw.head()).startswith(b"HTTP/1.1 101 ")
    opcode, hello = await raw.frame()
    assert opcode == 0x1
    assert json.loads(hello)["action"] == "connected"
    opcode, reply = await raw.frame()
    assert json.loads(reply)["request_id"] == "early"
    assert json.loads(reply)["status"] == "ok"


async def test_close_from_the_client_is_echoed_and_the_socket_ends(
    shared_edge: SharedEdge, raw: Raw
) -> None:
    raw.writer.write(_upgrade(shared_edge.edge.port, f"token={token()}"))
    await raw.head()
    await raw.frame()  # connected
    raw.writer.write(_masked(0x8, struct.pack("!H", 1000) + b"bye"))
    opcode, payload = await raw.frame()
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1000
    assert await asyncio.wait_for(raw.reader.read(), WAIT) == b""  # the edge closed TCP


async def test_an_unmasked_frame_is_a_protocol_error(shared_edge: SharedEdge, raw: Raw) -> None:
    raw.writer.write(_upgrade(shared_edge.edge.port, f"token={token()}"))
    await raw.head()
    await raw.frame()  # connected
    raw.writer.write(bytes((0x81, 2)) + b"{}")
    opcode, payload = await raw.frame()
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1002


async def test_a_malformed_upgrade_is_refused_with_400_json(
    shared_edge: SharedEdge, raw: Raw
) -> None:
    raw.writer.write(_upgrade(shared_edge.edge.port, f"token={token()}", key="short"))
    head = await raw.head()
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"websocket_required" in await asyncio.wait_for(raw.reader.read(4096), WAIT)
