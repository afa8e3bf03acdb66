"""Section 6: UTF-8 in text messages, whole and split across fragments at every byte.

Every sequence is sent as the request_id of a `ping` request, so a valid one comes
back in the reply exactly as sent (proof that it was decoded, not only accepted),
and an invalid one must close the connection with 1007. The sequences follow the
categories of Markus Kuhn's UTF-8 decoder stress test, as the Autobahn cases do.
"""

from __future__ import annotations

import pytest

from tests.integration.edge.conformance.cases import Cases, Run, play
from tests.integration.edge.conformance.rawws import (
    CONTINUATION,
    TEXT,
    RawClient,
    frame,
    wrapped,
)
from tests.integration.edge.conftest import SharedEdge

cases = Cases()

KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # "κόσμε"
_PREFIX = b'{"action":"ping","request_id":"'
_SUFFIX = b'"}'


def _pieces(inner: bytes, split: bool) -> list[bytes]:
    """The message as fragments: one frame, or one frame per byte of the sequence."""
    if not split:
        return [wrapped(inner)]
    return [_PREFIX, *(inner[i : i + 1] for i in range(len(inner))), _SUFFIX]


def _frames(pieces: list[bytes]) -> list[bytes]:
    last = len(pieces) - 1
    return [frame(TEXT if i == 0 else CONTINUATION, p, fin=i == last) for i, p in enumerate(pieces)]


def _echoes(text: str) -> bool:
    """Whether the text survives as a JSON string as it is (no escaping needed)."""
    return not any(ch in '"\\' or ord(ch) < 0x20 for ch in text)


def _sequence(inner: bytes, split: bool) -> Run:
    try:
        text: str | None = inner.decode()
    except UnicodeDecodeError:
        text = None

    async def run(c: RawClient) -> None:
        await c.send(*_frames(_pieces(inner, split)))
        if text is None:
            await c.closed_with(1007)
            return
        if _echoes(text):
            await c.reply(text)
        else:
            await c.reply()  # valid UTF-8, but not a JSON string as it stands
        await c.in_sync()

    return run


def _add(case_id: str, inner: bytes) -> None:
    cases.add(case_id, _sequence(inner, split=False))
    cases.add(f"{case_id}-split", _sequence(inner, split=True))


# ---- 6.1: empty messages and empty fragments -------------------------------------


@cases.case("6.1.1")
async def _empty_text(c: RawClient) -> None:
    await c.send(frame(TEXT, b""))
    assert (await c.reply())["status"] == "fail"  # empty is valid UTF-8, not JSON
    await c.in_sync()


@cases.case("6.1.2")
async def _empty_fragments(c: RawClient) -> None:
    await c.send(*_frames([b"", b"", b""]))
    assert (await c.reply())["status"] == "fail"
    await c.in_sync()


@cases.case("6.1.3")
async def _empty_first_and_last_fragments(c: RawClient) -> None:
    await c.send(*_frames([b"", wrapped(b"middle"), b""]))
    await c.reply("middle")
    await c.in_sync()


# ---- 6.2-6.3: a valid and an invalid text, whole and fragmented ----------------------

_HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode()
_add("6.2.1", _HELLO)


@cases.case("6.2.2")
async def _split_at_a_code_point(c: RawClient) -> None:
    body = wrapped(_HELLO)
    cut = body.index("µ".encode())  # between two whole characters
    await c.send(*_frames([body[:cut], body[cut:]]))
    await c.reply(_HELLO.decode())


_add("6.2.3", KOSME)
_add("6.3.1", KOSME + b"\xed\xa0\x80edited")

# ---- 6.4: invalid UTF-8 fails fast, before the message ends -----------------------


def _fail_fast(first: bytes, second: bytes) -> Run:
    """The edge closes once the bad fragment arrives, without waiting for the last one."""

    async def run(c: RawClient) -> None:
        await c.send(frame(TEXT, _PREFIX + first, fin=False))
        await c.send(frame(CONTINUATION, second, fin=False))
        await c.closed_with(1007)

    return run


cases.add("6.4.1", _fail_fast(KOSME, b"\xf4\x90\x80\x80"))
cases.add("6.4.2", _fail_fast(KOSME + b"\xf4", b"\x90\x80\x80"))


