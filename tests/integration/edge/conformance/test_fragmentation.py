"""Section 5: fragmented messages, control frames among fragments, broken sequences;
and the edge's own bounds on a fragmented message (bytes and fragment count)."""

from __future__ import annotations

import pytest

from tests.integration.edge.conformance.cases import Cases, Run, play
from tests.integration.edge.conformance.conftest import MAX_FRAGMENTS, MAX_FRAME_BYTES
from tests.integration.edge.conformance.rawws import (
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    RawClient,
    frame,
    request,
)
from tests.integration.edge.conftest import SharedEdge

cases = Cases()


async def _send(c: RawClient, frames: list[bytes], how: str) -> None:
    if how == "framewise":
        await c.send_framewise(*frames)
    elif how == "chopped":
        await c.send_chopped(b"".join(frames), 1)
    else:
        await c.send(*frames)


def _fragmented_control(opcode: int) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(
            frame(opcode, b"fragment1", fin=False), frame(CONTINUATION, b"fragment2", fin=True)
        )
        await c.closed_with(1002)

    return run


cases.add("5.1", _fragmented_control(PING))
cases.add("5.2", _fragmented_control(PONG))


def _two_fragments(how: str, ping_between: bool) -> Run:
    async def run(c: RawClient) -> None:
        body = request("fragmented")
        frames = [frame(TEXT, body[:10], fin=False), frame(CONTINUATION, body[10:])]
        if ping_between:
            frames.insert(1, frame(PING, b"between"))
        await _send(c, frames, how)
        if ping_between:
            await c.pong(b"between")  # answered while the message is still open
        await c.reply("fragmented")
        await c.in_sync()

    return run


for _i, _how in enumerate(("together", "framewise", "chopped")):
    cases.add(f"5.{3 + _i}", _two_fragments(_how, ping_between=False))
    cases.add(f"5.{6 + _i}", _two_fragments(_how, ping_between=True))


def _continuation_first(fin: bool, how: str) -> Run:
    async def run(c: RawClient) -> None:
        frames = [
            frame(CONTINUATION, b"fragment1", fin=fin),
            frame(TEXT, request("after"), fin=True),
        ]
        await _send(c, frames, how)
        await c.closed_with(1002)

    return run


for _i, _how in enumerate(("together", "framewise", "chopped")):
    cases.add(f"5.{9 + _i}", _continuation_first(True, _how))
    cases.add(f"5.{12 + _i}", _continuation_first(False, _how))


@cases.case("5.15")
async def _message_then_stray_continuation(c: RawClient) -> None:
    body = request("first")
    await c.send(
        frame(TEXT, body[:8], fin=False),
        frame(CONTINUATION, body[8:]),
        frame(CONTINUATION, b"fragment3", fin=False),
        frame(TEXT, b"fragment4"),
    )
    await c.reply("first")
    await c.closed_with(1002)


def _stray_continuations(first_fin: bool) -> Run:
    async def run(c: RawClient) -> None:
        round_ = [
            frame(CONTINUATION, b"fragment1", fin=first_fin),
            frame(TEXT, b"fragment2", fin=False),
            frame(CONTINUATION, b"fragment3"),
        ]
        await c.send(*round_, *round_)
        await c.closed_with(1002)

    return run


cases.add("5.16", _stray_continuations(False))
cases.add("5.17", _stray_continuations(True))


@cases.case("5.18")
async def _new_message_inside_unfinished_one(c: RawClient) -> None:
    body = request("never")
    await c.send(frame(TEXT, body[:8], fin=False), frame(TEXT, body[8:]))
    await c.closed_with(1002)


def _five_fragments_with_pings(chop: bool) -> Run:
    """Each ping is answered before the next fragment is sent: control frames are
    handled in the middle of a message, not held until it ends."""

    async def run(c: RawClient) -> None:
        body = request("five")
        step = len(body) // 5 + 1
        parts = [body[i : i + step] for i in range(0, len(body), step)]
        assert len(parts) == 5
        for i, part in enumerate(parts):
            data = frame(TEXT if i == 0 else CONTINUATION, part, fin=i == len(parts) - 1)
            if i < len(parts) - 1:
                data += frame(PING, f"pongme {i}".encode())
            if chop:
                await c.send_chopped(data, 1)
            else:
                await c.send(data)
            if i < len(parts) - 1:
                await c.pong(f"pongme {i}".encode())
        await c.reply("five")
        await c.in_sync()

    return run


cases.add("5.19", _five_fragments_with_pings(chop=False))
cases.add("5.20", _five_fragments_with_pings(chop=True))

# ---- the edge's bounds: MAX_FRAGMENTS frames and MAX_FRAME_BYTES bytes per message ----


def _many_fragments(count: int) -> list[bytes]:
    """A request in exactly `count` frames: empty continuations between its two halves."""
    body = request("many")
    return [
        frame(TEXT, body[:8], fin=False),
        *[frame(CONTINUATION, b"", fin=False)] * (count - 2),
        frame(CONTINUATION, body[8:]),
    ]


@cases.case("5.x1")
async def _at_most_max_fragments(c: RawClient) -> None:
    await c.send(*_many_fragments(MAX_FRAGMENTS))
    await c.reply("many")
    await c.in_sync()


@cases.case("5.x2")
async def _one_fragment_too_many(c: RawClient) -> None:
    await c.send(*_many_fragments(MAX_FRAGMENTS + 1))
    await c.closed_with(1009)


@cases.case("5.x3")
async def _empty_continuations_without_end(c: RawClient) -> None:
    # The limit is enforced as the frames arrive, not when the message ends.
    await c.send(
        frame(TEXT, b"{", fin=False), *[frame(CONTINUATION, b"", fin=False)] * MAX_FRAGMENTS
    )
    await c.closed_with(1009)


@cases.case("5.x4")
async def _fragments_over_max_bytes(c: RawClient) -> None:
    # Each fragment is small; their sum passes the limit before the message ends.
    part = b" " * 8192
    count = MAX_FRAME_BYTES // len(part) + 1
    await c.send(frame(TEXT, b"{", fin=False), *[frame(CONTINUATION, part, fin=False)] * count)
    await c.closed_with(1009)


@cases.case("5.x5")
async def _fragments_up_to_max_bytes(c: RawClient) -> None:
    body = request("full", pad_to=MAX_FRAME_BYTES)
    step = 4096
    parts = [body[i : i + step] for i in range(0, len(body), step)]
    await c.send(
        *[
            frame(TEXT if i == 0 else CONTINUATION, p, fin=i == len(parts) - 1)
            for i, p in enumerate(parts)
        ]
    )
    await c.reply("full")
    await c.in_sync()


@pytest.mark.parametrize("run", cases.params())
async def test_case(conformance_edge: SharedEdge, run: Run) -> None:
    await play(conformance_edge.edge, run)
