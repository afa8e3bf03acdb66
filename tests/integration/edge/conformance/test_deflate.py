"""Sections 12-13: permessage-deflate (RFC 7692), with the edge's compression on.

12: compressed requests of many sizes and kinds, whole and fragmented, with the
client keeping its compression context across messages; and broken compressed
input. 13: the extension parameters a client may offer, each checked in the answer,
in requests the edge inflates and in pushes it compresses (a push must inflate with
exactly the window the edge announced).
"""

from __future__ import annotations

import base64
import os
import uuid
import zlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import Infra
from tests.integration.edge.conformance.cases import Cases, Run, play
from tests.integration.edge.conformance.conftest import MAX_FRAME_BYTES
from tests.integration.edge.conformance.rawws import (
    CONTINUATION,
    PING,
    RSV1,
    TEXT,
    RawClient,
    deflate,
    frame,
    request,
    wrapped,
)
from tests.integration.edge.conftest import Publisher, SharedEdge, bus_publisher, message

OFFER = "permessage-deflate; client_max_window_bits"
cases = Cases()

_EMPTY_REQUEST = len(request(""))


def _body(kind: str, size: int, n: int) -> tuple[str, bytes]:
    """A request of `size` bytes whose request_id is compressible or not."""
    room = size - _EMPTY_REQUEST
    if kind == "repetitive":
        request_id = (f"{n}:" + "roomcast " * (room // 9 + 1))[:room]
    else:
        request_id = base64.b64encode(os.urandom(room))[:room].decode()
    body = request(request_id)
    assert len(body) == size
    return request_id, body


def _compressed_messages(kind: str, size: int, fragment: int = 0, count: int = 10) -> Run:
    async def run(c: RawClient) -> None:
        assert c.extensions.startswith("permessage-deflate"), c.extensions
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        for n in range(count):
            request_id, body = _body(kind, size, n)
            data = deflate(body, compressor)  # context kept from the messages before
            if fragment:
                parts = [data[i : i + fragment] for i in range(0, len(data), fragment)]
                last = len(parts) - 1
                await c.send(
                    *[
                        frame(
                            TEXT if i == 0 else CONTINUATION,
                            p,
                            fin=i == last,
                            rsv=RSV1 if i == 0 else 0,
                        )
                        for i, p in enumerate(parts)
                    ]
                )
            else:
                await c.send(frame(TEXT, data, rsv=RSV1))
            await c.reply(request_id)
        await c.in_sync()

    return run


_SIZES = [64, 256, 1024, 4096, 16384, MAX_FRAME_BYTES]
for _section, _kind in ((1, "repetitive"), (2, "random")):
    for _i, _size in enumerate(_SIZES, 1):
        cases.add(f"12.{_section}.{_i}", _compressed_messages(_kind, _size))
for _i, _size in enumerate(_SIZES, 1):
    cases.add(f"12.3.{_i}", _compressed_messages("random", _size, fragment=256, count=3))


def _refused(frames: list[bytes], code: int) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(*frames)
        await c.closed_with(code)

    return run


_PART = deflate(request("part"))
cases.add(  # only a message's first frame says it is compressed
    "12.x1",
    _refused(
        [frame(TEXT, _PART[:4], fin=False, rsv=RSV1), frame(CONTINUATION, _PART[4:], rsv=RSV1)],
        1002,
    ),
)
cases.add("12.x2", _refused([frame(PING, b"x", rsv=RSV1)], 1002))  # control frames never are
cases.add("12.x3", _refused([frame(TEXT, b"\xff\xff\xff\xff not deflate", rsv=RSV1)], 1007))
cases.add(  # a small frame that inflates past MAX_FRAME_BYTES
    "12.x4", _refused([frame(TEXT, deflate(b" " * (MAX_FRAME_BYTES * 16)), rsv=RSV1)], 1009)
)
cases.add("12.x5", _refused([frame(TEXT, deflate(wrapped(b"\xed\xa0\x80")), rsv=RSV1)], 1007))


@cases.case("12.x6")
async def _plain_message_on_a_deflate_connection(c: RawClient) -> None:
    await c.send(frame(TEXT, request("plain")))  # RFC 7692: compressing is per message
    await c.reply("plain")
    await c.send(frame(TEXT, deflate(request("packed")), rsv=RSV1))
    await c.reply("packed")


@cases.case("12.x7")
async def _empty_compressed_message(c: RawClient) -> None:
    await c.send(frame(TEXT, deflate(b""), rsv=RSV1))
    assert (await c.reply())["status"] == "fail"  # empty is not JSON
    await c.in_sync()


@pytest.mark.parametrize("run", cases.params())
async def test_case(conformance_edge: SharedEdge, run: Run) -> None:
    await play(conformance_edge.edge, run, OFFER)


# ---- 13: the parameters a client offers --------------------------------------------


@pytest_asyncio.fixture
async def conformance_publisher(
    infra: Infra, conformance_edge: SharedEdge
) -> AsyncIterator[Publisher]:
    async with bus_publisher(infra, conformance_edge.topic) as publisher:
        yield publisher


# (case id, offer, parameters the answer must carry, client window, client resets context)
_OFFERS = [
    ("13.1", "permessage-deflate", [], 15, False),
    ("13.2", "permessage-deflate; client_no_context_takeover", [], 15, True),
    ("13.3", "permessage-deflate; client_max_window_bits=9", [], 9, False),
    (
        "13.4",
        "permessage-deflate; server_max_window_bits=9",
        ["server_max_window_bits=9"],
        15,
        False,
    ),
    ("13.5", "permessage-deflate; server_max_window_bits=15", [], 15, False),
    (
        "13.6",
        "permessage-deflate; server_no_context_takeover",
        ["server_no_context_takeover"],
        15,
        False,
    ),
    (
        "13.7",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; "
        "client_no_context_takeover; client_max_window_bits=10",
        ["server_no_context_takeover", "server_max_window_bits=12"],
        10,
        True,
    ),
    # a first offer the edge cannot take (zlib has no 8-bit window), then one it can
    (
        "13.x1",
        "permessage-deflate; server_max_window_bits=8, permessage-deflate",
        [],
        15,
        False,
    ),
]


@pytest.mark.parametrize(
    ("offer", "answered", "client_window", "reset"),
    [pytest.param(*row[1:], id=row[0]) for row in _OFFERS],
)
async def test_offer(
    conformance_edge: SharedEdge,
    conformance_publisher: Publisher,
    offer: str,
    answered: list[str],
    client_window: int,
    reset: bool,
) -> None:
    topic = f"deflate-{uuid.uuid4().hex[:8]}"
    c = await RawClient.open(conformance_edge.edge, offer, topics=topic)
    try:
        params = [p.strip() for p in c.extensions.split(";")]
        assert params[0] == "permessage-deflate", c.extensions
        assert sorted(params[1:]) == sorted(answered), c.extensions
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -client_window)
        for n in range(5):
            if reset:
                compressor = zlib.compressobj(
                    zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -client_window
                )
            request_id = f"{n}:" + "offer " * 100
            await c.send(frame(TEXT, deflate(request(request_id), compressor), rsv=RSV1))
            await c.reply(request_id)
        # Repeats 700 bytes apart: a push compressed with a wider window than the one
        # announced would reach back beyond it and fail to inflate.
        block = os.urandom(350).hex()
        payloads = [{"text": block * 3, "n": n} for n in range(3)]
        for payload in payloads:
            await conformance_publisher.send(message(payload, topic=topic))
        for payload in payloads:
            got = await c.next_frame()
            assert got.compressed, got
            assert got.json()["payload"] == payload
    finally:
        c.abort()


async def test_no_extension_when_none_is_offered(conformance_edge: SharedEdge) -> None:
    c = await RawClient.open(conformance_edge.edge, "x-webkit-deflate-frame")
    try:
        assert c.extensions == ""
        await c.send(frame(TEXT, deflate(request("nope")), rsv=RSV1))
        await c.closed_with(1002)
    finally:
        c.abort()