def _bad_in_one_frame_chopped(bad: bytes) -> Run:
    async def run(c: RawClient) -> None:
        await c.send(frame(TEXT, _PREFIX + KOSME, fin=False))
        await c.send_chopped(frame(CONTINUATION, bad + b"edited", fin=False), 3)
        await c.closed_with(1007)

    return run


cases.add("6.4.3", _bad_in_one_frame_chopped(b"\xf4\x90\x80\x80"))
cases.add("6.4.4", _bad_in_one_frame_chopped(b"\xf4\x90"))

# ---- 6.5-6.23: the stress-test sequences -----------------------------------------

_add("6.5.1", KOSME)
for _n in range(1, len(KOSME) + 1):
    _add(f"6.6.{_n}", KOSME[:_n])  # whole characters are valid, a cut one is not

_FIRST = [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"]
_LAST = [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"]
_TABLES: dict[str, list[bytes]] = {
    "6.7": _FIRST,  # first sequence of each length
    "6.8": [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"],  # 5 and 6 bytes
    "6.9": _LAST,  # last sequence of each length
    "6.10": [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf\xbf"],
    "6.11": [
        b"\xed\x9f\xbf",
        b"\xee\x80\x80",
        b"\xef\xbf\xbd",
        b"\xf4\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80",
    ],
    "6.12": [  # continuation bytes with no start
        b"\x80",
        b"\xbf",
        b"\x80\xbf",
        b"\x80\xbf\x80",
        b"\x80\xbf\x80\xbf",
        b"\x80\xbf\x80\xbf\x80",
        b"\x80\xbf\x80\xbf\x80\xbf",
        bytes(range(0x80, 0xC0)),
    ],
    "6.13": [  # start bytes each followed by a space
        b"".join(bytes((b, 0x20)) for b in range(low, high))
        for low, high in ((0xC0, 0xE0), (0xE0, 0xF0), (0xF0, 0xF8), (0xF8, 0xFC), (0xFC, 0xFE))
    ],
    "6.14": [  # the last continuation byte missing
        b"\xc0",
        b"\xe0\x80",
        b"\xf0\x80\x80",
        b"\xf8\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80",
        b"\xdf",
        b"\xef\xbf",
        b"\xf7\xbf\xbf",
        b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
    ],
    "6.15": [
        b"\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80"
        b"\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf"
    ],
    "6.16": [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"],  # bytes UTF-8 never uses
    "6.17": [  # "/" in overlong forms
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xf0\x80\x80\xaf",
        b"\xf8\x80\x80\x80\xaf",
        b"\xfc\x80\x80\x80\x80\xaf",
    ],
    "6.18": [  # the largest overlong form of each length
        b"\xc1\xbf",
        b"\xe0\x9f\xbf",
        b"\xf0\x8f\xbf\xbf",
        b"\xf8\x87\xbf\xbf\xbf",
        b"\xfc\x83\xbf\xbf\xbf\xbf",
    ],
    "6.19": [  # NUL in overlong forms
        b"\xc0\x80",
        b"\xe0\x80\x80",
        b"\xf0\x80\x80\x80",
        b"\xf8\x80\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80\x80",
    ],
    "6.20": [  # single UTF-16 surrogates
        b"\xed\xa0\x80",
        b"\xed\xad\xbf",
        b"\xed\xae\x80",
        b"\xed\xaf\xbf",
        b"\xed\xb0\x80",
        b"\xed\xbe\x80",
        b"\xed\xbf\xbf",
    ],
    "6.21": [  # surrogate pairs encoded as two 3-byte sequences (CESU-8)
        high + low
        for high in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf")
        for low in (b"\xed\xb0\x80", b"\xed\xbf\xbf")
    ],
    # noncharacters are valid UTF-8: U+FFFE/U+FFFF of every plane, U+FDD0..U+FDEF
    "6.22": [
        *(chr(plane << 16 | low).encode() for plane in range(17) for low in (0xFFFE, 0xFFFF)),
        *(chr(code).encode() for code in range(0xFDD0, 0xFDF0, 8)),
    ],
    "6.23": [b"\xef\xbf\xbd", b"\xef\xbb\xbf", "€𝄞中".encode(), KOSME * 20],
}
for _group, _sequences in _TABLES.items():
    for _n, _inner in enumerate(_sequences, 1):
        _add(f"{_group}.{_n}", _inner)


@pytest.mark.parametrize("run", cases.params())
async def test_case(conformance_edge: SharedEdge, run: Run) -> None:
    await play(conformance_edge.edge, run)
