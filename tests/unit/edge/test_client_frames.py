"""Client frames read by the edge's own protocol: parsing, limits, and the close handshake."""

from __future__ import annotations

import asyncio
import gc
import os
import struct
import time
import zlib
from collections.abc import Callable
from typing import cast

import pytest

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.frames import (
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    FrameError,
    MessageReader,
    close_code,
    close_frame,
    pong_frame,
    unmask,
)
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.handshake import upgrade
from tests.unit.edge.test_node_fanout import FakeTransport


def masked(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A client frame as a browser sends it: masked with a random key."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + unmask(payload, mask)


class Recorder:
    """Stands in for the node: records what a connection reports."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.texts: list[str | bytes] = []
        self.pongs: list[bytes] = []
        self.refused: list[tuple[int, str]] = []
        self.lost_count = 0

    def handle_text(self, conn: Connection, data: str | bytes) -> None:
        self.texts.append(data)

    def pong(self, conn: Connection, payload: bytes) -> None:
        self.pongs.append(payload)

    def refuse(self, conn: Connection, code: int, reason: str) -> None:
        self.refused.append((code, reason))
        conn.send_close(code, reason, 5.0, 5.0)

    def lost(self, conn: Connection) -> None:
        self.lost_count += 1


def _connection(
    max_message: int = 1000, deflate: int = 0
) -> tuple[Connection, Recorder, FakeTransport]:
    recorder = Recorder()
    transport = FakeTransport()
    claims = TokenClaims("u", "d", "j", 0, 2**31)
    conn = Connection(
        recorder,
        cast(asyncio.Transport, transport),
        claims,
        TokenBucket(10, 20, 0),
        0.0,
        max_message,
        deflate,
    )
    return conn, recorder, transport


def test_unmask_round_trips() -> None:
    for size in (0, 1, 3, 4, 5, 125, 126, 70_000):
        data = os.urandom(size)
        mask = os.urandom(4)
        assert unmask(unmask(data, mask), mask) == data


def test_frames_split_anywhere_are_read_once_complete() -> None:
    stream = (
        masked(0x1, b'{"a":1}')
        + masked(0x1, b"x" * 300)
        + masked(0x9, b"hi")
        + masked(0x1, "é".encode() + b"a", fin=False)
        + masked(0x0, "中".encode()[:1], fin=False)
        + masked(0x0, "中".encode()[1:])
    )
    for cut in range(len(stream)):
        reader = MessageReader(1000, 8, deflate=False)
        events = [*reader.feed(stream[:cut]), *reader.feed(stream[cut:])]
        assert events == [
            (OP_TEXT, '{"a":1}'),
            (OP_TEXT, "x" * 300),
            (OP_PING, b"hi"),
            (OP_TEXT, "éa中"),
        ]


def test_frames_before_a_bad_one_are_read() -> None:
    reader = MessageReader(1000, 8, deflate=False)
    events = reader.feed(masked(0x2, b"ok") + masked(0x9, b"p", rsv1=True))
    assert next(events) == (OP_BINARY, b"ok")
    with pytest.raises(FrameError) as refused:
        next(events)
    assert refused.value.code == 1002


def test_fragments_are_counted_and_summed_as_they_come() -> None:
    reader = MessageReader(1000, 4, deflate=False)
    start = masked(0x1, b"{", fin=False)
    empty = masked(0x0, b"", fin=False)
    assert list(reader.feed(start + empty * 2 + masked(0x0, b"}"))) == [(OP_TEXT, "{}")]
    with pytest.raises(FrameError) as too_many:
        list(reader.feed(start + empty * 4))  # the 5th frame is refused before the end
    assert too_many.value.code == 1009
    reader = MessageReader(1000, 100, deflate=False)
    with pytest.raises(FrameError) as too_big:
        list(reader.feed(start + masked(0x0, b"x" * 600, fin=False) + masked(0x0, b"x" * 400)))
    assert too_big.value.code == 1009


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes((0x81, 0x02)) + b"hi", 1002),  # not masked
        (bytes((0xB1,)) + masked(0x1, b"x")[1:], 1002),  # RSV2/RSV3 set
        (masked(0x9, b"x", rsv1=True), 1002),  # RSV1 on a control frame
        (masked(0x3, b"x"), 1002),  # reserved data opcode
        (masked(0xB, b"x"), 1002),  # reserved control opcode
        (masked(0x9, b"x" * 126), 1002),  # control frame over 125 bytes
        (masked(0x9, b"x", fin=False), 1002),  # fragmented control frame
        (masked(0x1, b"x" * 1001), 1009),  # over the limit
        (masked(0x1, b"x" * 70_000)[:14], 1009),  # refused from its header alone
        (masked(0x1, b"\xce", fin=False) + masked(0x0, b"\x41", fin=False), 1007),  # fails fast
    ],
)
def test_bad_frames_are_refused_with_their_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as refused:
        list(MessageReader(1000, 8, deflate=True).feed(data))
    assert refused.value.code == code


def test_close_codes() -> None:
    assert close_code(b"") is None
    assert close_code(struct.pack("!H", 1000) + b"bye") == 1000
    assert close_code(struct.pack("!H", 4321)) == 4321
    for bad in (b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999), struct.pack("!H", 5000)):
        with pytest.raises(FrameError):
            close_code(bad)
    with pytest.raises(FrameError) as invalid:
        close_code(struct.pack("!H", 1000) + b"\xff")
    assert invalid.value.code == 1007


async def test_text_binary_and_fragmented_messages_reach_the_node() -> None:
    conn, node, _ = _connection()
    conn.data_received(
        masked(0x1, "héllo".encode())
        + masked(0x2, b"\x00\x01")
        + masked(0x1, b"par", fin=False)
        + masked(0x9, b"in between")  # control frames may come between fragments
        + masked(0x0, b"ts", fin=False)
        + masked(0x0, b"!", fin=True)
    )
    assert node.texts == ["héllo", b"\x00\x01", "parts!"]
    assert node.pongs == [b"in between"]
    assert node.refused == []


async def test_pongs_are_not_life_but_everything_else_is() -> None:
    conn, _, _ = _connection()
    conn.data_received(masked(0xA, b""))
    assert conn.last_life == 0.0
    conn.data_received(masked(0x9, b""))
    assert conn.last_life > 0.0


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([masked(0x1, b"\xff\xfe")], 1007),  # text that is not UTF-8
        ([masked(0x0, b"x")], 1002),  # continuation with nothing to continue
        ([masked(0x1, b"a", fin=False), masked(0x1, b"b")], 1002),  # new message mid-way
        ([masked(0x1, b"x", rsv1=True)], 1002),  # compressed without the extension
        ([masked(0x1, b"x" * 600, fin=False), masked(0x0, b"x" * 600)], 1009),
    ],
)
async def test_bad_messages_close_the_connection(frames: list[bytes], code: int) -> None:
    conn, node, transport = _connection()
    conn.data_received(b"".join(frames) + masked(0x1, b"after"))
    assert node.refused[0][0] == code
    assert node.texts == []  # nothing after the bad frame is acted on
    assert transport.writes[-1][:4] == close_frame(code, node.refused[0][1])[:4]


async def test_compressed_client_frames_are_inflated() -> None:
    conn, node, _ = _connection(deflate=15)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    for text in ("first " * 20, "second " * 20):  # context taken over between messages
        data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        conn.data_received(masked(0x1, data[:-4], rsv1=True))
    assert node.texts == ["first " * 20, "second " * 20]
    bomb = zlib.compress(b"x" * 5000)[2:-4]  # inflates past max_message
    conn.data_received(masked(0x1, bomb, rsv1=True))
    assert node.refused[0][0] == 1009


async def test_client_close_is_answered_with_its_code_then_the_socket_closes() -> None:
    conn, node, transport = _connection()
    conn.data_received(masked(0x8, struct.pack("!H", 1001) + b"bye") + masked(0x1, b"late"))
    await asyncio.sleep(0)  # answered on the next turn, after this turn's replies
    assert transport.writes == [close_frame(1001)]
    assert transport.closed
    assert node.lost_count == 1
    assert node.texts == []


async def test_a_close_frame_followed_by_eof_is_still_answered() -> None:
    conn, _, transport = _connection()
    conn.data_received(masked(0x8, struct.pack("!H", 1000)))
    assert conn.eof_received() is True  # keep the socket open for the answer
    await asyncio.sleep(0)
    assert transport.writes == [close_frame(1000)]
    assert transport.closed


async def test_server_close_waits_for_the_answer_and_drops_data_meanwhile() -> None:
    conn, node, transport = _connection()
    conn.send_close(4000, "heartbeat timeout", 5.0, 5.0)
    assert transport.writes == [close_frame(4000, "heartbeat timeout")]
    conn.data_received(masked(0x1, b"still talking") + masked(0x9, b"p"))
    assert node.texts == []
    assert node.pongs == []
    still_open = not transport.closed
    conn.data_received(masked(0x8, struct.pack("!H", 4000)))
    assert still_open
    assert transport.closed
    assert transport.writes == [close_frame(4000, "heartbeat timeout")]  # no second close


async def test_server_close_gives_up_on_a_silent_client() -> None:
    conn, _, transport = _connection()
    transport.buffered = 10  # and it stopped reading
    conn.send_close(1012, "service restart", 0.01, 0.01)
    await asyncio.sleep(0.2)
    assert transport.closed
    assert transport.aborted


def test_pong_frame_echoes_the_ping() -> None:
    assert pong_frame(b"abc") == b"\x8a\x03abc"


def test_upgrade_answers_only_valid_handshakes() -> None:
    good = {
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    answer = upgrade(good, compression=False)
    assert answer is not None
    # The example from RFC 6455 section 1.3.
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer.response
    assert answer.response.startswith(b"HTTP/1.1 101 ")
    assert answer.response.endswith(b"\r\n\r\n")
    assert answer.deflate == 0
    for name, value in (
        ("Upgrade", "h2c"),
        ("Connection", "keep-alive"),
        ("Sec-WebSocket-Version", "12"),
        ("Sec-WebSocket-Key", "c2hvcnQ="),
        ("Sec-WebSocket-Key", "not base64!"),
    ):
        assert upgrade({**good, name: value}, compression=False) is None
    offered = {**good, "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    assert upgrade(offered, compression=False).deflate == 0  # type: ignore[union-attr]
    compressed = upgrade(offered, compression=True)
    assert compressed is not None
    assert compressed.deflate == 15
    assert b"Sec-WebSocket-Extensions: permessage-deflate" in compressed.response


def _best_of_three(run: Callable[[], object]) -> float:
    """Least CPU time of three runs: CPU time, as other processes taking the CPU stretch
    a long run's wall time more than a short one's; without the garbage collector, as
    its full passes scan whatever else the test process holds."""
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            started = time.thread_time()
            run()
            times.append(time.thread_time() - started)
    finally:
        gc.enable()
    return min(times)


def test_fragment_floods_cost_in_proportion_to_their_frames() -> None:
    def flood(count: int) -> Callable[[], object]:
        data = masked(0x1, b"{", fin=False) + masked(0x0, b"", fin=False) * count
        return lambda: list(MessageReader(1000, 10**6, deflate=False).feed(data))

    small, large = _best_of_three(flood(4_000)), _best_of_three(flood(40_000))
    # 10x the frames: about 10x the time (re-summing the fragments made it 100x).
    assert large < 30 * small, (small, large)


def test_a_frame_arriving_byte_by_byte_costs_in_proportion_to_its_size() -> None:
    def bytewise(size: int) -> Callable[[], object]:
        data = masked(0x2, b"x" * size)

        def run() -> None:
            reader = MessageReader(1 << 20, 8, deflate=False)
            events = [event for i in range(len(data)) for event in reader.feed(data[i : i + 1])]
            assert events == [(OP_BINARY, b"x" * size)]

        return run

    small, large = _best_of_three(bytewise(4_000)), _best_of_three(bytewise(40_000))
    assert large < 30 * small, (small, large)
