"""Sections 1-4: payload lengths, ping/pong, reserved bits, reserved opcodes."""

from __future__ import annotations

import json

import pytest

from tests.integration.edge.conformance.cases import Cases, Run, play
from tests.integration.edge.conformance.rawws import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    RSV1,
    TEXT,
    RawClient,
    close_payload,
    frame,
    request,
)
from tests.integration.edge.conftest import SharedEdge

cases = Cases()

# ---- 1: text and binary messages of every length encoding ---------------------

_EMPTY_REQUEST = len(json.dumps({"action": "ping", "request_id": ""}))
# 7-bit (0, 125), 16-bit (126, 127, 128, 65535) and 64-bit (65536) payload lengths.
_LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]


def _sized(size: int) -> tuple[str, bytes]:
    """A request of exactly `size` bytes whose request_id fills it (its reply is as big)."""
    request_id = "a" * (size - _EMPTY_REQUEST)
    body = request(request_id)
    assert len(body) == size
    return request_id, body


def _message_of(opcode: int, size: int, chop: int = 0) -> Run:
    async def run(c: RawClient) -> None:
        if size == 0:
            await c.send(frame(opcode, b""))
            assert (await c.reply())["status"] == "fail"  # read, and refused as JSON
        else:
            request_id, body = _sized(size)
            if chop:
                await c.send_chopped(frame(opcode, body), chop)
            else:
                await c.send(frame(opcode, body))
            await c.reply(request_id)
        await c.in_sync()

    return run


for _section, _opcode in ((1, TEXT), (2, BINARY)):
    for _i, _size in enumerate(_LENGTHS, 1):
        cases.add(f"1.{_section}.{_i}", _message_of(_opcode, _size))
    cases.add(f"1.{_section}.8", _message_of(_opcode, 65536, chop=997))

# ---- 2: pings and pongs ---------------------------------------------------------


def _ping(payload: bytes, chop: int = 0) -> Run:
    async def run(c: RawClient) -> None:
        if chop:
            await c.send_chopped(frame(PING, payload), chop)
        else:
            await c.send(frame(PING, payload))
        await c.pong(payload)
        await c.in_sync()

    return run


cases.add("2.1", _ping(b""))
cases.add("2.2", _ping(b"Hello, world!"))
cases.add("2.3", _ping(bytes((0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF))))
cases.add("2.4", _ping(b"\xfe" * 125))


@cases.case("2.5")
async def _ping_over_125(c: RawClient) -> None:
    await c.send(frame(PING, b"\xfe" * 126))
    await c.closed_with(1002)


cases.add("2.6", _ping(b"\xfe" * 125, chop=1))


def _unsolicited_pong(payload: bytes) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(PONG, payload))
        await c.in_sync()  # nothing answers a pong

    return run


cases.add("2.7", _unsolicited_pong(b""))
cases.add("2.8", _unsolicited_pong(b"unsolicited pong payload"))


@cases.case("2.9")
async def _pong_then_ping(c: RawClient) -> None:
    await c.send(frame(PONG, b"unsolicited pong payload"), frame(PING, b"ping payload"))
    await c.pong(b"ping payload")
    await c.in_sync()


def _ten_pings(framewise: bool) -> Run:
    async def run(c: RawClient) -> None:
        pings = [frame(PING, f"payload-{i}".encode()) for i in range(10)]
        if framewise:
            await c.send_framewise(*pings)
        else:
            await c.send(*pings)
        for i in range(10):
            await c.pong(f"payload-{i}".encode())
        await c.in_sync()

    return run


cases.add("2.10", _ten_pings(framewise=False))
cases.add("2.11", _ten_pings(framewise=True))

# ---- 3: reserved bits, with no extension negotiated ------------------------------


@cases.case("3.1")
async def _text_rsv3(c: RawClient) -> None:
    await c.send(frame(TEXT, request("3.1"), rsv=1))
    await c.closed_with(1002)


def _good_then_reserved(rsv: int, how: str) -> Run:
    """A valid request, then a request with reserved bits, then a ping: only the first
    is answered and the connection fails at the second."""

    async def run(c: RawClient) -> None:
        frames = [
            frame(TEXT, request("good")),
            frame(TEXT, request("bad"), rsv=rsv),
            frame(PING, b"never answered"),
        ]
        if how == "framewise":
            await c.send_framewise(*frames)
        elif how == "chopped":
            await c.send_chopped(b"".join(frames), 1)
        else:
            await c.send(*frames)
        await c.reply("good")
        await c.closed_with(1002)

    return run


cases.add("3.2", _good_then_reserved(2, "together"))
cases.add("3.3", _good_then_reserved(3, "framewise"))
cases.add("3.4", _good_then_reserved(RSV1, "chopped"))


def _reserved_alone(opcode: int, payload: bytes, rsv: int) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(opcode, payload, rsv=rsv))
        await c.closed_with(1002)

    return run


cases.add("3.5", _reserved_alone(BINARY, request("3.5"), 5))
cases.add("3.6", _reserved_alone(PING, b"ping payload", 6))
cases.add("3.7", _reserved_alone(CLOSE, close_payload(1000), 7))
# RSV1 alone on each control frame: it means "compressed", which no control frame is.
cases.add("3.x1", _reserved_alone(PING, b"ping payload", RSV1))
cases.add("3.x2", _reserved_alone(PONG, b"pong payload", RSV1))
cases.add("3.x3", _reserved_alone(CLOSE, close_payload(1000), RSV1))
cases.add("3.x4", _reserved_alone(PING, b"", 2))
cases.add("3.x5", _reserved_alone(PONG, b"", 1))

# ---- 4: reserved opcodes -----------------------------------------------------------


def _reserved_opcode(opcode: int, payload: bytes, after_good: bool, chop: bool) -> Run:
    async def run(c: RawClient) -> None:
        frames = [frame(opcode, payload)]
        if after_good:
            frames = [frame(TEXT, request("good")), *frames, frame(PING, b"never answered")]
        if chop:
            await c.send_chopped(b"".join(frames), 1)
        else:
            await c.send(*frames)
        if after_good:
            await c.reply("good")
        await c.closed_with(1002)

    return run


for _group, _opcodes in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
    for _i, _op in enumerate(_opcodes, 1):
        cases.add(
            f"4.{_group}.{_i}",
            _reserved_opcode(
                _op,
                b"reserved opcode payload" if _i % 2 == 0 else b"",
                after_good=_i >= 3,
                chop=_i == 5,
            ),
        )


@pytest.mark.parametrize("run", cases.params())
async def test_case(conformance_edge: SharedEdge, run: Run) -> None:
    await play(conformance_edge.edge, run)
