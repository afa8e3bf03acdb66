"""Section 7: the closing handshake, close payloads and status codes, data after close."""

from __future__ import annotations

import pytest

from tests.integration.edge.conformance.cases import Cases, Run, play
from tests.integration.edge.conformance.rawws import (
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    RawClient,
    close_payload,
    frame,
    request,
)
from tests.integration.edge.conftest import SharedEdge

cases = Cases()

# ---- 7.1: what follows a close is ignored -----------------------------------------


@cases.case("7.1.1")
async def _message_then_close(c: RawClient) -> None:
    await c.send(frame(TEXT, request("before")), frame(CLOSE, close_payload(1000)))
    await c.reply("before")
    await c.closed_with(1000, answer=False)


def _close_then(*after: bytes) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(CLOSE, close_payload(1000)), *after)
        await c.closed_with(1000, answer=False)  # one close frame back, nothing else

    return run


cases.add("7.1.2", _close_then(frame(CLOSE, close_payload(1000))))
cases.add("7.1.3", _close_then(frame(PING, b"after close")))
cases.add("7.1.4", _close_then(frame(TEXT, request("after"))))


@cases.case("7.1.5")
async def _close_inside_a_fragmented_message(c: RawClient) -> None:
    body = request("split")
    await c.send(
        frame(TEXT, body[:8], fin=False),
        frame(CLOSE, close_payload(1000)),
        frame(CONTINUATION, body[8:]),
    )
    await c.closed_with(1000, answer=False)


@cases.case("7.1.6")
async def _big_message_ping_close(c: RawClient) -> None:
    body = request("big", pad_to=65000)
    await c.send(frame(TEXT, body), frame(PING, b"after big"), frame(CLOSE, close_payload(1000)))
    await c.reply("big")
    await c.pong(b"after big")
    await c.closed_with(1000, answer=False)


@cases.case("7.1.x1")
async def _close_then_half_close(c: RawClient) -> None:
    await c.send(frame(TEXT, request("before")), frame(CLOSE, close_payload(1000)))
    c.writer.write_eof()  # the client is done sending: the answer must still come
    await c.reply("before")
    await c.closed_with(1000, answer=False)


# ---- 7.3: close payloads ----------------------------------------------------------


@cases.case("7.3.1")
async def _close_without_payload(c: RawClient) -> None:
    await c.send(frame(CLOSE, b""))
    got = await c.closed_with(None)
    assert got.payload == b""


@cases.case("7.3.2")
async def _close_with_one_byte(c: RawClient) -> None:
    await c.send(frame(CLOSE, b"\x03"))
    await c.closed_with(1002)


def _close_echoed(code: int, reason: bytes = b"") -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(CLOSE, close_payload(code, reason)))
        await c.closed_with(code, answer=False)

    return run


cases.add("7.3.3", _close_echoed(1000))
cases.add("7.3.4", _close_echoed(1000, b"Hello World!"))
cases.add("7.3.5", _close_echoed(1000, b"*" * 123))


@cases.case("7.3.6")
async def _close_reason_too_long(c: RawClient) -> None:
    await c.send(frame(CLOSE, close_payload(1000, b"*" * 124)))  # 126 bytes: too big
    await c.closed_with(1002)


@cases.case("7.5.1")
async def _close_reason_not_utf8(c: RawClient) -> None:
    reason = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
    await c.send(frame(CLOSE, close_payload(1000, reason)))
    await c.closed_with(1007)


# ---- 7.7 / 7.9 / 7.13: status codes ------------------------------------------------

_VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
for _i, _code in enumerate(_VALID, 1):
    cases.add(f"7.7.{_i}", _close_echoed(_code))
# registered with IANA after RFC 6455 (service restart, try again later, bad gateway)
for _i, _code in enumerate((1012, 1013, 1014), 1):
    cases.add(f"7.7.x{_i}", _close_echoed(_code))


def _close_refused(code: int) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(CLOSE, close_payload(code)))
        await c.closed_with(1002)

    return run


_INVALID = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
for _i, _code in enumerate(_INVALID, 1):
    cases.add(f"7.9.{_i}", _close_refused(_code))
cases.add("7.9.x1", _close_refused(1015))  # TLS failure: reported locally, never sent
cases.add("7.13.1", _close_refused(5000))
cases.add("7.13.2", _close_refused(65535))


@pytest.mark.parametrize("run", cases.params())
async def test_case(conformance_edge: SharedEdge, run: Run) -> None:
    await play(conformance_edge.edge, run)
